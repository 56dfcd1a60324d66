#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "tumorlab/app/training.h"
#include "tumorlab/cli/verbs.h"
#include "tumorlab/core/error.h"

namespace tumorlab::cli {
namespace {

std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

// First SIGINT/SIGTERM: ask the trainer to stop at the next iteration (it saves last/ and
// exits); a second one ends the process at once.
extern "C" void on_stop_signal(int sig) {
  g_cancel.store(true);
  std::signal(sig, SIG_DFL);
}

}  // namespace

Run add_train(CLI::App& app) {
  struct Args {
    std::string dataset, plans, output, split, budget, init_from, export_dir, export_which = "best", export_version = "1";
    int epochs = 0, iterations = 0, threads = 0, workers = 2, validation_patches = 256, folds = 0, fold = 0;
    bool no_resume = false, bf16 = false, fp32 = false, export_only = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("dataset", args->dataset, "nnU-Net v2 raw dataset folder (dataset.json, imagesTr/, labelsTr/)")
      ->required();
  app.add_option("-p,--plans", args->plans, "plans.json (from `tumorlab plan` or a model bundle)")->required();
  app.add_option("-o,--output", args->output,
                 "Run folder: plans.json and split.json copies, last/ and best/ checkpoints, log.csv")
      ->required();
  app.add_option("--split", args->split,
                 "Use this split.json ({\"train\": [...], \"validation\": [...]}) instead of making one "
                 "(by patient, stratified by foreground, seeded by plans.training.seed)");
  auto* folds = app.add_option("--folds", args->folds,
                               "Cross-validation: split the training patients of the split (--split, or the one made "
                               "here) into this many folds by patient; the split's validation patients stay out")
                    ->check(CLI::Range(2, 100));
  app.add_option("--fold", args->fold, "Cross-validation: the fold (0 .. folds-1) to validate on; train on the others")
      ->needs(folds)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--time-budget", args->budget,
                 "Stop after the epoch that crosses this much training time in this run (3600s, 60m, 1h); "
                 "resume later with the same command");
  app.add_option("--epochs", args->epochs, "Epochs in all (default: plans.training.epochs)")
      ->check(CLI::PositiveNumber);
  app.add_option("--iterations", args->iterations,
                 "Iterations per epoch (default: plans.training.iterations_per_epoch)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", args->threads, "LibTorch threads (0: all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--workers", args->workers, "Augmentation worker threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--validation-patches", args->validation_patches,
                 "Most validation patches scored each epoch (fixed at the start; fewer = faster epochs)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* bf16 = app.add_flag("--bf16", args->bf16,
                            "bf16 autocast for the network (default: plans.training.bf16 on CPUs with AVX-512 BF16); "
                            "losses stay float32");
  app.add_flag("--fp32", args->fp32, "float32 for the network even when the plans ask for bf16")->excludes(bf16);
  app.add_flag("--no-resume", args->no_resume,
               "Start over even when the run folder holds a checkpoint (default: resume from last/)");
  app.add_option("--init-from", args->init_from,
                 "Start a new run from this model bundle's weights (fine-tuning, or continuing from a committed "
                 "bundle when the run folder is gone); ignored when resuming from the run folder's last/");
  app.add_option("--export", args->export_dir,
                 "After training, export a model bundle (model.pt, plans.json, split.json, bundle.json) here");
  app.add_option("--export-checkpoint", args->export_which,
                 "Checkpoint to export: best, last, or average (the mean of the weights at the end of each of the "
                 "run's last plans.training.average_epochs epochs)")
      ->check(CLI::IsMember({"best", "last", "average"}))
      ->capture_default_str();
  app.add_flag("--export-only", args->export_only,
               "Do not train: export the run folder's checkpoint (--export-checkpoint) to --export");
  app.add_option("--model-version", args->export_version, "Version written to bundle.json")->capture_default_str();
  app.footer(
      "Validation reports nnU-Net's pseudo Dice: the global Dice over a fixed set of validation patches "
      "(not whole cases); the best checkpoint is chosen by its moving average. Ctrl-C (or SIGTERM) stops at "
      "the next iteration and saves last/, so the same command resumes.\n\n"
      "Exit codes: 0 success (also when stopped by the time budget or a signal), 2 bad input, "
      "3 environment, 70 internal error");
  return [args] {
    app::TrainingRequest req;
    auto& o = req.options;
    o.dataset = args->dataset;
    o.plans = args->plans;
    o.output = args->output;
    o.split = args->split;
    o.epochs = args->epochs;
    o.iterations_per_epoch = args->iterations;
    o.threads = args->threads;
    o.max_validation_patches = args->validation_patches;
    o.workers = args->workers;
    o.resume = !args->no_resume;
    o.init_from = args->init_from;
    o.folds = args->folds;
    o.fold = args->fold;
    if (args->bf16) o.bf16 = true;
    if (args->fp32) o.bf16 = false;
    if (!args->budget.empty()) o.time_budget_seconds = app::parse_duration_seconds(args->budget);
    req.export_folder = args->export_dir;
    req.export_which = args->export_which;
    req.export_version = args->export_version;
    req.export_only = args->export_only;
    if (req.export_only) {
      app::run_training(req);
      std::cout << "bundle: " << req.export_folder.string() << "\n";
      return 0;
    }
    const bool tty = ::isatty(2);
    o.on_load = [tty](int done, int total) {
      if (tty) std::cerr << "\rreading cases " << done << "/" << total << std::flush;
    };
    o.on_epoch = [tty](const model::EpochReport& r) {
      if (tty) std::cerr << "\r" << std::string(30, ' ') << "\r";
      std::cerr << app::format_epoch(r) << std::endl;
    };
    g_cancel = false;
    o.cancel = &g_cancel;
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    app::TrainingOutcome out;
    try {
      out = app::run_training(req);
    } catch (...) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      throw;
    }
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    const auto& r = out.result;
    std::cout << (r.finished ? "finished" : r.cancelled ? "stopped (signal); resume with the same command"
                                                        : "stopped (time budget); resume with the same command")
              << ": " << r.epochs_done << " epochs, best pseudo Dice (EMA) " << r.best_val_dice << ", last "
              << r.last_val_dice << ", " << static_cast<long>(r.seconds) << " s\n"
              << "checkpoints: " << r.last_checkpoint.string() << ", " << r.best_checkpoint.string() << "\n";
    if (!out.exported.empty()) std::cout << "bundle: " << out.exported.string() << "\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
