#pragma once
// `tumorlab train`: trains a model from an nnU-Net raw dataset and plans.json into a run folder
// (resumable), and optionally exports the best checkpoint as a model bundle.

#include <filesystem>
#include <string>
#include <vector>

#include "tumorlab/model/trainer.h"

namespace tumorlab::app {

struct TrainingRequest {
  model::TrainOptions options;          // dataset, plans, output, split, budget, threads, ...
  std::filesystem::path export_folder;  // when set: export_bundle(output, export_folder, export_which)
  std::string export_which = "best";    // "best", "last" or "average"
  std::string export_version = "1";
  bool export_only = false;             // skip training: export the run's existing checkpoint
};

struct TrainingOutcome {
  model::TrainResult result;
  std::filesystem::path exported;       // empty when nothing was exported
};

// Runs (or resumes) training; exports when asked, also after a stop by the time budget (the
// best checkpoint so far), but not after a cancel. Errors as model::train and export_bundle.
TrainingOutcome run_training(const TrainingRequest& request);

// `tumorlab ensemble`: one bundle in `output` whose networks are those of `members` (two or more
// bundles with the same plans); predict averages their probabilities. Errors as
// model::write_ensemble_bundle.
void make_ensemble(const std::vector<std::filesystem::path>& members, const std::filesystem::path& output,
                   const std::string& version);

// "3600", "3600s", "60m", "1h", "1h30m", "90min", "2.5h" -> seconds. Error(BadArgument) naming
// the text otherwise (also for zero or negative durations).
double parse_duration_seconds(const std::string& text);

// One progress line: "epoch 12/100  loss 0.4123  dice 0.7312 (ema 0.7012)  best 0.7105 *  41.2 s/epoch  ETA 1h02m"
std::string format_epoch(const model::EpochReport& report);

}  // namespace tumorlab::app
