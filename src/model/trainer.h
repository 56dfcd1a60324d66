#pragma once
// `tumorlab train`: trains a U-Net from plans.json on an nnU-Net raw dataset, resumably.
//
// Run folder layout (an ignored folder such as checkpoints/<name>/):
//   plans.json        copy of the plans used (training refuses to resume with different plans)
//   split.json        {"train": [case ids], "validation": [case ids], "seed": n}: fixed, by patient
//   last/, best/      checkpoints: model.pt (torch::save of the UNet), optimizer.pt (SGD state),
//                     state.json (epochs done, iteration inside the next epoch when interrupted,
//                     best/EMA pseudo Dice, seed, elapsed seconds, per-epoch history). Written to
//                     a temporary folder and renamed into place.
//   log.csv           one row per epoch: epoch, lr, train_loss, val_dice, val_dice_ema, seconds
//
// Validation metric: nnU-Net's "pseudo Dice". Full-case Dice would need sliding-window
// inference every epoch; instead a fixed set of validation patches (per validation case a few
// foreground-centred ones and one at a random position, chosen once from the seed, no
// augmentation) is predicted each epoch and the Dice is computed globally over all of them
// (TP, FP, FN summed over patches, then averaged over foreground classes). The best checkpoint
// is chosen by an exponential moving average of it (ema = 0.9 ema + 0.1 dice).
//
// Reproducibility: every random draw (patch choice, augmentation, dropout) is seeded from
// (plans.training.seed, epoch, iteration), so a run that is interrupted and resumed follows the
// same path as one that is not (same number of threads; the state is saved mid-epoch on cancel).

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tumorlab/model/plans.h"

namespace tumorlab::model {

struct EpochReport {
  int epoch = 0, epochs = 0;        // 1-based epoch just finished, planned total
  double learning_rate = 0;
  double train_loss = 0;
  double val_dice = 0;              // pseudo Dice on the fixed validation patches (see above)
  double val_dice_ema = 0;          // its exponential moving average (selects the best checkpoint)
  double best_val_dice = 0;         // best EMA so far
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
  // Optional: a model bundle whose weights start a NEW run (fine-tuning; or continuing from a
  // committed bundle when the run folder is gone). Ignored when resuming from output/last. The
  // bundle must hold the network these plans describe and the same channels.
  std::filesystem::path init_from;
  int threads = 0;                  // LibTorch threads (0: all cores)
  int workers = 1;                  // augmentation worker threads
  int iterations_per_epoch = 0;     // 0: plans.training.iterations_per_epoch
  // Cross-validation (folds >= 2): train on the split's training patients except fold `fold`, and
  // validate on that fold (make_fold); the split's own validation patients are not used at all.
  int folds = 0, fold = 0;
  int validation_patches_per_case = 3;
  int max_validation_patches = 256;
  std::optional<bool> bf16;         // unset: plans.training.bf16 on CPUs with native bf16 (resolve_bf16)
  std::function<void(int done, int total)> on_load;  // case loading progress
  std::function<void(const EpochReport&)> on_epoch;  // progress (called on the training thread)
  const std::atomic<bool>* cancel = nullptr;         // stop at the next iteration, saving last/
};

struct TrainResult {
  int epochs_done = 0;
  bool finished = false;            // all planned epochs done (not stopped by budget or cancel)
  bool cancelled = false;
  double best_val_dice = 0;         // best EMA of the pseudo Dice
  double last_val_dice = 0;         // pseudo Dice of the last epoch
  double seconds = 0;               // training time over all runs of this folder
  std::filesystem::path best_checkpoint, last_checkpoint;
};

// Errors: InvalidDataset / BadArgument for inputs, IoFailure for the run folder.
TrainResult train(const TrainOptions& options);

// Copies a checkpoint into a model bundle folder: model.pt, plans.json, split.json, bundle.json
// (format version, tumorlab version, LibTorch version, channel names, training summary). The
// model card (MODEL_CARD.md) is written by hand from `tumorlab evaluate` results. `which`: "best",
// "last", or "average" (the weight average kept in last/ when plans.training.average_epochs > 0).
// Errors: BadArgument (other `which`), FileNotFound (no such checkpoint or no average), IoFailure.
void export_bundle(const std::filesystem::path& run_folder, const std::filesystem::path& bundle_folder,
                   const std::string& which = "best", const std::string& version = "1");

// Seconds per training step (forward, loss, backward, SGD step) on random data of the plans'
// patch and batch size, median of `iterations` after 2 warm-up steps (for bench and reports).
double measure_training_step(const Plans& plans, int iterations, int threads, bool bf16);

}  // namespace tumorlab::model
