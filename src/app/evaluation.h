#pragma once
// `tumorlab evaluate`: pairs predicted and reference labels by case name and computes metrics.

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/imaging/metrics.h"

namespace tumorlab::app {

struct EvaluationOptions {
  imaging::MetricOptions metrics;
  // A reference case with no prediction is an error unless it is scored as an empty prediction.
  bool missing_as_empty = false;
  int threads = 0;  // 0: one per core
};

struct CaseEvaluation {
  std::string case_id;
  std::filesystem::path pred, ref;  // pred empty when scored as missing
  imaging::SegmentationMetrics metrics;
};

struct MetricSummary {
  std::string metric;
  double mean = 0, median = 0, min = 0, max = 0;
  int64_t n = 0;          // cases where the metric is defined
  int64_t undefined = 0;  // cases where it is not (NaN)
};

struct EvaluationReport {
  std::vector<CaseEvaluation> cases;          // sorted by case id
  std::vector<std::string> predictions_without_reference;
  std::vector<MetricSummary> summary;
  std::vector<std::string> worst_cases;       // lowest Dice first (up to 5)
};

// Label files are "<case><ext>" with any supported image extension. Errors: FileNotFound,
// EmptyInput (no labels in ref), BadArgument (reference cases without a prediction, listed),
// GeometryMismatch (naming the case and how the grids differ), InvalidLabel.
EvaluationReport evaluate_folders(const std::filesystem::path& pred_dir, const std::filesystem::path& ref_dir,
                                  const EvaluationOptions& options = {},
                                  const std::function<void(int done, int total)>& progress = {});

// Metric names in report order, and how to read one from a result.
const std::vector<std::string>& metric_names();
double metric_value(const imaging::SegmentationMetrics& m, const std::string& name);

nlohmann::json to_json(const EvaluationReport& report);
std::string to_csv(const EvaluationReport& report);
std::string to_text(const EvaluationReport& report);

}  // namespace tumorlab::app
