#include "tumorlab/app/exporter.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "tumorlab/app/json_util.h"
#include "tumorlab/app/scratch.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/archive.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;
using nlohmann::json;
using store::Id;

namespace {

std::string export_case_id(const std::string& name) {
  std::string out;
  for (char ch : name) out.push_back(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' ? ch : '-');
  return out.empty() ? "case" : out;
}

bool valid_dataset_name(const std::string& n) {
  if (n.size() < 12 || n.size() > 100 || n.rfind("Dataset", 0) != 0) return false;
  for (int i = 7; i < 10; ++i)
    if (!std::isdigit(static_cast<unsigned char>(n[i]))) return false;
  if (n[10] != '_') return false;
  for (std::size_t i = 11; i < n.size(); ++i)
    if (!(std::isalnum(static_cast<unsigned char>(n[i])) || n[i] == '_' || n[i] == '-')) return false;
  return true;
}

bool valid_export_id(const std::string& id) {
  if (id.size() != 32) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
}

}  // namespace

LabelExport export_label(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id,
                         const std::string& format) {
  if (format != "nifti" && format != "png")
    throw Error(ErrorCode::BadArgument, "format: expected nifti or png, got '" + format.substr(0, 40) + "'");
  auto& st = lab.store();
  store::LabelRevision rev;
  store::Image image;
  st.read([&](store::ReadTxn& t) {
    const store::Case c = t.get_case(case_id);
    rev = t.get_revision(revision_id);
    if (rev.case_id != case_id)
      throw Error(ErrorCode::NotFound,
                  "revision " + std::to_string(revision_id) + " does not belong to case " + std::to_string(case_id));
    image = t.get_image(c.image_id);
  });
  const std::string stem = "case-" + std::to_string(case_id) + "-rev-" + std::to_string(revision_id);
  LabelExport out;
  if (format == "nifti") {
    out.path = rev.path;
    out.filename = stem + ".nii.gz";
    out.content_type = "application/gzip";
  } else {
    if (image.size[2] != 1)
      throw Error(ErrorCode::GeometryMismatch, "format=png: the image of case " + std::to_string(case_id) + " is 3D (" +
                                                   std::to_string(image.size[0]) + "x" + std::to_string(image.size[1]) +
                                                   "x" + std::to_string(image.size[2]) +
                                                   "); PNG holds 2D labels only, use format=nifti");
    const LabelMap label = io::read_label(rev.path);
    const ScratchFile tmp(lab, "label", ".png");
    io::write_label(label, tmp.path());
    out.bytes = read_file(tmp.path());
    out.filename = stem + ".png";
    out.content_type = "image/png";
  }
  st.audit(
      audit_entry(actor, "download", case_id, {{"what", "label"}, {"revision_id", revision_id}, {"format", format}}));
  return out;
}

json export_nnunet(Lab& lab, const Actor& actor, const NnunetExportRequest& req) {
  if (!valid_dataset_name(req.dataset_name))
    throw Error(ErrorCode::BadArgument,
                "dataset name: expected DatasetNNN_Name (three digits, then letters, digits, '_' or '-'), got '" +
                    req.dataset_name.substr(0, 60) + "'");
  if (req.output.empty()) throw Error(ErrorCode::BadArgument, "output: a folder is required");
  std::error_code ec;
  if (fs::exists(req.output, ec) && !(fs::is_directory(req.output, ec) && fs::is_empty(req.output, ec)))
    throw Error(ErrorCode::BadArgument, "output " + req.output.string() + ": exists and is not an empty folder");
  auto& st = lab.store();
  // Every validated case (paged), with its image and current revision.
  struct Item {
    store::Case c;
    store::Image image;
    store::LabelRevision rev;
  };
  std::vector<Item> items;
  json skipped = json::array();
  st.read([&](store::ReadTxn& t) {
    items.clear();
    skipped = json::array();
    store::CaseFilter f;
    f.status = store::CaseStatus::Validated;
    f.limit = 1000;
    for (f.offset = 0;; f.offset += f.limit) {
      const store::CaseList page = t.list_cases(f);
      for (const auto& c : page.items) {
        if (c.demo && !req.include_demo) continue;
        if (!c.current_revision_id) {
          skipped.push_back(json{{"case_id", c.id}, {"name", c.name}, {"reason", "no label revision"}});
          continue;
        }
        store::Image image = t.get_image(c.image_id);
        if (req.accept) {
          if (auto why = req.accept(image)) {
            skipped.push_back(json{{"case_id", c.id}, {"name", c.name}, {"reason", *why}});
            continue;
          }
        }
        items.push_back(Item{c, std::move(image), t.get_revision(*c.current_revision_id)});
      }
      if (page.items.size() < static_cast<std::size_t>(f.limit)) break;
    }
  });
  std::vector<std::string> channels = req.channel_names;
  std::vector<const Item*> chosen;
  for (const auto& it : items) {
    if (chosen.empty() && req.channel_names.empty()) channels = it.image.channel_names;
    if (req.channel_names.empty() ? it.image.channel_names != channels
                                  : it.image.channel_names.size() != channels.size()) {
      skipped.push_back(json{{"case_id", it.c.id},
                             {"name", it.c.name},
                             {"reason", "channels differ from the dataset's (" + json(it.image.channel_names).dump() +
                                            " vs " + json(channels).dump() + ")"}});
      continue;
    }
    chosen.push_back(&it);
  }
  if (chosen.empty())
    throw Error(ErrorCode::EmptyInput, "export: no validated case with a label" +
                                           std::string(req.include_demo ? "" : " (demo cases are left out)"));
  const fs::path out = req.output;
  for (const char* sub : {"imagesTr", "labelsTr"}) {
    fs::create_directories(out / sub, ec);
    if (ec) throw Error(ErrorCode::IoFailure, "cannot create " + (out / sub).string() + ": " + ec.message());
  }
  json cases = json::array();
  std::set<std::string> used;
  int max_label = 1;
  for (const Item* it : chosen) {
    std::string id = export_case_id(it->c.name);
    for (int k = 2; used.count(id); ++k) id = export_case_id(it->c.name) + "-" + std::to_string(k);
    used.insert(id);
    const Volume image = io::read_image(it->image.path);
    for (int ch = 0; ch < image.channels(); ++ch) {
      char suffix[16];
      std::snprintf(suffix, sizeof suffix, "_%04d", ch);
      Volume v = image.channels() == 1 ? image : image.channel(ch);
      io::write_image(v, out / "imagesTr" / (id + suffix + ".nii.gz"));
    }
    const LabelMap label = io::read_label(it->rev.path, &image.geometry());
    max_label = std::max<int>(max_label, label.max_label());
    io::write_label(label, out / "labelsTr" / (id + ".nii.gz"));
    cases.push_back(json{{"id", id}, {"case_id", it->c.id}, {"name", it->c.name}, {"revision_id", it->rev.id}});
  }
  json channel_names = json::object();
  for (std::size_t c = 0; c < channels.size(); ++c) channel_names[std::to_string(c)] = channels[c];
  json labels{{"background", 0}, {"lesion", 1}};
  for (int l = 2; l <= max_label; ++l) labels["label_" + std::to_string(l)] = l;
  json dataset{{"channel_names", channel_names},
               {"labels", labels},
               {"numTraining", cases.size()},
               {"file_ending", ".nii.gz"},
               {"name", req.dataset_name},
               {"description", "validated cases exported by tumorlab (current label revisions)"},
               {"tumorlab", {{"exported_ms", st.now_ms()}, {"cases", cases}}}};
  {
    const fs::path tmp = out / "dataset.json.tmp";
    std::ofstream f(tmp, std::ios::trunc);
    f << dataset.dump(2) << "\n";
    f.close();
    if (!f) throw Error(ErrorCode::IoFailure, "cannot write " + (out / "dataset.json").string());
    fs::rename(tmp, out / "dataset.json", ec);
    if (ec) throw Error(ErrorCode::IoFailure, "cannot write " + (out / "dataset.json").string() + ": " + ec.message());
  }
  json ids = json::array();
  for (const auto& c : cases) ids.push_back(c["case_id"]);
  st.audit(audit_entry(actor, "export", std::nullopt,
                       {{"format", "nnunet"}, {"dataset", req.dataset_name}, {"case_ids", ids}}));
  return json{{"output", out.string()},
              {"dataset", req.dataset_name},
              {"cases", cases},
              {"skipped", skipped},
              {"num_training", cases.size()}};
}

json create_export(Lab& lab, const Actor& actor, const json& body) {
  const std::string format = json_opt_string(body, "format").value_or("nnunet");
  if (format != "nnunet")
    throw Error(ErrorCode::BadArgument, "format: expected nnunet, got '" + format.substr(0, 40) + "'");
  NnunetExportRequest req;
  req.dataset_name = json_opt_string(body, "name").value_or(req.dataset_name);
  req.include_demo = json_opt_bool(body, "include_demo").value_or(false);
  const ScratchDir work(lab, "export");
  req.output = work.path() / req.dataset_name;
  json result = export_nnunet(lab, actor, req);
  const std::string id = store::sha256_hex(store::random_token()).substr(0, 32);
  const fs::path dir = lab.data_dir() / "exports";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot create " + dir.string() + ": " + ec.message());
  const fs::path zip = dir / (id + ".zip");
  io::zip_folder(req.output, zip);
  result.erase("output");
  result["export_id"] = id;
  result["file_bytes"] = static_cast<std::int64_t>(fs::file_size(zip, ec));
  result["download"] = "/api/exports/" + id;
  return result;
}

FileDownload export_file(Lab& lab, const Actor& actor, const std::string& export_id) {
  if (!valid_export_id(export_id)) throw Error(ErrorCode::NotFound, "export_id: no such export");
  const fs::path zip = lab.data_dir() / "exports" / (export_id + ".zip");
  std::error_code ec;
  if (!fs::is_regular_file(zip, ec)) throw Error(ErrorCode::NotFound, "export " + export_id + ": no such export");
  lab.store().audit(audit_entry(actor, "download", std::nullopt, {{"what", "export"}, {"export_id", export_id}}));
  return FileDownload{zip.string(), "tumorlab-export-" + export_id.substr(0, 8) + ".zip", "application/zip"};
}

}  // namespace tumorlab::app
