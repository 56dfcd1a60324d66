#include "tumorlab/app/importer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "tumorlab/app/cases.h"
#include "tumorlab/app/demo_data.h"
#include "tumorlab/app/dicom_source.h"
#include "tumorlab/app/json_util.h"
#include "tumorlab/app/scratch.h"
#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/io/archive.h"
#include "tumorlab/io/deidentify.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;
using nlohmann::json;
using store::Id;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Image-file ending we read (".nii.gz", ".png", ...), or "".
std::string image_ending(const std::string& name) {
  const std::string n = lower(name);
  for (const char* e : {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff"}) {
    const std::string ext = e;
    if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0) return ext;
  }
  return "";
}

bool has_ending(const std::string& name, const std::string& ext) {
  const std::string n = lower(name);
  return n.size() >= ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0;
}

// The site key of the de-identification: DIR/deid.key (64 hex digits), created once.
io::DeidKey deid_key(Lab& lab) {
  const fs::path path = lab.data_dir() / "deid.key";
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::error_code ec;
    if (fs::exists(path, ec)) {
      std::string hex = read_file(path);
      while (!hex.empty() && std::isspace(static_cast<unsigned char>(hex.back()))) hex.pop_back();
      try {
        return io::DeidKey::from_hex(hex);
      } catch (const Error&) {
        throw Error(ErrorCode::IoFailure, path.string() +
                                              ": the de-identification key is damaged (expected 64 hex "
                                              "digits); restore it from a backup");
      }
    }
    const io::DeidKey key = io::DeidKey::generate();
    const std::string text = key.to_hex() + "\n";
    const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorCode::IoFailure, "cannot create " + tmp.string());
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    // link() fails when another process created the key first: then that key is read.
    if (ok && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) ok = false;
    ::unlink(tmp.c_str());
    if (!ok) throw Error(ErrorCode::IoFailure, "cannot write the de-identification key " + path.string());
    int dfd = ::open(lab.data_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  throw Error(ErrorCode::IoFailure, "cannot read the de-identification key " + path.string());
}

// One case to store.
struct Pending {
  Volume image;
  std::string name;
  std::string modality;
  std::vector<std::string> channels;
  std::string pseudonym;  // empty: no patient row
  std::string study_key;
  std::optional<LabelMap> label;
  std::string display;  // for messages; not stored for DICOM
  std::string format;   // "dicom", "nifti", "nnunet", ...
  std::string dataset;  // nnU-Net dataset name (audit detail)
  bool demo = false;
  std::optional<io::DicomSourceRef> dicom_source;  // kept beside the image (app/dicom_source.h)
};

struct Collector {
  json cases = json::array();
  json jobs = json::array();
  json skipped = json::array();
  json errors = json::array();
  std::vector<Error> thrown;  // same order as errors
  int ignored = 0;

  void error(const std::string& file, const Error& e) {
    if (e.info().kind != ErrorKind::Input) throw e;  // disk, database: the import stops
    errors.push_back(
        json{{"file", file}, {"code", std::string(e.info().name)}, {"status", e.http_status()}, {"message", e.what()}});
    thrown.push_back(e);
  }
};

std::string generic_channel(std::size_t c) {
  return "channel" + std::to_string(c);
}

class Importer {
 public:
  Importer(Lab& lab, const Actor& actor, const ImportOptions& options, Collector& out)
      : lab_(lab), actor_(actor), options_(options), out_(out), scratch_(lab, "import") {}

  void run(const ImportInput& in) {
    const std::string display = in.display_name.empty() ? in.path.string() : in.display_name;
    try {
      std::error_code ec;
      if (!fs::exists(in.path, ec)) throw Error(ErrorCode::FileNotFound, display + ": no such file or folder");
      Found found;
      collect(in.path, display, true, found);
      for (const auto& [path, name] : found.datasets) import_dataset(path, name);
      for (const auto& [path, name] : found.images) import_image(path, name);
      // DICOM files of every input are grouped together (series by SeriesInstanceUID), so the
      // slices of one series may come as separate uploads.
      dicom_.insert(dicom_.end(), found.dicom.begin(), found.dicom.end());
      if (!found.dicom.empty()) dicom_sources_.push_back(display);
    } catch (const Error& e) {
      out_.error(display, e);
    }
  }

  void finish() {
    if (dicom_.empty()) return;
    std::string display = dicom_sources_.size() == 1 ? dicom_sources_[0] : std::string("the DICOM files");
    try {
      import_dicom(dicom_, display);
    } catch (const Error& e) {
      out_.error(display, e);
    }
    dicom_.clear();
    dicom_sources_.clear();
  }

 private:
  struct Found {
    std::vector<std::pair<fs::path, std::string>> datasets, images, dicom;
  };

  fs::path scratch_file(const std::string& ext) { return scratch_.path() / ("f" + std::to_string(++counter_) + ext); }

  void collect(const fs::path& p, const std::string& display, bool given, Found& found) {
    std::error_code ec;
    auto st = fs::symlink_status(p, ec);
    if (!given && fs::is_symlink(st)) {
      ++out_.ignored;  // links inside a folder are not followed
      return;
    }
    if (fs::is_directory(p, ec)) {
      if (io::is_nnunet_dataset(p)) {
        found.datasets.emplace_back(p, display);
        return;
      }
      std::vector<fs::path> entries;
      for (auto it = fs::directory_iterator(p, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        entries.push_back(it->path());
      if (ec) throw Error(ErrorCode::IoFailure, display + ": cannot list the folder: " + ec.message());
      std::sort(entries.begin(), entries.end());
      for (const auto& e : entries) {
        const std::string name = e.filename().string();
        if (name.empty() || name[0] == '.' || name == "__MACOSX") continue;
        collect(e, display + "/" + name, false, found);
      }
      return;
    }
    if (!fs::is_regular_file(p, ec)) {
      if (given) throw Error(ErrorCode::UnsupportedFormat, display + ": not a regular file or folder");
      ++out_.ignored;
      return;
    }
    const std::string name = p.filename().string();
    if (has_ending(name, ".zip") || io::is_zip_file(p)) {
      const fs::path dest = scratch_.path() / ("zip" + std::to_string(++counter_));
      try {
        // A zip in a zip is opened, no deeper (a zip that contains itself would never end), and
        // everything extracted by one import shares one byte budget (zip bombs).
        if (zip_depth_ >= kMaxZipDepth)
          throw Error(ErrorCode::UnsupportedFormat,
                      display + ": a .zip inside a .zip inside a .zip; unpack the outer archives first");
        if (extract_budget_ == 0)
          throw Error(ErrorCode::TooLarge, display + ": the archives of this import hold more than " +
                                               std::to_string(kExtractBudgetBytes() >> 20) + " MiB");
        const auto files = io::extract_zip(p, dest, display, extract_budget_);
        for (const auto& f : files) {
          const std::uint64_t size = fs::file_size(f, ec);
          extract_budget_ -= std::min(extract_budget_, ec ? 0 : size);
        }
        ++zip_depth_;
        struct Leave {
          int& depth;
          ~Leave() { --depth; }
        } leave{zip_depth_};
        collect(dest, display, false, found);
      } catch (const Error& e) {
        out_.error(display, Error(e.code(), rename_in_message(e.what(), p, display)));
      }
      return;
    }
    if (!image_ending(name).empty()) {
      found.images.emplace_back(p, display);
      return;
    }
    if (has_ending(name, ".dcm") || io::is_dicom_file(p)) {
      found.dicom.emplace_back(p, display);
      return;
    }
    if (given)
      throw Error(ErrorCode::UnsupportedFormat,
                  display +
                      ": not an image, DICOM file, .zip or nnU-Net dataset (expected .nii.gz, .nii, .nrrd, "
                      ".mha, .png, .tif, DICOM or .zip)");
    ++out_.ignored;
  }

  std::string modality_for(const std::vector<std::string>& channels) const {
    if (!options_.modality.empty()) return options_.modality;
    return guess_modality(channels);
  }

  void import_image(const fs::path& path, const std::string& display) {
    try {
      Pending p;
      p.image = io::read_image(path);
      p.format = lower(image_ending(path.filename().string()).substr(1));
      // The name the file came with (an upload's client name, a folder entry), not our scratch name.
      p.name = io::strip_image_extension(fs::path(display).filename());
      p.channels = p.image.channel_names;
      if (static_cast<int>(p.channels.size()) != p.image.channels()) {
        p.channels.clear();
        for (int c = 0; c < p.image.channels(); ++c) p.channels.push_back(generic_channel(c));
      }
      p.modality = p.image.modality.empty() ? modality_for(p.channels) : p.image.modality;
      p.display = display;
      p.demo = options_.demo;
      store_case(p);
    } catch (const Error& e) {
      out_.error(display, Error(e.code(), rename_in_message(e.what(), path, display)));
    }
  }

  static Volume stack(std::vector<Volume> parts) {
    if (parts.size() == 1) return std::move(parts[0]);
    bool same = true;
    for (const auto& v : parts) same = same && v.pixel_type() == parts[0].pixel_type();
    if (!same)
      for (auto& v : parts) v = v.as_type(PixelType::Float32);
    return Volume::stack_channels(parts);
  }

  void import_dataset(const fs::path& root, const std::string& display) {
    io::NnunetDataset ds;
    try {
      ds = io::read_nnunet_dataset(root);
    } catch (const Error& e) {
      out_.error(display, e);
      return;
    }
    bool synthetic = false;
    try {
      std::ifstream in(root / "dataset.json");
      json j = json::parse(in);
      synthetic = j.value("synthetic", false);
    } catch (const std::exception&) {
    }
    const bool demo = options_.demo || synthetic;
    auto one = [&](const io::NnunetCase& c) {
      const std::string case_display = display + ": case " + c.id;
      try {
        std::vector<Volume> parts;
        for (const auto& f : c.channels) parts.push_back(io::read_image(f));
        for (std::size_t k = 1; k < parts.size(); ++k)
          if (!parts[k].geometry().same_grid(parts[0].geometry()))
            throw Error(ErrorCode::GeometryMismatch,
                        case_display + ": channel " + std::to_string(k) +
                            " is not on the grid of channel 0: " + parts[k].geometry().difference(parts[0].geometry()));
        Pending p;
        p.image = stack(std::move(parts));
        for (std::size_t k = 0; k < static_cast<std::size_t>(p.image.channels()); ++k)
          p.channels.push_back(k < ds.channel_names.size() && !ds.channel_names[k].empty() ? ds.channel_names[k]
                                                                                           : generic_channel(k));
        p.image.channel_names = p.channels;
        p.modality = modality_for(p.channels);
        if (!c.label.empty()) {
          const Geometry grid = p.image.geometry();
          p.label = io::read_label(c.label, &grid);
        }
        p.name = c.id;
        p.display = case_display;
        p.format = "nnunet";
        p.dataset = ds.name;
        p.demo = demo;
        store_case(p);
      } catch (const Error& e) {
        out_.error(case_display, e);
      }
    };
    for (const auto& c : ds.training) one(c);
    for (const auto& c : ds.test) one(c);
  }

  void import_dicom(const std::vector<std::pair<fs::path, std::string>>& files, const std::string& display) {
    const io::DeidKey key = deid_key(lab_);
    const fs::path dir = scratch_.path() / ("deid" + std::to_string(++counter_));
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(ErrorCode::IoFailure, "cannot create a scratch folder: " + ec.message());
    struct SeriesIds {
      std::string pseudonym, study;
    };
    std::map<std::string, SeriesIds> by_series;  // de-identified SeriesInstanceUID -> ids
    int n = 0;
    for (const auto& [path, name] : files) {
      try {
        io::DeidResult r = io::deidentify_dicom_file(path, dir / (std::to_string(++n) + ".dcm"), key);
        by_series[r.series_instance_uid] = SeriesIds{r.pseudonym, r.study_instance_uid};
      } catch (const Error& e) {
        out_.error(name, Error(e.code(), rename_in_message(e.what(), path, name)));
      }
    }
    if (by_series.empty()) return;
    std::vector<io::DicomSeriesInfo> series;
    try {
      series = io::scan_dicom(dir);
    } catch (const Error& e) {
      out_.error(display, Error(e.code(), rename_in_message(e.what(), dir, display)));
      return;
    }
    for (const auto& s : series) {
      const std::string label = display + " (DICOM series " + std::to_string(s.series_number) + ", " +
                                (s.modality.empty() ? std::string("no modality") : s.modality) + ")";
      if (!s.readable) {
        out_.skipped.push_back(json{{"file", label}, {"reason", "not an image series (e.g. SEG, report)"}});
        continue;
      }
      try {
        Pending p;
        p.image = io::read_dicom_series(s);
        p.modality = s.modality.empty() ? "OT" : s.modality;
        if (!s.channel_names.empty() && static_cast<int>(s.channel_names.size()) == p.image.channels()) {
          p.channels = s.channel_names;
        } else if (p.image.channels() == 1) {
          p.channels = {p.modality};
        } else {
          for (int c = 0; c < p.image.channels(); ++c) p.channels.push_back(generic_channel(c));
        }
        auto it = by_series.find(s.series_instance_uid);
        p.pseudonym = it != by_series.end() ? it->second.pseudonym : std::string();
        p.study_key = it != by_series.end() ? it->second.study : s.study_instance_uid;
        if (p.pseudonym.empty()) p.pseudonym = "PAT-UNKNOWN";
        p.name = p.pseudonym + "_" + p.modality + "_s" + std::to_string(s.series_number);
        p.display = label;
        p.format = "dicom";
        p.demo = options_.demo;
        try {
          p.dicom_source = io::dicom_source_ref(s);
        } catch (const Error& e) {  // the case still imports; only DICOM SEG output is unavailable
          log_warn("import: DICOM series " + std::to_string(s.series_number) +
                   ": no source references kept for DICOM SEG output (" + std::string(e.info().name) + ")");
        }
        store_case(p);
      } catch (const Error& e) {
        out_.error(label, Error(e.code(), rename_in_message(e.what(), dir, display)));
      }
    }
  }

  void store_case(Pending& p) {
    auto& st = lab_.store();
    if (p.label && !p.label->geometry().same_grid(p.image.geometry()))
      throw Error(ErrorCode::GeometryMismatch,
                  p.display + ": label not on the image grid: " + p.label->geometry().difference(p.image.geometry()));
    const fs::path image_file = scratch_file(".nii.gz");
    p.image.modality = p.modality;
    io::write_image(p.image, image_file);
    const store::StoredFile stored = st.put_image_file(image_file.string());
    std::error_code ec;
    fs::remove(image_file, ec);
    if (p.dicom_source) save_dicom_source(lab_, stored.sha256, *p.dicom_source);
    std::optional<store::StoredFile> label_file;
    std::int64_t voxels = 0;
    const Geometry& grid = p.image.geometry();
    if (p.label) {
      const fs::path lf = scratch_file(".nii.gz");
      io::write_label(*p.label, lf);
      label_file = st.put_label_bytes(read_file(lf));
      fs::remove(lf, ec);
      voxels = p.label->count_nonzero();
    }
    const bool ground_truth = p.label && !p.demo;
    const bool queue = options_.presegment && (!p.label || p.demo);
    std::optional<Id> by;
    if (actor_.user_id > 0) by = actor_.user_id;

    std::optional<Id> duplicate_of;
    store::Case c;
    std::optional<store::Job> job;
    std::optional<Id> revision_id;
    st.write([&](store::WriteTxn& t) {
      duplicate_of.reset();
      job.reset();
      revision_id.reset();
      if (auto existing = t.find_image_by_hash(stored.sha256)) {
        duplicate_of = existing->id;
        return;
      }
      store::NewImage ni;
      if (!p.pseudonym.empty()) {
        const store::Patient patient = t.add_patient(p.pseudonym);
        ni.study_id = t.add_study(patient.id, p.study_key, "").id;
      }
      ni.sha256 = stored.sha256;
      ni.modality = p.modality;
      ni.channel_names = p.channels;
      ni.size = {grid.size[0], grid.size[1], grid.size[2]};
      ni.spacing_mm = {grid.spacing_mm[0], grid.spacing_mm[1], grid.spacing_mm[2]};
      ni.demo = p.demo;
      const store::Image image = t.add_image(ni);
      std::string name = p.name.empty() ? "case" : p.name;
      for (int k = 2; t.find_case(name); ++k) name = (p.name.empty() ? "case" : p.name) + "-" + std::to_string(k);
      c = t.add_case(store::NewCase{name, image.id, std::nullopt});
      if (p.label) {
        store::NewRevision nr;
        nr.case_id = c.id;
        nr.author_user_id = by;
        // Without a user (demo seeding, `tumorlab import`) the revision names its source.
        if (!by) nr.model_name = p.demo ? "synthetic-demo" : (p.dataset.empty() ? "import" : p.dataset);
        nr.kind = store::RevisionKind::Imported;
        nr.voxel_count = voxels;
        nr.volume_ml = static_cast<double>(voxels) * grid.voxel_volume_ml();
        nr.sha256 = label_file->sha256;
        nr.note = p.demo ? "synthetic demo reference label (not ground truth of real data)"
                         : "imported ground truth" + (p.dataset.empty() ? std::string() : " (" + p.dataset + ")");
        revision_id = t.add_revision(nr).id;
      }
      if (ground_truth) {
        t.set_case_status(c.id, store::CaseStatus::InProgress, by, "imported ground truth");
        t.set_case_status(c.id, store::CaseStatus::Submitted, by, "imported ground truth");
        t.set_case_status(c.id, store::CaseStatus::Validated, by, "imported ground truth");
      }
      if (queue) {
        store::NewJob nj;
        nj.type = store::JobType::Presegment;
        nj.priority = store::JobPriority::Presegment;
        nj.owner_user_id = by;
        nj.case_id = c.id;
        nj.params_json = json{{"origin", options_.origin}}.dump();
        job = t.enqueue_job(nj);
      }
      json detail{{"origin", options_.origin}, {"format", p.format},      {"demo", p.demo},
                  {"image_id", image.id},      {"sha256", stored.sha256}, {"modality", p.modality}};
      if (!p.dataset.empty()) detail["dataset"] = p.dataset;
      if (revision_id) detail["revision_id"] = *revision_id;
      if (job) detail["job_id"] = job->id;
      t.append_audit(audit_entry(actor_, "import", c.id, std::move(detail)));
      c = t.get_case(c.id);
    });
    if (duplicate_of) {
      out_.skipped.push_back(
          json{{"file", p.display},
               {"reason", "already stored: the same image is image " + std::to_string(*duplicate_of)},
               {"image_id", *duplicate_of}});
      return;
    }
    out_.cases.push_back(json{{"id", c.id},
                              {"name", c.name},
                              {"image_id", c.image_id},
                              {"status", std::string(store::to_string(c.status))},
                              {"current_revision_id", c.current_revision_id ? json(*c.current_revision_id) : json()},
                              {"demo", c.demo},
                              {"modality", p.modality},
                              {"channels", p.channels}});
    if (job)
      out_.jobs.push_back(json{{"id", job->id},
                               {"type", std::string(store::to_string(job->type))},
                               {"state", std::string(store::to_string(job->state))},
                               {"case_id", c.id}});
  }

  static constexpr int kMaxZipDepth = 2;
  static std::uint64_t kExtractBudgetBytes() { return max_volume_bytes() * 2; }

  Lab& lab_;
  const Actor& actor_;
  const ImportOptions& options_;
  Collector& out_;
  ScratchDir scratch_;
  int counter_ = 0;
  int zip_depth_ = 0;
  std::uint64_t extract_budget_ = kExtractBudgetBytes();
  std::vector<std::pair<fs::path, std::string>> dicom_;
  std::vector<std::string> dicom_sources_;
};

json answer(const Collector& c) {
  return json{
      {"cases", c.cases}, {"jobs", c.jobs}, {"skipped", c.skipped}, {"errors", c.errors}, {"ignored_files", c.ignored}};
}

std::string display_filename(const std::string& raw) {
  std::string out;
  for (char ch : raw) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) continue;
    out.push_back(ch);
  }
  if (out.size() > 200) out = out.substr(out.size() - 200);
  return out.empty() ? "upload" : out;
}

}  // namespace

std::string guess_modality(const std::vector<std::string>& channel_names) {
  std::string found;
  for (const auto& raw : channel_names) {
    std::string n = lower(raw);
    std::string m;
    if (n == "ct" || n.rfind("ct ", 0) == 0 || n.rfind("ct-", 0) == 0 || n.rfind("ct_", 0) == 0)
      m = "CT";
    else if (n.find("pet") != std::string::npos || n == "pt" || n.find("suv") != std::string::npos)
      m = "PT";
    else if (n.find("flair") != std::string::npos || n.rfind("t1", 0) == 0 || n.rfind("t2", 0) == 0 ||
             n.find("dwi") != std::string::npos || n.find("adc") != std::string::npos || n == "mr" || n == "mri" ||
             n == "pd")
      m = "MR";
    if (m.empty()) continue;
    if (!found.empty() && found != m) return "";  // mixed: no guess
    found = m;
  }
  return found;
}

json import_scans(Lab& lab, const Actor& actor, const std::vector<ImportInput>& inputs, const ImportOptions& options) {
  Collector out;
  {
    Importer importer(lab, actor, options, out);
    for (const auto& in : inputs) importer.run(in);
    importer.finish();
  }
  return answer(out);
}

namespace {

// Durable write of an upload part: temp name, fsync, rename (the folder is fsynced by the caller).
void write_file_durable(const fs::path& p, const std::string& bytes) {
  const fs::path tmp = p.string() + ".part";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorCode::IoFailure, "cannot write upload file " + p.filename().string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw Error(ErrorCode::IoFailure, "cannot write upload file " + p.filename().string());
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  std::error_code ec;
  if (!synced) throw Error(ErrorCode::IoFailure, "cannot fsync upload file " + p.filename().string());
  fs::rename(tmp, p, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot rename upload file " + p.filename().string() + ": " + ec.message());
}

void fsync_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::IoFailure, "cannot open folder " + dir.string());
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw Error(ErrorCode::IoFailure, "cannot fsync folder " + dir.string());
}

// Writes the parts as <dir>/u<i><ext> (our own names: the index and a recognised extension, never
// the client's name); parts refused before reading go to `early`.
std::vector<ImportInput> write_upload_parts(const fs::path& dir, const std::vector<UploadPart>& parts, Collector& early,
                                            bool durable) {
  std::vector<ImportInput> inputs;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string display = display_filename(parts[i].filename);
    if (parts[i].bytes.empty()) {
      early.error(display, Error(ErrorCode::BadArgument, display + ": empty file"));
      continue;
    }
    std::string ext = image_ending(display);
    if (ext.empty() && has_ending(display, ".zip")) ext = ".zip";
    if (ext.empty() && has_ending(display, ".dcm")) ext = ".dcm";
    if (ext == ".nhdr" || ext == ".mhd") {
      early.error(display, Error(ErrorCode::UnsupportedFormat,
                                 display + ": a header that points at a separate data file; upload the folder as a "
                                           ".zip, or use .nrrd / .mha"));
      continue;
    }
    const fs::path path = dir / ("u" + std::to_string(i) + ext);
    if (durable)
      write_file_durable(path, parts[i].bytes);
    else
      write_file(path, parts[i].bytes);
    inputs.push_back(ImportInput{path, display});
  }
  if (durable && !inputs.empty()) fsync_folder(dir);
  return inputs;
}

// The answer of an upload import: early errors first; when nothing was imported and nothing
// skipped, the first error is thrown (its code, its message naming the file).
json upload_outcome(json result, const json& early_errors, const std::vector<Error>& early_thrown,
                    const std::string& first_name) {
  for (auto it = early_errors.rbegin(); it != early_errors.rend(); ++it)
    result["errors"].insert(result["errors"].begin(), *it);
  if (result["cases"].empty() && result["skipped"].empty() && !result["errors"].empty()) {
    // Nothing stored: the request failed, with the first file's error.
    if (!early_thrown.empty()) throw early_thrown.front();
    const json& e = result["errors"].front();
    ErrorCode code = ErrorCode::CorruptFile;
    std::size_t n = 0;
    const ErrorInfo* table = error_table(&n);
    for (std::size_t k = 0; k < n; ++k)
      if (table[k].name == e["code"].get<std::string>()) code = table[k].code;
    std::string msg = e["message"].get<std::string>();
    const std::string file = e["file"].get<std::string>();
    if (msg.find(file) == std::string::npos) msg = file + ": " + msg;
    throw Error(code, msg);
  }
  if (result["cases"].empty() && result["skipped"].empty() && result["errors"].empty())
    throw Error(ErrorCode::EmptyInput, "upload: no image, DICOM series or nnU-Net dataset found in " + first_name);
  return result;
}

void require_parts(const std::vector<UploadPart>& parts) {
  if (parts.empty())
    throw Error(ErrorCode::BadArgument,
                "upload: no file (send the file as the body with ?filename=, or as "
                "multipart/form-data file parts)");
}

bool valid_incoming_name(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

json import_uploads(Lab& lab, const Actor& actor, const std::vector<UploadPart>& parts, const ImportOptions& options) {
  require_parts(parts);
  ScratchDir dir(lab, "upload");
  Collector early;
  const std::vector<ImportInput> inputs = write_upload_parts(dir.path(), parts, early, false);
  ImportOptions o = options;
  if (o.origin == "cli") o.origin = "upload";
  return upload_outcome(import_scans(lab, actor, inputs, o), early.errors, early.thrown,
                        display_filename(parts.front().filename));
}

json queue_upload_import(Lab& lab, const Actor& actor, const std::vector<UploadPart>& parts,
                         const ImportOptions& options) {
  require_parts(parts);
  const std::string token = store::sha256_hex(store::random_token()).substr(0, 32);
  const fs::path dir = lab.data_dir() / "incoming" / token;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot create the upload folder: " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  Collector early;
  std::vector<ImportInput> inputs;
  try {
    inputs = write_upload_parts(dir, parts, early, true);
    if (inputs.empty()) throw early.thrown.front();
  } catch (...) {
    fs::remove_all(dir, ec);
    throw;
  }
  json files = json::array();
  for (const auto& in : inputs) files.push_back({{"file", in.path.filename().string()}, {"name", in.display_name}});
  json params{{"folder", token},
              {"files", files},
              {"modality", options.modality},
              {"origin", options.origin == "cli" ? std::string("upload") : options.origin},
              {"early_errors", early.errors}};
  Id job_id = 0;
  try {
    job_id = lab.store().write([&](store::WriteTxn& t) -> Id {
      store::NewJob nj;
      nj.type = store::JobType::Import;
      nj.priority = store::JobPriority::Presegment;
      nj.owner_user_id = actor.user_id > 0 ? std::optional<Id>(actor.user_id) : std::nullopt;
      nj.params_json = params.dump();
      const store::Job j = t.enqueue_job(nj);
      t.append_audit(audit_entry(actor, "job.enqueue", std::nullopt,
                                 {{"job_id", j.id}, {"type", "import"}, {"files", files.size()}}));
      return j.id;
    });
  } catch (...) {
    fs::remove_all(dir, ec);
    throw;
  }
  return get_job(lab, actor, job_id);
}

json run_import_job(Lab& lab, const Actor& actor, const json& params) {
  const std::string token = params.value("folder", std::string());
  if (!valid_incoming_name(token)) throw Error(ErrorCode::BadArgument, "import job: params.folder is not valid");
  const fs::path dir = lab.data_dir() / "incoming" / token;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  std::vector<ImportInput> inputs;
  std::string first_name = "upload";
  for (const auto& f : params.value("files", json::array())) {
    const std::string file = f.value("file", std::string());
    // Our own names only (u<index><ext>): nothing from the job row may leave the folder.
    if (file.empty() || file[0] != 'u' || file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw Error(ErrorCode::BadArgument, "import job: params.files holds a name that is not ours");
    const fs::path p = dir / file;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec))
      throw Error(ErrorCode::FileNotFound,
                  "import job: the uploaded file " + f.value("name", file) + " is gone (the job's folder was removed)");
    inputs.push_back(ImportInput{p, f.value("name", file)});
  }
  if (!inputs.empty()) first_name = inputs.front().display_name;
  ImportOptions o;
  o.modality = params.value("modality", std::string());
  o.origin = params.value("origin", std::string("upload"));
  const json early = params.value("early_errors", json::array());
  std::vector<Error> early_thrown;  // they were not all refused (the job would not exist): no throw
  return upload_outcome(import_scans(lab, actor, inputs, o), early, early_thrown, first_name);
}

void sweep_incoming(Lab& lab) {
  const fs::path root = lab.data_dir() / "incoming";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  std::set<std::string> live;
  lab.store().read([&](store::ReadTxn& t) {
    for (store::JobState st : {store::JobState::Queued, store::JobState::Running}) {
      store::JobFilter f;
      f.state = st;
      f.type = store::JobType::Import;
      f.limit = 100000;
      for (const auto& j : t.list_jobs(f)) {
        const json p = stored_object(j.params_json);
        if (p.contains("folder")) live.insert(p.value("folder", std::string()));
      }
    }
    return 0;
  });
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (live.count(name)) continue;
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    log_info("import: removed the incoming folder of an import job that will not run");
  }
}

json seed_demo_cases(Lab& lab) {
  ScratchDir dir(lab, "demo");
  DemoDataRequest req;
  req.output = dir.path();
  const DemoDataResult written = write_demo_data(req);
  std::vector<ImportInput> inputs;
  for (const auto& d : written.datasets) inputs.push_back(ImportInput{d, d.filename().string()});
  ImportOptions o;
  o.demo = true;
  o.origin = "demo";
  Actor system{0, "system", "admin", ""};
  return import_scans(lab, system, inputs, o);
}

}  // namespace tumorlab::app
