#include "tumorlab/app/prediction.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/model/predictor.h"

#ifndef TUMORLAB_SOURCE_MODELS_DIR
#define TUMORLAB_SOURCE_MODELS_DIR ""
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace tumorlab::app {
namespace {

struct CaseInput {
  std::string id;
  std::vector<fs::path> files;                 // image files in channel order (empty for DICOM)
  std::optional<io::DicomSeriesInfo> series;   // DICOM series
  bool png = false;                            // write the label as PNG
};

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  return out;
}

// Image-file ending of a name (".nii.gz", ".png", ...) or "" when not an image file we read.
std::string image_ending(const fs::path& path) {
  const std::string name = path.filename().string();
  for (const char* e : {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff"}) {
    const std::string ext = e;
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) return ext;
  }
  return "";
}

void add_dicom_cases(const fs::path& source, std::vector<CaseInput>& cases) {
  int added = 0;
  for (const auto& s : io::scan_dicom(source)) {
    if (!s.readable) continue;
    CaseInput c;
    c.id = std::to_string(s.series_number) + (s.series_description.empty() ? "" : "_" + sanitize(s.series_description));
    c.series = s;
    cases.push_back(std::move(c));
    ++added;
  }
  if (added == 0) throw Error(ErrorCode::EmptyInput, source.string() + ": no readable DICOM image series");
}

void add_folder_cases(const fs::path& folder_in, int channels, std::vector<CaseInput>& cases) {
  fs::path folder = folder_in;
  if (io::is_nnunet_dataset(folder)) folder = fs::is_directory(folder / "imagesTs") ? folder / "imagesTs" : folder / "imagesTr";
  std::set<std::string> endings;
  bool any_file = false;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.empty() || name[0] == '.') continue;
    any_file = true;
    const std::string ending = image_ending(e.path());
    if (!ending.empty()) endings.insert(ending);
  }
  if (endings.empty()) {  // no image files: a DICOM folder
    if (!any_file && fs::is_empty(folder)) throw Error(ErrorCode::EmptyInput, folder.string() + ": empty folder");
    add_dicom_cases(folder, cases);
    return;
  }
  if (endings.size() > 1) {
    std::string list;
    for (const auto& e : endings) list += " " + e;
    throw Error(ErrorCode::InvalidDataset, folder.string() + ": mixes image formats (" + list.substr(1) +
                                               "); an imagesTr-style folder holds <case>_<XXXX><ending> of one ending");
  }
  const std::string ending = *endings.begin();
  for (auto& nc : io::group_channel_files(folder, ending, channels)) {
    CaseInput c;
    c.id = nc.id;
    c.files = nc.channels;
    c.png = ending == ".png";
    cases.push_back(std::move(c));
  }
}

std::vector<CaseInput> collect_cases(const std::vector<fs::path>& inputs, int channels) {
  std::vector<CaseInput> cases;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!fs::exists(input, ec)) throw Error(ErrorCode::FileNotFound, input.string() + ": no such file or folder");
    if (fs::is_directory(input, ec)) {
      add_folder_cases(input, channels, cases);
    } else if (io::format_from_path(input) == io::ImageFormat::Dicom) {
      add_dicom_cases(input, cases);
    } else {
      CaseInput c;
      c.id = io::strip_image_extension(input);
      c.files = {input};
      c.png = io::format_from_path(input) == io::ImageFormat::Png;
      cases.push_back(std::move(c));
    }
  }
  if (cases.empty()) throw Error(ErrorCode::EmptyInput, "no cases to predict");
  std::set<std::string> ids;
  for (const auto& c : cases) {
    if (!ids.insert(c.id).second) {
      throw Error(ErrorCode::BadArgument, "two inputs give the case name '" + c.id +
                                              "'; outputs would overwrite each other: predict them into separate folders");
    }
  }
  return cases;
}

Volume read_case(const CaseInput& c) {
  if (c.series) return io::read_dicom_series(*c.series);
  if (c.files.size() == 1) return io::read_image(c.files[0]);
  std::vector<Volume> parts;
  bool same_type = true;
  for (const auto& f : c.files) {
    parts.push_back(io::read_image(f));
    same_type = same_type && parts.back().pixel_type() == parts.front().pixel_type();
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (!parts[i].geometry().same_grid(parts[0].geometry())) {
      throw Error(ErrorCode::GeometryMismatch, c.files[i].string() + ": not on the grid of " + c.files[0].string() +
                                                   ": " + parts[i].geometry().difference(parts[0].geometry()));
    }
  }
  if (!same_type) {
    for (auto& p : parts) p = p.as_type(PixelType::Float32);
  }
  const std::string modality = parts[0].modality;
  Volume v = Volume::stack_channels(parts);
  v.modality = modality;
  return v;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
    if (!out) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, path.string() + ": cannot write: " + ec.message());
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

json timings_json(const CaseResult& r) {
  return {{"read_seconds", r.read_seconds},
          {"preprocess_seconds", r.preprocess_seconds},
          {"infer_seconds", r.infer_seconds},
          {"resample_seconds", r.resample_seconds},
          {"postprocess_seconds", r.postprocess_seconds},
          {"write_seconds", r.write_seconds},
          {"seconds", r.seconds},
          {"model_load_seconds", r.model_load_seconds}};
}

}  // namespace

fs::path resolve_model(const std::string& model) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return model;
  std::vector<fs::path> tried{model};
  const bool plain_name = fs::path(model).filename().string() == model;
  if (plain_name) {
    std::vector<fs::path> roots;
    if (const char* env = std::getenv("TUMORLAB_MODELS_DIR")) roots.emplace_back(env);
    roots.emplace_back("models");
    if (std::string(TUMORLAB_SOURCE_MODELS_DIR).size() > 0) roots.emplace_back(TUMORLAB_SOURCE_MODELS_DIR);
    for (const auto& root : roots) {
      const fs::path candidate = root / model;
      if (fs::is_directory(candidate, ec)) return candidate;
      tried.push_back(candidate);
    }
  }
  std::string list;
  for (const auto& t : tried) list += "\n  " + t.string();
  throw Error(ErrorCode::FileNotFound, "model '" + model + "': no bundle folder found; tried:" + list);
}

imaging::Box parse_roi(const std::string& text) {
  std::vector<int64_t> v;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      std::size_t used = 0;
      v.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw Error(ErrorCode::BadArgument, "--roi: '" + part + "' is not an integer (expected i0,j0,k0,i1,j1,k1)");
    }
  }
  if (v.size() != 6) {
    throw Error(ErrorCode::BadArgument, "--roi: expected 6 integers i0,j0,k0,i1,j1,k1 (voxels, end exclusive), found " +
                                            std::to_string(v.size()));
  }
  imaging::Box box{{v[0], v[1], v[2]}, {v[3], v[4], v[5]}};
  if (box.empty() || v[0] < 0 || v[1] < 0 || v[2] < 0) {
    throw Error(ErrorCode::BadArgument, "--roi: " + text + " is empty or negative; give begin < end per axis (end exclusive)");
  }
  return box;
}

std::vector<CaseResult> predict(const PredictRequest& request,
                                const std::function<void(const CaseResult&, int, int)>& on_case) {
  const fs::path bundle = resolve_model(request.model);
  const auto load_start = std::chrono::steady_clock::now();
  const model::Predictor predictor = model::Predictor::load(bundle);
  const double model_load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const int channels = static_cast<int>(predictor.plans().channels.size());
  const std::vector<CaseInput> cases = collect_cases(request.inputs, channels);

  std::error_code ec;
  fs::create_directories(request.output, ec);
  if (ec) throw Error(ErrorCode::IoFailure, request.output.string() + ": cannot create folder: " + ec.message());

  model::PredictOptions options;
  options.tta = request.tta;
  options.uncertainty = request.uncertainty;
  options.roi = request.roi;
  options.threads = request.threads;
  options.overlap = request.overlap;
  options.bf16 = model::resolve_bf16(request.bf16, predictor.plans().inference.bf16);

  std::vector<CaseResult> results;
  for (const auto& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    options.source = "case '" + c.id + "'";
    const Volume image = read_case(c);
    const auto t_read = std::chrono::steady_clock::now();
    const model::Prediction p = predictor.predict(image, options);
    const auto t_predict = std::chrono::steady_clock::now();
    CaseResult r;
    r.id = c.id;
    r.label_file = request.output / (c.id + (c.png ? ".png" : ".nii.gz"));
    io::write_label(p.label, r.label_file);
    if (request.uncertainty) {
      r.uncertainty_file = request.output / (c.id + "_uncertainty.nii.gz");
      io::write_image(p.uncertainty, r.uncertainty_file);
      r.score = p.case_score;
    }
    if (request.probabilities) {
      r.probability_file = request.output / (c.id + "_probability.nii.gz");
      io::write_image(p.probability, r.probability_file);
    }
    r.foreground_voxels = p.foreground_voxels;
    r.volume_ml = p.foreground_ml;
    r.predict_seconds = p.seconds;
    const auto t_end = std::chrono::steady_clock::now();
    r.seconds = std::chrono::duration<double>(t_end - t0).count();
    r.read_seconds = std::chrono::duration<double>(t_read - t0).count();
    r.preprocess_seconds = p.preprocess_seconds;
    r.infer_seconds = p.infer_seconds;
    r.resample_seconds = p.resample_seconds;
    r.postprocess_seconds = p.postprocess_seconds;
    r.write_seconds = std::chrono::duration<double>(t_end - t_predict).count();
    r.model_load_seconds = model_load_seconds;
    r.bf16 = p.bf16;
    results.push_back(r);
    if (on_case) on_case(r, static_cast<int>(results.size()), static_cast<int>(cases.size()));
  }

  if (!request.timings_file.empty()) {
    json t;
    t["model"] = predictor.name();
    t["model_load_seconds"] = model_load_seconds;
    t["threads"] = request.threads;
    t["bf16"] = *options.bf16;
    t["tta"] = request.tta;
    t["cases"] = json::array();
    for (const auto& r : results) {
      json c = timings_json(r);
      c["case"] = r.id;
      t["cases"].push_back(c);
    }
    write_text(request.timings_file, t.dump(2) + "\n");
  }
  if (request.uncertainty) {
    std::vector<CaseResult> ranked = results;
    std::stable_sort(ranked.begin(), ranked.end(), [](const CaseResult& a, const CaseResult& b) { return a.score > b.score; });
    json j;
    j["model"] = predictor.name();
    j["model_version"] = predictor.version();
    j["score"] =
        "mean normalised entropy of the mean softmax over the voxels predicted foreground or with entropy >= 0.1; "
        "higher = less certain; see docs/uncertainty.md";
    j["cases"] = json::array();
    std::string csv = "case,score,foreground_voxels,volume_ml,seconds\n";
    int rank = 0;
    for (const auto& r : ranked) {
      j["cases"].push_back({{"rank", ++rank},
                            {"case", r.id},
                            {"score", r.score},
                            {"foreground_voxels", r.foreground_voxels},
                            {"volume_ml", r.volume_ml},
                            {"seconds", r.seconds},
                            {"timings", timings_json(r)},
                            {"label", r.label_file.filename().string()},
                            {"uncertainty", r.uncertainty_file.filename().string()}});
      csv += csv_field(r.id) + "," + fixed(r.score, 6) + "," + std::to_string(r.foreground_voxels) + "," +
             fixed(r.volume_ml, 4) + "," + fixed(r.seconds, 3) + "\n";
    }
    write_text(request.output / "scores.json", j.dump(2) + "\n");
    write_text(request.output / "scores.csv", csv);
  }
  return results;
}

}  // namespace tumorlab::app
