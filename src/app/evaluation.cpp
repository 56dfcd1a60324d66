#include "tumorlab/app/evaluation.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"

namespace fs = std::filesystem;

namespace tumorlab::app {
namespace {

std::map<std::string, fs::path> label_files(const fs::path& dir, const char* role) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(ErrorCode::FileNotFound, std::string(role) + " folder " + dir.string() + ": no such folder");
  }
  std::map<std::string, fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const auto format = io::format_from_path(e.path());
    if (format == io::ImageFormat::Unknown || format == io::ImageFormat::Dicom) continue;
    const std::string id = io::strip_image_extension(e.path());
    auto [it, inserted] = out.emplace(id, e.path());
    if (!inserted) {
      throw Error(ErrorCode::BadArgument, std::string(role) + " folder " + dir.string() + ": case '" + id +
                                              "' has two label files (" + it->second.filename().string() + ", " +
                                              e.path().filename().string() + ")");
    }
  }
  return out;
}

double percentile50(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string fixed(double v, int precision = 4) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(precision) << v;
  return o.str();
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {
      "dice",         "iou",        "precision",  "recall",     "pred_volume_ml", "ref_volume_ml",
      "volume_diff_ml", "hd95_mm",  "assd_mm",    "surface_dice", "tp_lesions",   "fp_lesions",
      "fn_lesions",   "lesion_f1",  "fp_volume_ml", "fn_volume_ml"};
  return names;
}

double metric_value(const imaging::SegmentationMetrics& m, const std::string& name) {
  if (name == "dice") return m.dice;
  if (name == "iou") return m.iou;
  if (name == "precision") return m.precision;
  if (name == "recall") return m.recall;
  if (name == "pred_volume_ml") return m.pred_volume_ml;
  if (name == "ref_volume_ml") return m.ref_volume_ml;
  if (name == "volume_diff_ml") return m.volume_diff_ml;
  if (name == "hd95_mm") return m.hd95_mm;
  if (name == "assd_mm") return m.assd_mm;
  if (name == "surface_dice") return m.surface_dice;
  if (name == "tp_lesions") return static_cast<double>(m.tp_lesions);
  if (name == "fp_lesions") return static_cast<double>(m.fp_lesions);
  if (name == "fn_lesions") return static_cast<double>(m.fn_lesions);
  if (name == "lesion_f1") return m.lesion_f1;
  if (name == "fp_volume_ml") return m.fp_volume_ml;
  if (name == "fn_volume_ml") return m.fn_volume_ml;
  throw Error(ErrorCode::Internal, "unknown metric " + name);
}

EvaluationReport evaluate_folders(const fs::path& pred_dir, const fs::path& ref_dir, const EvaluationOptions& options,
                                  const std::function<void(int, int)>& progress) {
  const auto refs = label_files(ref_dir, "reference");
  const auto preds = label_files(pred_dir, "prediction");
  if (refs.empty()) {
    throw Error(ErrorCode::EmptyInput, "reference folder " + ref_dir.string() +
                                           ": no label files (<case>.nii.gz, .nii, .nrrd, .mha, .png, .tif)");
  }
  EvaluationReport report;
  std::vector<std::string> missing;
  for (const auto& [id, path] : refs) {
    auto it = preds.find(id);
    if (it == preds.end() && !options.missing_as_empty) {
      missing.push_back(id);
      continue;
    }
    report.cases.push_back({id, it == preds.end() ? fs::path() : it->second, path, {}});
  }
  if (!missing.empty()) {
    std::string list;
    for (std::size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", ...";
    throw Error(ErrorCode::BadArgument, pred_dir.string() + ": no prediction for " + std::to_string(missing.size()) +
                                            " of " + std::to_string(refs.size()) + " reference cases (" + list +
                                            "); use --missing-as-empty to score them as empty");
  }
  for (const auto& [id, path] : preds) {
    if (!refs.count(id)) report.predictions_without_reference.push_back(id);
  }

  // Score cases on worker threads; the first error stops the run.
  const int total = static_cast<int>(report.cases.size());
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::clamp(threads, 1, std::max(1, total));
  std::atomic<int> next{0}, done{0};
  std::exception_ptr failure;
  std::mutex mutex;
  auto worker = [&] {
    for (int i = next++; i < total; i = next++) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (failure) return;
      }
      try {
        auto& c = report.cases[i];
        const LabelMap ref = io::read_label(c.ref);
        LabelMap pred;
        if (c.pred.empty()) {
          pred = LabelMap(ref.geometry());
        } else {
          pred = io::read_label(c.pred);
          const std::string diff = ref.geometry().difference(pred.geometry());
          if (!diff.empty()) {
            throw Error(ErrorCode::GeometryMismatch, "case '" + c.case_id + "': prediction " +
                                                         c.pred.filename().string() + " and reference " +
                                                         c.ref.filename().string() + " are on different grids: " +
                                                         "reference " + diff.substr(0, diff.find(" vs ")) +
                                                         " vs prediction " + diff.substr(diff.find(" vs ") + 4));
          }
        }
        c.metrics = imaging::compute_metrics(pred, ref, options.metrics);
        const int d = ++done;
        if (progress) {
          std::lock_guard<std::mutex> lock(mutex);
          progress(d, total);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!failure) failure = std::current_exception();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);

  for (const auto& name : metric_names()) {
    MetricSummary s;
    s.metric = name;
    std::vector<double> values;
    for (const auto& c : report.cases) {
      const double v = metric_value(c.metrics, name);
      if (std::isfinite(v)) values.push_back(v);
      else ++s.undefined;
    }
    s.n = static_cast<int64_t>(values.size());
    if (!values.empty()) {
      double sum = 0;
      for (double v : values) sum += v;
      s.mean = sum / static_cast<double>(values.size());
      s.median = percentile50(values);
      s.min = *std::min_element(values.begin(), values.end());
      s.max = *std::max_element(values.begin(), values.end());
    } else {
      s.mean = s.median = s.min = s.max = std::nan("");
    }
    report.summary.push_back(s);
  }
  std::vector<const CaseEvaluation*> order;
  for (const auto& c : report.cases) order.push_back(&c);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto* a, const auto* b) { return a->metrics.dice < b->metrics.dice; });
  for (std::size_t i = 0; i < order.size() && i < 5; ++i) report.worst_cases.push_back(order[i]->case_id);
  return report;
}

nlohmann::json to_json(const EvaluationReport& r) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : r.cases) {
    nlohmann::json m;
    for (const auto& name : metric_names()) m[name] = num(metric_value(c.metrics, name));
    m["pred_voxels"] = c.metrics.pred_voxels;
    m["ref_voxels"] = c.metrics.ref_voxels;
    cases.push_back({{"case", c.case_id},
                     {"prediction", c.pred.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.pred.string())},
                     {"reference", c.ref.string()},
                     {"metrics", m}});
  }
  nlohmann::json summary;
  for (const auto& s : r.summary) {
    summary[s.metric] = {{"mean", num(s.mean)},     {"median", num(s.median)}, {"min", num(s.min)},
                         {"max", num(s.max)},       {"n", s.n},                {"undefined", s.undefined}};
  }
  return {{"cases", cases},
          {"summary", summary},
          {"worst_cases", r.worst_cases},
          {"predictions_without_reference", r.predictions_without_reference},
          {"definitions", "docs/metrics.md"}};
}

std::string to_csv(const EvaluationReport& r) {
  std::ostringstream o;
  o << "case";
  for (const auto& name : metric_names()) o << "," << name;
  o << "\n";
  o.precision(10);
  for (const auto& c : r.cases) {
    o << c.case_id;
    for (const auto& name : metric_names()) {
      const double v = metric_value(c.metrics, name);
      o << ",";
      if (std::isfinite(v)) o << v;
    }
    o << "\n";
  }
  return o.str();
}

std::string to_text(const EvaluationReport& r) {
  std::ostringstream o;
  o << std::left << std::setw(28) << "case" << std::right << std::setw(8) << "dice" << std::setw(8) << "iou"
    << std::setw(10) << "hd95_mm" << std::setw(9) << "assd_mm" << std::setw(9) << "surf_d" << std::setw(11)
    << "ref_ml" << std::setw(11) << "pred_ml" << std::setw(11) << "lesions" << "\n";
  for (const auto& c : r.cases) {
    const auto& m = c.metrics;
    std::string lesions = std::to_string(m.tp_lesions) + "/" + std::to_string(m.fp_lesions) + "/" +
                          std::to_string(m.fn_lesions);
    std::string id = c.case_id.size() > 27 ? c.case_id.substr(0, 26) + "~" : c.case_id;
    o << std::left << std::setw(28) << id << std::right << std::setw(8) << fixed(m.dice) << std::setw(8)
      << fixed(m.iou) << std::setw(10) << fixed(m.hd95_mm, 2) << std::setw(9) << fixed(m.assd_mm, 2) << std::setw(9)
      << fixed(m.surface_dice) << std::setw(11) << fixed(m.ref_volume_ml, 3) << std::setw(11)
      << fixed(m.pred_volume_ml, 3) << std::setw(11) << lesions << "\n";
  }
  o << "\n" << r.cases.size() << " cases (lesions: TP/FP/FN)\n";
  o << std::left << std::setw(16) << "metric" << std::right << std::setw(11) << "mean" << std::setw(11) << "median"
    << std::setw(11) << "min" << std::setw(11) << "max" << std::setw(6) << "n" << "\n";
  for (const auto& s : r.summary) {
    o << std::left << std::setw(16) << s.metric << std::right << std::setw(11) << fixed(s.mean) << std::setw(11)
      << fixed(s.median) << std::setw(11) << fixed(s.min) << std::setw(11) << fixed(s.max) << std::setw(6) << s.n;
    if (s.undefined) o << "  (" << s.undefined << " undefined)";
    o << "\n";
  }
  o << "worst cases by Dice:";
  for (const auto& id : r.worst_cases) o << " " << id;
  o << "\n";
  if (!r.predictions_without_reference.empty()) {
    o << "note: " << r.predictions_without_reference.size() << " predictions have no reference and were ignored\n";
  }
  return o.str();
}

}  // namespace tumorlab::app
