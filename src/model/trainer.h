#pragma once
// `tumorlab train`: trains a U-Net from plans.json on an nnU-Net raw dataset, resumably.
//
// Run folder layout (an ignored folder such as checkpoints/<name>/):
//   plans.json        copy of the plans used (training refuses to resume with different plans)
//   split.json        {"train": [case ids], "validation": [case ids], "seed": n}: fixed, by patient
//   last/, best/      checkpoints: model.pt (weights), optimizer.pt, state.json (epoch, best
//                     validation Dice, RNG state, elapsed seconds, loss/Dice history)
//   log.csv           one row per epoch: epoch, lr, train_loss, val_dice, seconds

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace tumorlab::model {

struct EpochReport {
  int epoch = 0, epochs = 0;        // 1-based epoch just finished, planned total
  double learning_rate = 0;
  double train_loss = 0;
  double val_dice = 0;              // mean per-case Dice on the validation cases (full cases)
  double best_val_dice = 0;
  bool is_best = false;
  double epoch_seconds = 0, elapsed_seconds = 0, eta_seconds = 0;
};

struct TrainOptions {
  std::filesystem::path dataset;    // nnU-Net v2 raw dataset folder
  std::filesystem::path plans;      // plans.json
  std::filesystem::path output;     // run folder (created)
  std::filesystem::path split;      // optional: an existing split.json to use (e.g. models/<name>/split.json)
  double validation_fraction = 0.2; // when a new split is made
  int epochs = 0;                   // 0: plans.training.epochs
  double time_budget_seconds = 0;   // 0: none; stops after the epoch that crosses it (resumable)
  bool resume = true;               // continue from output/last when present
  int threads = 0;                  // LibTorch threads (0: all cores)
  int workers = 1;                  // augmentation worker threads
  std::function<void(const EpochReport&)> on_epoch;  // progress (called on the training thread)
  const std::atomic<bool>* cancel = nullptr;         // stop at the next iteration, saving last/
};

struct TrainResult {
  int epochs_done = 0;
  bool finished = false;            // all planned epochs done (not stopped by budget or cancel)
  double best_val_dice = 0;
  std::filesystem::path best_checkpoint, last_checkpoint;
};

// Errors: InvalidDataset / BadArgument for inputs, IoFailure for the run folder.
TrainResult train(const TrainOptions& options);

// Copies a checkpoint into a model bundle folder: model.pt, plans.json, split.json, bundle.json
// (format version, tumorlab version, LibTorch version, channel names, training summary). The
// model card (MODEL_CARD.md) is written by hand from `tumorlab evaluate` results.
void export_bundle(const std::filesystem::path& run_folder, const std::filesystem::path& bundle_folder,
                   const std::string& which = "best");

}  // namespace tumorlab::model
