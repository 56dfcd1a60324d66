#include "tumorlab/app/monai_label.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "tumorlab/app/dicom_source.h"
#include "tumorlab/app/importer.h"
#include "tumorlab/app/jobs.h"
#include "tumorlab/app/json_util.h"
#include "tumorlab/app/scratch.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app::monai {
namespace fs = std::filesystem;
using nlohmann::json;
using store::Id;

namespace {

constexpr const char* kNiftiExt = ".nii.gz";

std::int64_t seconds(store::TimeMs ms) {
  return ms / 1000;
}

// The model's label names without background: {"tumor": 1}.
json label_names(const json& metadata) {
  json out = json::object();
  auto it = metadata.find("labels");
  if (it == metadata.end()) return out;
  if (it->is_object()) {
    for (const auto& [name, value] : it->items())
      if (value.is_number_integer() && value.get<int>() != 0) out[name] = value;
  } else if (it->is_array()) {  // ["background", "tumor"]: value = position
    for (std::size_t i = 1; i < it->size(); ++i)
      if ((*it)[i].is_string()) out[(*it)[i].get<std::string>()] = static_cast<int>(i);
  }
  return out;
}

int dimension_of(const json& metadata) {
  for (const char* key : {"dims", "dimension"}) {
    auto it = metadata.find(key);
    if (it != metadata.end() && it->is_number_integer()) return it->get<int>();
  }
  return 3;
}

bool open_status(store::CaseStatus s) {
  return s == store::CaseStatus::New || s == store::CaseStatus::Presegmented || s == store::CaseStatus::InProgress ||
         s == store::CaseStatus::Rejected;
}

bool may_edit(const Actor& a, const store::Case& c) {
  if (a.is_reviewer_or_admin()) return true;
  return !c.assignee_user_id || *c.assignee_user_id == a.user_id;
}

// Every case, by id (the store pages at most 1000 rows per query).
std::vector<store::Case> all_cases(store::ReadTxn& t) {
  std::vector<store::Case> out;
  store::CaseFilter f;
  f.limit = 1000;
  for (f.offset = 0;; f.offset += f.limit) {
    auto page = t.list_cases(f);
    out.insert(out.end(), page.items.begin(), page.items.end());
    if (page.items.size() < static_cast<std::size_t>(f.limit)) break;
  }
  return out;
}

// The final label of a case: its current revision when a person (or an import) made it.
std::optional<store::LabelRevision> final_revision(store::ReadTxn& t, const store::Case& c) {
  if (!c.current_revision_id) return std::nullopt;
  auto r = t.get_revision(*c.current_revision_id);
  if (r.kind == store::RevisionKind::Ai) return std::nullopt;
  return r;
}

struct ActiveModel {
  store::Model model;
  json metadata;
};

std::vector<ActiveModel> active_models(Lab& lab) {
  auto models = lab.store().read([](store::ReadTxn& t) { return t.list_models(); });
  std::vector<ActiveModel> out;
  for (const auto& m : models)
    if (m.active) out.push_back({m, stored_object(m.metadata_json)});
  return out;
}

std::string model_description(const ActiveModel& m) {
  std::string s = "tumorlab model " + m.model.name + " version " + m.model.version;
  auto mod = m.metadata.find("modality");
  if (mod != m.metadata.end() && mod->is_string() && !mod->get<std::string>().empty())
    s += " for " + mod->get<std::string>();
  auto ch = m.metadata.find("channels");
  if (ch != m.metadata.end() && ch->is_array() && !ch->empty()) s += " (channels " + ch->dump() + ")";
  return s;
}

json stats_of(store::ReadTxn& t) {
  std::int64_t total = 0, finals = 0, originals = 0;
  for (const auto& c : all_cases(t)) {
    ++total;
    if (final_revision(t, c)) ++finals;
    if (t.first_ai_revision(c.id)) ++originals;
  }
  json tags = json::object();
  if (finals) tags["final"] = finals;
  if (originals) tags["original"] = originals;
  return json{{"total", total}, {"completed", finals}, {"label_tags", tags}};
}

std::string task_status(const std::string& state) {
  if (state == "queued") return "PENDING";
  if (state == "running") return "RUNNING";
  if (state == "succeeded") return "DONE";
  if (state == "failed") return "ERROR";
  if (state == "cancelled") return "STOPPED";
  return "UNKNOWN";
}

// A train job (API shape, from get_job) in MONAI's task shape.
json task_json(const json& job) {
  const std::string state = job.value("state", "");
  json details = json::array();
  if (state == "queued")
    details.push_back("queued: waiting for a job worker that runs training jobs (job " +
                      std::to_string(job.value("id", 0)) + ")");
  if (!job.value("message", std::string()).empty()) details.push_back(job["message"]);
  if (!job.value("error", std::string()).empty()) details.push_back(job["error"]);
  if (details.empty()) details.push_back(state);
  auto ts = [&](const char* key) {
    return job.contains(key) && job[key].is_number() ? json(job[key].get<std::int64_t>() / 1000) : json(nullptr);
  };
  json params = job.value("params", json::object());
  return json{
      {"id", job.value("id", 0)},
      {"type", "train"},
      {"status", task_status(state)},
      {"model", params.value("model", "")},
      {"start_ts", job.contains("started_ms") && !job["started_ms"].is_null() ? ts("started_ms") : ts("created_ms")},
      {"end_ts", ts("finished_ms")},
      {"result", job.value("result", json::object())},
      {"details", details},
      {"job", job}};
}

std::vector<store::Job> train_jobs(store::ReadTxn& t, std::optional<store::JobState> state, int limit) {
  store::JobFilter f;
  f.type = store::JobType::Train;
  f.state = state;
  f.limit = limit;
  return t.list_jobs(f);
}

std::string job_model(const store::Job& j) {
  return stored_object(j.params_json).value("model", "");
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::int64_t case_id_for(Lab& lab, const std::string& image_id, const std::string& field) {
  if (image_id.empty())
    throw Error(ErrorCode::BadArgument, "query parameter " + field + ": expected a case name (MONAI image id)");
  auto c = lab.store().read([&](store::ReadTxn& t) { return t.find_case(image_id); });
  if (!c) throw Error(ErrorCode::NotFound, field + ": no case named '" + image_id.substr(0, 80) + "'");
  return c->id;
}

json info(Lab& lab, const Actor& actor, const std::string& server_version) {
  (void)actor;
  json models = json::object(), trainers = json::object(), labels = json::object();
  for (const auto& m : active_models(lab)) {
    json names = label_names(m.metadata);
    for (const auto& [name, value] : names.items()) labels[name] = value;
    models[m.model.name] = {{"type", "segmentation"},
                            {"labels", names},
                            {"dimension", dimension_of(m.metadata)},
                            {"description", model_description(m)},
                            {"version", m.model.version},
                            {"config", json::object()}};
    trainers[m.model.name] = {
        {"description", "fine-tune " + m.model.name + " on the cases labelled here (a job of type train)"},
        {"config", json::object()}};
  }
  json strategies{
      {"rank",
       {{"description",
         "tumorlab's active-learning order: your open cases first, then unassigned ones, by active-learning rank, "
         "then uncertainty"}}},
      {"first", {{"description", "the open case with the lowest id that you may edit"}}},
      {"random", {{"description", "a random open case that you may edit"}}}};
  json stats = lab.store().read([](store::ReadTxn& t) { return stats_of(t); });
  return json{{"name", "tumorlab"},
              {"description", "tumorlab labelling server (MONAI Label compatible subset, docs/monai_label.md)"},
              {"version", server_version},
              {"labels", labels},
              {"models", models},
              {"trainers", trainers},
              {"strategies", strategies},
              {"scoring", json::object()},
              {"train_stats", json::object()},
              {"datastore", stats}};
}

json datastore(Lab& lab, const Actor& actor, const std::string& output) {
  (void)actor;
  if (output.empty() || output == "stats") return lab.store().read([](store::ReadTxn& t) { return stats_of(t); });
  if (output != "all" && output != "train")
    throw Error(ErrorCode::BadArgument,
                "query parameter output: expected stats, all or train, got '" + output.substr(0, 40) + "'");
  // Label names per model name@version, for the "original" tag's params.
  std::map<std::string, json> model_labels;
  for (const auto& m : lab.store().read([](store::ReadTxn& t) { return t.list_models(); }))
    model_labels[m.name + "@" + m.version] = label_names(stored_object(m.metadata_json));
  return lab.store().read([&](store::ReadTxn& t) {
    std::map<Id, std::string> users;
    for (const auto& u : t.list_users()) users[u.id] = u.username;
    if (output == "train") {
      json list = json::array();
      for (const auto& c : all_cases(t))
        if (final_revision(t, c)) list.push_back({{"image", c.name}, {"label", c.name}});
      return list;
    }
    json objects = json::object();
    for (const auto& c : all_cases(t)) {
      const store::Image im = t.get_image(c.image_id);
      json image_info{{"name", c.name + kNiftiExt},
                      {"ts", seconds(c.created_ms)},
                      {"case_id", c.id},
                      {"status", std::string(store::to_string(c.status))},
                      {"modality", im.modality},
                      {"channels", im.channel_names},
                      {"size", im.size},
                      {"spacing_mm", im.spacing_mm},
                      {"demo", im.demo},
                      {"checksum", "SHA256:" + im.sha256}};
      json labels = json::object();
      if (auto f = final_revision(t, c)) {
        auto author = f->author_user_id ? users.find(*f->author_user_id) : users.end();
        labels["final"] = {{"ext", kNiftiExt},
                           {"info",
                            {{"name", c.name + kNiftiExt},
                             {"ts", seconds(f->created_ms)},
                             {"revision_id", f->id},
                             {"kind", std::string(store::to_string(f->kind))},
                             {"user", author == users.end() ? std::string() : author->second},
                             {"voxel_count", f->voxel_count},
                             {"volume_ml", f->volume_ml},
                             {"checksum", "SHA256:" + f->sha256}}}};
      }
      if (auto o = t.first_ai_revision(c.id)) {
        json info{{"name", c.name + kNiftiExt},
                  {"ts", seconds(o->created_ms)},
                  {"revision_id", o->id},
                  {"kind", "ai"},
                  {"model", o->model_name},
                  {"version", o->model_version},
                  {"voxel_count", o->voxel_count},
                  {"volume_ml", o->volume_ml},
                  {"checksum", "SHA256:" + o->sha256}};
        auto ml = model_labels.find(o->model_name + "@" + o->model_version);
        if (ml != model_labels.end()) info["params"] = {{"label_names", ml->second}};
        labels["original"] = {{"ext", kNiftiExt}, {"info", info}};
      }
      objects[c.name] = {{"image", {{"ext", kNiftiExt}, {"info", image_info}}}, {"labels", labels}};
    }
    return json{{"name", "tumorlab"},
                {"description", "cases of this tumorlab server; ids are case names"},
                {"images_dir", ""},
                {"labels_dir", ""},
                {"objects", objects}};
  });
}

FileDownload label_file(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& tag) {
  const Id case_id = case_id_for(lab, image_id, "label");
  const std::string t = tag.empty() ? "final" : tag;
  if (t != "final" && t != "original")
    throw Error(ErrorCode::BadArgument,
                "query parameter tag: expected final or original, got '" + t.substr(0, 40) + "'");
  auto rev = lab.store().read([&](store::ReadTxn& txn) -> std::optional<store::LabelRevision> {
    const store::Case c = txn.get_case(case_id);
    return t == "final" ? final_revision(txn, c) : txn.first_ai_revision(case_id);
  });
  if (!rev)
    throw Error(ErrorCode::NotFound,
                "case '" + image_id.substr(0, 80) + "' has no " + t +
                    (t == "final" ? " label (no revision made by a person yet)" : " label (no AI pre-segmentation)"));
  return revision_file(lab, actor, case_id, rev->id);
}

json save_label(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& tag,
                const std::string& filename, const std::string& bytes, const json& params) {
  const std::string t = tag.empty() ? "final" : tag;
  if (t == "original")
    throw Error(ErrorCode::BadArgument,
                "tag original: the original label is the AI pre-segmentation, written by models; save with tag final");
  if (t != "final")
    throw Error(ErrorCode::BadArgument, "query parameter tag: expected final, got '" + t.substr(0, 40) + "'");
  const std::string name = lower(filename);
  if (!name.empty() && !ends_with(name, ".nii.gz") && !ends_with(name, ".nii"))
    throw Error(ErrorCode::UnsupportedFormat,
                "label file '" + filename.substr(0, 80) +
                    "': only NIfTI labels (.nii.gz, .nii) on the image grid are accepted");
  const Id case_id = case_id_for(lab, image_id, "image");
  SaveRevisionRequest r;
  r.case_id = case_id;
  r.label_bytes = bytes;
  r.kind = "manual";
  r.note = "saved through the MONAI Label API";
  auto client = params.find("client_id");
  if (client != params.end() && client->is_string() && !client->get<std::string>().empty())
    r.note += " (client " + client->get<std::string>().substr(0, 64) + ")";
  json rev = save_revision(lab, actor, r);
  return json{{"image", image_id}, {"label", image_id}, {"tag", t}, {"revision_id", rev["id"]}, {"revision", rev}};
}

json next_sample(Lab& lab, const Actor& actor, const std::string& strategy) {
  if (strategy != "rank" && strategy != "first" && strategy != "random")
    throw Error(ErrorCode::NotFound,
                "active-learning strategy '" + strategy.substr(0, 40) + "': expected rank, first or random");
  struct Pick {
    store::Case c;
    store::Image im;
  };
  auto pick = lab.store().read([&](store::ReadTxn& t) -> std::optional<Pick> {
    std::optional<store::Case> chosen;
    if (strategy == "rank") {
      chosen = t.next_case(actor.user_id);
    } else {
      std::vector<store::Case> pool;
      for (const auto& c : all_cases(t))
        if (open_status(c.status) && may_edit(actor, c)) pool.push_back(c);
      if (!pool.empty()) {
        if (strategy == "first") {
          chosen = pool.front();  // all_cases is ordered by id
        } else {
          static thread_local std::mt19937_64 rng{std::random_device{}()};
          chosen = pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
        }
      }
    }
    if (!chosen) return std::nullopt;
    return Pick{*chosen, t.get_image(chosen->image_id)};
  });
  if (!pick) return json::object();
  return json{{"id", pick->c.name},    {"name", pick->c.name + kNiftiExt},
              {"case_id", pick->c.id}, {"status", std::string(store::to_string(pick->c.status))},
              {"strategy", strategy},  {"checksum", "SHA256:" + pick->im.sha256}};
}

namespace {

struct Inferred {
  AiPrediction pred;
  json params;
};

// Runs `model` on the case synchronously; audited "monai.infer" (model, outcome, output type).
Inferred run_infer(Lab& lab, const Actor& actor, const std::string& model, Id case_id, const std::string& output) {
  if (model.empty()) throw Error(ErrorCode::BadArgument, "model: expected a registered model name");
  const auto t0 = std::chrono::steady_clock::now();
  Inferred out;
  AiPrediction& pred = out.pred;
  try {
    std::string why;
    if (!choose_model(lab, case_id, model, &why))
      throw Error(ErrorCode::NotFound, "model '" + model.substr(0, 80) + "': no active registered model of that name" +
                                           (why.empty() ? std::string() : " (" + why + ")"));
    SegmentOptions so;
    so.threads = 1;
    pred = segment_case(lab, case_id, model, so);
  } catch (const Error& e) {
    lab.store().audit(audit_entry(
        actor, "monai.infer", case_id,
        {{"model", model.substr(0, 80)}, {"output", output}, {"error", std::string(e.info().name)}}, "failed"));
    throw;
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Label names of the model that ran.
  json names = json::object();
  for (const auto& m : active_models(lab))
    if (m.model.name == pred.model_name && m.model.version == pred.model_version) names = label_names(m.metadata);
  if (names.empty()) {
    // Not the active version (name@version): its metadata from the registry.
    const auto models = lab.store().read([](store::ReadTxn& t) { return t.list_models(); });
    for (const auto& m : models)
      if (m.name == pred.model_name && m.version == pred.model_version)
        names = label_names(stored_object(m.metadata_json));
  }
  const std::int64_t voxels = pred.label.count_nonzero();
  out.params = {{"label_names", names},
                {"model", pred.model_name},
                {"version", pred.model_version},
                {"case_uncertainty", pred.case_uncertainty ? json(*pred.case_uncertainty) : json(nullptr)},
                {"foreground_voxels", voxels},
                {"volume_ml", static_cast<double>(voxels) * pred.label.geometry().voxel_volume_ml()},
                {"latencies", {{"total", total_s}}}};
  lab.store().audit(audit_entry(
      actor, "monai.infer", case_id,
      {{"model", pred.model_name}, {"version", pred.model_version}, {"voxels", voxels}, {"output", output}}));
  return out;
}

// The segments of a DICOM SEG: the model's label names, renamed by MONAI's params.label_info
// ([{"name", "idx" | "id" | "value"}]) where given; label values present in the map without a
// name become "label <n>".
std::vector<io::DicomSegSegment> seg_segments(const LabelMap& label, const json& names, const json& params) {
  std::map<int, std::string> by_value;
  for (const auto& [name, value] : names.items())
    if (value.is_number_integer() && value.get<int>() >= 1 && value.get<int>() <= 255)
      by_value[value.get<int>()] = name;
  auto info = params.find("label_info");
  if (info != params.end() && info->is_array()) {
    for (const auto& item : *info) {
      if (!item.is_object() || !item.contains("name") || !item["name"].is_string()) continue;
      for (const char* key : {"idx", "id", "value"}) {
        auto v = item.find(key);
        if (v != item.end() && v->is_number_integer() && v->get<int>() >= 1 && v->get<int>() <= 255) {
          by_value[v->get<int>()] = item["name"].get<std::string>();
          break;
        }
      }
    }
  }
  std::array<std::int64_t, 256> counts{};
  for (const std::uint8_t v : label.voxels()) ++counts[v];
  for (int v = 1; v < 256; ++v)
    if (counts[v] > 0 && !by_value.count(v)) by_value[v] = "label " + std::to_string(v);
  if (by_value.empty()) by_value[1] = "label 1";
  std::vector<io::DicomSegSegment> out;
  for (const auto& [value, name] : by_value) out.push_back(io::DicomSegSegment{value, name});
  return out;
}

}  // namespace

InferResult infer(Lab& lab, const Actor& actor, const std::string& model, const std::string& image_id) {
  if (model.empty()) throw Error(ErrorCode::BadArgument, "model: expected a registered model name");
  const Id case_id = case_id_for(lab, image_id, "image");
  Inferred r = run_infer(lab, actor, model, case_id, "image");
  InferResult out;
  {
    const ScratchFile tmp(lab, "monai", kNiftiExt);
    io::write_label(r.pred.label, tmp.path());
    out.label_bytes = read_file(tmp.path());
  }
  out.filename = "case-" + std::to_string(case_id) + "-" + r.pred.model_name + kNiftiExt;
  out.params = std::move(r.params);
  return out;
}

InferResult infer_dicom_seg(Lab& lab, const Actor& actor, const std::string& model, const std::string& image_id,
                            const json& params, const std::string& software_version) {
  if (model.empty()) throw Error(ErrorCode::BadArgument, "model: expected a registered model name");
  const Id case_id = case_id_for(lab, image_id, "image");
  // The source series first: no model runs for a case that cannot be answered.
  const store::Image image =
      lab.store().read([&](store::ReadTxn& t) { return t.get_image(t.get_case(case_id).image_id); });
  const std::optional<io::DicomSourceRef> source = load_dicom_source(lab, image.sha256);
  const std::string name = image_id.substr(0, 80);
  if (!source || source->slices.empty()) {
    lab.store().audit(audit_entry(actor, "monai.infer", case_id,
                                  {{"model", model.substr(0, 80)}, {"output", "dicom_seg"}, {"error", "BadArgument"}},
                                  "failed"));
    if (image.study_id)
      throw Error(ErrorCode::BadArgument,
                  "output=dicom_seg: case '" + name +
                      "' came from DICOM, but was imported before tumorlab kept the source series' references; "
                      "import the series again (the image is kept once, its references are added), or ask for "
                      "output=image");
    throw Error(ErrorCode::BadArgument, "output=dicom_seg: case '" + name +
                                            "' was not imported from DICOM, so there is no source series for a "
                                            "DICOM SEG to reference; ask for output=image (NIfTI) instead");
  }
  Inferred r = run_infer(lab, actor, model, case_id, "dicom_seg");
  io::DicomSegOptions o;
  o.series_description = "tumorlab " + r.pred.model_name + " " + r.pred.model_version;
  o.algorithm_name = r.pred.model_name + " " + r.pred.model_version;
  o.software_version = software_version;
  InferResult out;
  {
    const ScratchFile tmp(lab, "monai", ".dcm");
    io::write_dicom_seg(r.pred.label, *source, seg_segments(r.pred.label, r.params["label_names"], params), o,
                        tmp.path());
    out.label_bytes = read_file(tmp.path());
  }
  out.filename = "case-" + std::to_string(case_id) + "-" + r.pred.model_name + "-seg.dcm";
  out.params = std::move(r.params);
  return out;
}

json upload_image(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& filename,
                  std::string bytes, const json& params) {
  if (!actor.is_reviewer_or_admin())
    throw Error(ErrorCode::Forbidden, "datastore upload: only reviewers and admins import images");
  // The client's file: its base name for messages, its extension (all suffixes, as MONAI Label
  // takes them) for the format.
  std::string client = filename;
  const auto slash = client.find_last_of("/\\");
  if (slash != std::string::npos) client = client.substr(slash + 1);
  if (client.empty()) client = "upload";
  const auto dot = client.find('.');
  const std::string ext = dot == std::string::npos || dot == 0 ? std::string() : client.substr(dot);
  // The case name: the MONAI image id (its base name) when given, else the file's stem.
  std::string id = image_id;
  const auto id_slash = id.find_last_of("/\\");
  if (id_slash != std::string::npos) id = id.substr(id_slash + 1);
  std::string part_name = client;
  if (!id.empty() && id != "None") part_name = !ext.empty() && ends_with(lower(id), lower(ext)) ? id : id + ext;
  ImportOptions o;
  o.origin = "upload";
  if (auto m = params.find("modality"); m != params.end() && !m->is_null()) {
    const std::string v = m->is_string() ? m->get<std::string>() : std::string();
    std::string up;
    for (char c : v) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (up != "CT" && up != "MR" && up != "PT")
      throw Error(ErrorCode::BadArgument, "form field params: modality: expected CT, MR or PT");
    o.modality = up;
  }
  json r;
  try {
    r = import_uploads(lab, actor, {UploadPart{part_name, std::move(bytes)}}, o);
  } catch (const Error& e) {
    if (part_name == client) throw;
    throw Error(e.code(), "file " + client + " (image " + id.substr(0, 80) + "): " + e.what());
  }
  json names = json::array();
  for (const auto& c : r["cases"]) names.push_back(c["name"]);
  if (names.empty()) {
    // Already stored: the case(s) holding that image.
    std::set<std::int64_t> images;
    for (const auto& sk : r["skipped"])
      if (sk.contains("image_id") && sk["image_id"].is_number_integer())
        images.insert(sk["image_id"].get<std::int64_t>());
    if (!images.empty()) {
      for (const auto& c : lab.store().read([](store::ReadTxn& t) { return all_cases(t); }))
        if (images.count(c.image_id)) names.push_back(c.name);
    }
  }
  if (names.empty()) {
    std::string why;
    if (!r["skipped"].empty()) why = " (" + r["skipped"][0].value("reason", "") + ")";
    throw Error(ErrorCode::EmptyInput, "file " + client + ": no image was imported from it" + why);
  }
  return json{{"image", names[0]}, {"images", names},         {"cases", r["cases"]},
              {"jobs", r["jobs"]}, {"skipped", r["skipped"]}, {"errors", r["errors"]}};
}

json start_training(Lab& lab, const Actor& actor, const std::string& model, const json& params) {
  if (!actor.is_reviewer_or_admin())
    throw Error(ErrorCode::Forbidden, "train: only reviewers and admins start training");
  std::vector<ActiveModel> targets;
  for (auto& m : active_models(lab))
    if (model.empty() || m.model.name == model) targets.push_back(std::move(m));
  if (!model.empty() && targets.empty())
    throw Error(ErrorCode::NotFound, "model '" + model.substr(0, 80) + "': no active registered model of that name");
  json all = json::object();
  for (const auto& m : targets) {
    json p = params.is_object() ? params.value(m.model.name, json::object()) : json::object();
    if (!model.empty() && params.is_object()) p = params;
    store::NewJob nj;
    nj.type = store::JobType::Train;
    nj.priority = store::JobPriority::Train;
    nj.owner_user_id = actor.user_id;
    nj.params_json =
        json{{"model", m.model.name}, {"version", m.model.version}, {"params", p}, {"source", "monai"}}.dump();
    const store::Job job = lab.store().write([&](store::WriteTxn& t) {
      for (auto state : {store::JobState::Queued, store::JobState::Running})
        for (const auto& j : train_jobs(t, state, 1000))
          if (job_model(j) == m.model.name)
            throw Error(ErrorCode::Conflict, "a training job for " + m.model.name + " is already " +
                                                 std::string(store::to_string(state)) + " (job " +
                                                 std::to_string(j.id) + ")");
      auto j = t.enqueue_job(nj);
      t.append_audit(audit_entry(actor, "job.enqueue", std::nullopt,
                                 {{"job_id", j.id}, {"type", "train"}, {"model", m.model.name}, {"source", "monai"}}));
      return j;
    });
    notify_job_runners();
    json task = task_json(get_job(lab, actor, job.id));
    if (!model.empty()) return task;
    all[m.model.name] = {{"result", task}, {"detail", ""}};
  }
  return all;
}

std::optional<json> training_status(Lab& lab, const Actor& actor, bool all, bool check_if_running) {
  if (check_if_running) {
    auto active = lab.store().read([](store::ReadTxn& t) {
      auto running = train_jobs(t, store::JobState::Running, 1);
      return running.empty() ? train_jobs(t, store::JobState::Queued, 1) : running;
    });
    if (active.empty()) return std::nullopt;
    return task_json(get_job(lab, actor, active.front().id));
  }
  auto jobs = lab.store().read([&](store::ReadTxn& t) { return train_jobs(t, std::nullopt, all ? 100 : 1); });
  if (jobs.empty()) return std::nullopt;
  if (!all) return task_json(get_job(lab, actor, jobs.front().id));
  json items = json::array();
  for (const auto& j : jobs) items.push_back(task_json(get_job(lab, actor, j.id)));
  return json{{"items", items}};
}

json stop_training(Lab& lab, const Actor& actor) {
  if (!actor.is_reviewer_or_admin())
    throw Error(ErrorCode::Forbidden, "train: only reviewers and admins stop training");
  auto active = lab.store().read([](store::ReadTxn& t) {
    auto jobs = train_jobs(t, store::JobState::Running, 1000);
    auto queued = train_jobs(t, store::JobState::Queued, 1000);
    jobs.insert(jobs.end(), queued.begin(), queued.end());
    return jobs;
  });
  if (active.empty()) return json::object();
  Id newest = 0;
  for (const auto& j : active) {
    try {
      cancel_job(lab, actor, j.id);  // audited "job.cancel"
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Conflict) throw;  // it ended meanwhile
    }
    newest = std::max(newest, j.id);
  }
  return task_json(get_job(lab, actor, newest));
}

}  // namespace tumorlab::app::monai
