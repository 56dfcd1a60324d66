#include "tumorlab/model/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/loss.h"
#include "tumorlab/model/sampler.h"
#include "tumorlab/model/sliding_window.h"
#include "tumorlab/model/training_data.h"
#include "tumorlab/model/unet.h"

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace tumorlab::model {
namespace {

constexpr const char* kAverageWeightsFile = "average.pt";  // in last/, when plans.training.average_epochs > 0

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void set_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  try {
    // Only allowed once per process, before any inter-op work; later calls throw and are ignored.
    torch::set_num_interop_threads(1);
  } catch (const c10::Error&) {
  }
}

// bf16 autocast for the forward pass only; always switched off again (also on exceptions).
class AutocastScope {
 public:
  explicit AutocastScope(bool on) : on_(on) {
    if (on_) {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
  }
  ~AutocastScope() {
    if (on_) {
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    }
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
};

// Batch -> tensors (N, C, [Z,] Y, X) and (N, [Z,] Y, X). The tensors borrow the batch's memory.
std::pair<torch::Tensor, torch::Tensor> to_tensors(Batch& b, int dims) {
  std::vector<int64_t> shape{b.batch, b.channels};
  std::vector<int64_t> lshape{b.batch};
  if (dims == 3) shape.push_back(b.patch[2]), lshape.push_back(b.patch[2]);
  shape.push_back(b.patch[1]), shape.push_back(b.patch[0]);
  lshape.push_back(b.patch[1]), lshape.push_back(b.patch[0]);
  torch::Tensor x = torch::from_blob(b.image.data(), shape, torch::kFloat);
  torch::Tensor y = torch::from_blob(b.label.data(), lshape, torch::kUInt8).to(torch::kLong);
  return {x, y};
}

double poly_lr(double lr0, int epoch, int epochs) {
  return lr0 * std::pow(1.0 - static_cast<double>(epoch) / static_cast<double>(std::max(1, epochs)), 0.9);
}

void set_lr(torch::optim::SGD& opt, double lr) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

// First path where two JSON values differ ("training.learning_rate: 0.01 vs 0.02").
std::string first_difference(const json& a, const json& b, const std::string& path = "") {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (!b.contains(it.key())) return p + ": missing in one of them";
      const std::string d = first_difference(it.value(), b.at(it.key()), p);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (!a.contains(it.key())) return (path.empty() ? it.key() : path + "." + it.key()) + ": missing in one of them";
    }
    return "";
  }
  if (a != b) return (path.empty() ? std::string("(root)") : path) + ": " + b.dump() + " in the run, " + a.dump() + " given";
  return "";
}

struct History {
  int epoch;
  double lr, loss, dice, ema, seconds;
};

struct State {
  int epochs_done = 0;        // completed epochs
  int iteration = 0;          // iterations done in epoch `epochs_done` (interrupted mid-epoch)
  double loss_sum = 0;        // of those iterations
  double epoch_seconds = 0;   // spent on those iterations
  double ema = 0, best_ema = -1, last_dice = 0;
  int best_epoch = 0;
  double elapsed = 0;         // seconds over all runs
  uint64_t seed = 0;
  int epochs = 0;
  std::string init_from;      // bundle the first run started from ("" = random initialisation)
  std::vector<int> averaged_epochs;  // epochs whose end weights are in average.pt (plans.training.average_epochs)
  std::vector<History> history;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

json to_json(const State& s) {
  json h = json::array();
  for (const auto& e : s.history) {
    h.push_back({{"epoch", e.epoch}, {"lr", e.lr}, {"train_loss", e.loss}, {"val_dice", e.dice}, {"val_dice_ema", e.ema},
                 {"seconds", e.seconds}});
  }
  return {{"format", "tumorlab-train-state"},
          {"epochs_done", s.epochs_done},
          {"iteration", s.iteration},
          {"loss_sum", s.loss_sum},
          {"epoch_seconds", s.epoch_seconds},
          {"val_dice_ema", s.ema},
          {"best_val_dice_ema", s.best_ema},
          {"last_val_dice", s.last_dice},
          {"best_epoch", s.best_epoch},
          {"elapsed_seconds", s.elapsed},
          {"seed", s.seed},
          {"epochs", s.epochs},
          {"init_from", s.init_from},
          {"averaged_epochs", s.averaged_epochs},
          {"rng", "splitmix64 streams seeded by (seed, epoch, iteration, sample); torch seeded per iteration"},
          {"history", h}};
}

State state_from_json(const json& j, const std::string& source) {
  State s;
  try {
    s.epochs_done = j.at("epochs_done").get<int>();
    s.iteration = j.at("iteration").get<int>();
    s.loss_sum = j.at("loss_sum").get<double>();
    s.epoch_seconds = j.at("epoch_seconds").get<double>();
    s.ema = j.at("val_dice_ema").get<double>();
    s.best_ema = j.at("best_val_dice_ema").get<double>();
    s.last_dice = j.at("last_val_dice").get<double>();
    s.best_epoch = j.at("best_epoch").get<int>();
    s.elapsed = j.at("elapsed_seconds").get<double>();
    s.seed = j.at("seed").get<uint64_t>();
    s.epochs = j.at("epochs").get<int>();
    s.init_from = j.value("init_from", std::string());
    s.averaged_epochs = j.value("averaged_epochs", std::vector<int>());
    for (const auto& e : j.at("history")) {
      s.history.push_back({e.at("epoch").get<int>(), e.at("lr").get<double>(), e.at("train_loss").get<double>(),
                           e.at("val_dice").get<double>(), e.at("val_dice_ema").get<double>(),
                           e.at("seconds").get<double>()});
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile, source + ": " + e.what());
  }
  return s;
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::FileNotFound, path.string() + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile, path.string() + ": not valid JSON: " + e.what());
  }
}

// <run>/<name>, or <run>/<name>.old when a crash hit between the two renames of a save.
fs::path existing_checkpoint(const fs::path& run, const std::string& name) {
  if (fs::exists(run / name / "state.json")) return run / name;
  if (fs::exists(run / (name + ".old") / "state.json")) return run / (name + ".old");
  return {};
}

// `average`, when given and the state has averaged epochs, is saved beside the weights as
// average.pt, so the running weight average is replaced atomically with the checkpoint it belongs to.
void save_checkpoint(const fs::path& run, const std::string& name, UNet& net, torch::optim::SGD& opt,
                     const State& state, UNet* average = nullptr) {
  const fs::path tmp = run / (name + ".tmp"), dst = run / name, old = run / (name + ".old");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot create: " + ec.message());
  try {
    torch::save(net, (tmp / "model.pt").string());
    torch::save(opt, (tmp / "optimizer.pt").string());
    if (average && !state.averaged_epochs.empty()) torch::save(*average, (tmp / kAverageWeightsFile).string());
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot save the checkpoint: " + e.what_without_backtrace());
  }
  write_text_atomic(tmp / "state.json", to_json(state).dump(2) + "\n");
  fs::remove_all(old, ec);
  if (fs::exists(dst)) {
    fs::rename(dst, old, ec);
    if (ec) throw Error(ErrorCode::IoFailure, dst.string() + ": cannot replace: " + ec.message());
  }
  fs::rename(tmp, dst, ec);
  if (ec) throw Error(ErrorCode::IoFailure, dst.string() + ": cannot write: " + ec.message());
  fs::remove_all(old, ec);
}

void load_checkpoint(const fs::path& dir, UNet& net, torch::optim::SGD* opt) {
  try {
    torch::load(net, (dir / "model.pt").string());
    if (opt) torch::load(*opt, (dir / "optimizer.pt").string());
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::CorruptFile, dir.string() + ": cannot load the checkpoint (does it match plans.json?): " +
                                            e.what_without_backtrace());
  }
}

// Pseudo Dice over the validation batches; -1 when cancelled part-way.
double pseudo_dice(UNet& net, std::vector<Batch>& batches, int dims, bool bf16, const std::atomic<bool>* cancel) {
  if (batches.empty()) return 0;
  torch::NoGradGuard no_grad;
  net->eval();
  std::vector<double> tp, fp, fn;
  for (auto& b : batches) {
    if (cancel && cancel->load()) {
      net->train();
      return -1;
    }
    auto [x, y] = to_tensors(b, dims);
    torch::Tensor logits;
    {
      AutocastScope autocast(bf16);
      logits = net->forward(x)[0];
    }
    accumulate_dice_counts(logits.to(torch::kFloat), y, tp, fp, fn);
  }
  net->train();
  double sum = 0;
  int n = 0;
  for (std::size_t c = 0; c < tp.size(); ++c) {
    const double denom = 2 * tp[c] + fp[c] + fn[c];
    if (denom > 0) sum += 2 * tp[c] / denom, ++n;
  }
  return n ? sum / n : 0.0;
}

torch::optim::SGD make_optimizer(UNet& net, const Plans& plans) {
  return torch::optim::SGD(net->parameters(), torch::optim::SGDOptions(plans.training.learning_rate)
                                                  .momentum(plans.training.momentum)
                                                  .nesterov(true)
                                                  .weight_decay(plans.training.weight_decay));
}

TrainResult train_impl(const TrainOptions& options) {
  const auto run_start = Clock::now();
  set_threads(options.threads);
  const Plans plans = load_plans(options.plans);
  const int epochs = options.epochs > 0 ? options.epochs : plans.training.epochs;
  const int iterations = options.iterations_per_epoch > 0 ? options.iterations_per_epoch
                                                          : plans.training.iterations_per_epoch;
  const bool bf16 = resolve_bf16(options.bf16, plans.training.bf16);
  const uint64_t seed = static_cast<uint64_t>(plans.training.seed);
  const int dims = plans.dims();
  if (epochs < 1 || iterations < 1) {
    throw Error(ErrorCode::BadArgument, "epochs and iterations per epoch must be >= 1, are " + std::to_string(epochs) +
                                            " and " + std::to_string(iterations));
  }
  const fs::path& run = options.output;
  std::error_code ec;
  fs::create_directories(run, ec);
  if (ec) throw Error(ErrorCode::IoFailure, run.string() + ": cannot create the run folder: " + ec.message());

  // Resume or start over; a resume must use the same plans.
  fs::path last_dir = existing_checkpoint(run, "last");
  const bool resuming = options.resume && !last_dir.empty();
  if (resuming) {
    const fs::path copy = run / "plans.json";
    const json ours = to_json(load_plans(copy)), given = to_json(plans);
    if (ours != given) {
      throw Error(ErrorCode::BadArgument, options.plans.string() + " differs from the run's " + copy.string() + " (" +
                                              first_difference(given, ours) +
                                              "): resume with the same plans, or start over with --no-resume or "
                                              "another output folder");
    }
  } else {
    for (const char* name : {"last", "last.old", "last.tmp", "best", "best.old", "best.tmp"}) fs::remove_all(run / name, ec);
    fs::remove(run / "log.csv", ec);
    save_plans(plans, run / "plans.json");
  }

  // Data and split.
  log_info("train: reading " + options.dataset.string());
  std::vector<TrainingCase> cases =
      load_training_cases(options.dataset, plans, torch::get_num_threads(), options.on_load);
  Split split;
  bool run_split = false;  // the run's own split.json, already a fold when the run is one
  if (!options.split.empty()) split = load_split(options.split);
  else if (resuming && fs::exists(run / "split.json")) split = load_split(run / "split.json"), run_split = true;
  else {
    std::vector<std::string> ids;
    std::vector<bool> fg;
    for (const auto& c : cases) ids.push_back(c.id), fg.push_back(c.has_foreground());
    split = make_split(ids, fg, options.validation_fraction, seed, plans.training.validation_cases);
  }
  if (run_split && (split.folds != options.folds || (options.folds > 0 && split.fold != options.fold))) {
    throw Error(ErrorCode::BadArgument, (run / "split.json").string() + " is " +
                                            (split.folds ? "fold " + std::to_string(split.fold) + " of " +
                                                               std::to_string(split.folds)
                                                         : std::string("not a cross-validation fold")) +
                                            ": resume with the same --folds/--fold or start over with --no-resume");
  }
  std::map<std::string, const TrainingCase*> by_id;
  for (const auto& c : cases) by_id[c.id] = &c;
  auto case_of = [&](const std::string& id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      throw Error(ErrorCode::InvalidDataset, "split: case '" + id + "' is not a labelled training case of " +
                                                 options.dataset.string());
    }
    return it->second;
  };
  if (options.folds > 0 && !run_split) {
    if (split.folds > 0) {
      throw Error(ErrorCode::BadArgument, options.split.string() + " is already a cross-validation fold: give the "
                                                                   "outer split to --split");
    }
    std::vector<bool> fg;
    for (const auto& id : split.train) fg.push_back(case_of(id)->has_foreground());
    split = make_fold(split.train, fg, options.folds, options.fold, seed);
  }
  if (resuming && !options.split.empty() && fs::exists(run / "split.json")) {
    const Split ours = load_split(run / "split.json");
    if (ours.train != split.train || ours.validation != split.validation) {
      throw Error(ErrorCode::BadArgument, options.split.string() + " differs from the run's split.json: resume with "
                                                                   "the same split or start over with --no-resume");
    }
  }
  std::vector<const TrainingCase*> train_cases, val_cases;
  for (const auto& id : split.train) train_cases.push_back(case_of(id));
  for (const auto& id : split.validation) val_cases.push_back(case_of(id));
  if (train_cases.empty()) throw Error(ErrorCode::InvalidDataset, "split: no training cases");
  save_split(split, run / "split.json");
  std::vector<Batch> val_batches = make_validation_batches(val_cases, plans, seed, options.validation_patches_per_case,
                                                           options.max_validation_patches);
  log_info("train: " + std::to_string(train_cases.size()) + " training and " + std::to_string(val_cases.size()) +
           " validation cases, " + std::to_string(val_batches.size()) + " validation batches");

  // Network and optimiser.
  torch::manual_seed(seed);
  UNet net(unet_config_from_plans(plans));
  if (!resuming && !options.init_from.empty()) {
    const BundleMetadata init = read_bundle_metadata(options.init_from);
    std::vector<std::string> channels;
    for (const auto& c : plans.channels) channels.push_back(c.name);
    if (init.channels != channels) {
      throw Error(ErrorCode::BadArgument, "--init-from " + options.init_from.string() + ": the bundle's channels [" +
                                              join(init.channels) + "] differ from the plans' [" + join(channels) + "]");
    }
    // The bundle's own network (its plans), then its weights into this one: the same tensors, or
    // the first convolution widened with zeros when these plans add neighbouring slices.
    const Plans init_plans = load_plans(options.init_from / kBundlePlansFile);
    UNet init_net = load_bundle_network(options.init_from, init_plans);  // checks every tensor's shape; float32
    transfer_weights(init_net, init_plans.network.context_slices, net, plans.network.context_slices,
                     "--init-from " + options.init_from.string());
    log_info("train: weights initialised from " + options.init_from.string() + " (" + init.name + " " + init.version +
             ")");
  }
  net->train();
  torch::optim::SGD opt = make_optimizer(net, plans);
  UNet average(unet_config_from_plans(plans));  // running weight average (plans.training.average_epochs)
  State state;
  state.seed = seed;
  if (!options.init_from.empty()) state.init_from = options.init_from.string();
  if (resuming) {
    state = state_from_json(read_json(last_dir / "state.json"), (last_dir / "state.json").string());
    load_checkpoint(last_dir, net, &opt);
    if (!state.averaged_epochs.empty()) {
      try {
        torch::load(average, (last_dir / kAverageWeightsFile).string());
      } catch (const c10::Error& e) {
        throw Error(ErrorCode::CorruptFile, (last_dir / kAverageWeightsFile).string() +
                                                ": cannot load the weight average: " + e.what_without_backtrace());
      }
    }
    log_info("train: resuming after epoch " + std::to_string(state.epochs_done) +
             (state.iteration ? " (+" + std::to_string(state.iteration) + " iterations)" : ""));
  }
  state.epochs = epochs;
  const LossOptions loss_options{plans.training.loss};

  TrainResult result;
  result.last_checkpoint = run / "last";
  result.best_checkpoint = run / "best";
  const double elapsed_before = state.elapsed;
  double run_epoch_seconds = 0;
  int run_epochs = 0;
  bool stop = false;
  for (int epoch = state.epochs_done; epoch < epochs && !stop; ++epoch) {
    const auto epoch_start = Clock::now();
    const double lr = poly_lr(plans.training.learning_rate, epoch, epochs);
    set_lr(opt, lr);
    BatchLoader loader(train_cases, plans, seed, epoch, state.iteration, iterations, std::max(1, options.workers));
    for (int it = state.iteration; it < iterations; ++it) {
      if (options.cancel && options.cancel->load()) {
        state.epoch_seconds += seconds_since(epoch_start);
        state.elapsed = elapsed_before + seconds_since(run_start);
        save_checkpoint(run, "last", net, opt, state, &average);
        result.cancelled = true;
        stop = true;
        break;
      }
      Batch batch = loader.next();
      auto [x, y] = to_tensors(batch, dims);
      torch::manual_seed(mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(it), 0xd50) >> 1);
      opt.zero_grad();
      std::vector<torch::Tensor> outputs;
      {
        AutocastScope autocast(bf16);
        outputs = net->forward(x);
      }
      for (auto& o : outputs) o = o.to(torch::kFloat);
      torch::Tensor loss = deep_supervision_loss(outputs, y, loss_options);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        throw Error(ErrorCode::BadArgument, "training diverged at epoch " + std::to_string(epoch + 1) + ", iteration " +
                                                std::to_string(it + 1) +
                                                " (loss is not finite): lower training.learning_rate in the plans");
      }
      loss.backward();
      torch::nn::utils::clip_grad_norm_(net->parameters(), 12.0);
      opt.step();
      state.loss_sum += value;
      state.iteration = it + 1;
    }
    if (stop) break;
    const double dice = pseudo_dice(net, val_batches, dims, bf16, options.cancel);
    if (dice < 0) {
      // Cancelled during validation: every iteration of this epoch is saved (iteration ==
      // iterations), so a resume only repeats the validation.
      state.epoch_seconds += seconds_since(epoch_start);
      state.elapsed = elapsed_before + seconds_since(run_start);
      save_checkpoint(run, "last", net, opt, state, &average);
      result.cancelled = true;
      break;
    }
    state.ema = state.history.empty() ? dice : 0.9 * state.ema + 0.1 * dice;
    state.last_dice = dice;
    const bool is_best = state.ema > state.best_ema;
    if (is_best) state.best_ema = state.ema, state.best_epoch = epoch + 1;
    const double epoch_seconds = state.epoch_seconds + seconds_since(epoch_start);
    const double train_loss = state.loss_sum / iterations;
    state.history.push_back({epoch + 1, lr, train_loss, dice, state.ema, epoch_seconds});
    const int average_epochs = plans.training.average_epochs;
    if (average_epochs > 0 && epoch + 1 > epochs - average_epochs) {
      average_into(average, net, state.averaged_epochs.size());
      state.averaged_epochs.push_back(epoch + 1);
    }
    state.epochs_done = epoch + 1;
    state.iteration = 0;
    state.loss_sum = 0;
    state.epoch_seconds = 0;
    state.elapsed = elapsed_before + seconds_since(run_start);
    save_checkpoint(run, "last", net, opt, state, &average);
    if (is_best) save_checkpoint(run, "best", net, opt, state);
    {
      const bool header = !fs::exists(run / "log.csv");
      std::ofstream csv(run / "log.csv", std::ios::app);
      if (header) csv << "epoch,lr,train_loss,val_dice,val_dice_ema,seconds\n";
      csv << epoch + 1 << "," << lr << "," << train_loss << "," << dice << "," << state.ema << "," << epoch_seconds
          << "\n";
      if (!csv) throw Error(ErrorCode::IoFailure, (run / "log.csv").string() + ": cannot write");
    }
    run_epoch_seconds += epoch_seconds;
    ++run_epochs;
    if (options.on_epoch) {
      EpochReport r;
      r.epoch = epoch + 1;
      r.epochs = epochs;
      r.learning_rate = lr;
      r.train_loss = train_loss;
      r.val_dice = dice;
      r.val_dice_ema = state.ema;
      r.best_val_dice = state.best_ema;
      r.is_best = is_best;
      r.epoch_seconds = epoch_seconds;
      r.elapsed_seconds = state.elapsed;
      r.eta_seconds = run_epoch_seconds / run_epochs * (epochs - epoch - 1);
      options.on_epoch(r);
    }
    if (options.time_budget_seconds > 0 && seconds_since(run_start) >= options.time_budget_seconds &&
        epoch + 1 < epochs) {
      log_info("train: time budget reached after epoch " + std::to_string(epoch + 1));
      stop = true;
    }
  }
  result.epochs_done = state.epochs_done;
  result.finished = state.epochs_done >= epochs;
  result.best_val_dice = std::max(0.0, state.best_ema);
  result.last_val_dice = state.last_dice;
  result.seconds = state.elapsed;
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& options) {
  try {
    return train_impl(options);
  } catch (const c10::Error& e) {
    at::autocast::set_cpu_enabled(false);
    throw Error(ErrorCode::Internal, std::string("training failed in LibTorch: ") + e.what_without_backtrace());
  }
}

void export_bundle(const fs::path& run, const fs::path& bundle, const std::string& which, const std::string& version) {
  if (which != "best" && which != "last" && which != "average") {
    throw Error(ErrorCode::BadArgument, "checkpoint to export must be best, last or average, is '" + which + "'");
  }
  // "average" is the weight average kept beside the last checkpoint.
  const bool averaged = which == "average";
  const fs::path dir = existing_checkpoint(run, averaged ? "last" : which);
  if (dir.empty()) throw Error(ErrorCode::FileNotFound, (run / which).string() + ": no checkpoint to export");
  const Plans plans = load_plans(run / "plans.json");
  const State state = state_from_json(read_json(dir / "state.json"), (dir / "state.json").string());
  const fs::path weights = dir / (averaged ? kAverageWeightsFile : "model.pt");
  if (averaged && (state.averaged_epochs.empty() || !fs::exists(weights))) {
    throw Error(ErrorCode::FileNotFound,
                dir.string() + ": the run holds no weight average (plans.training.average_epochs is " +
                    std::to_string(plans.training.average_epochs) +
                    "; the average starts with the last that many epochs of the run)");
  }
  std::error_code ec;
  fs::create_directories(bundle, ec);
  if (ec) throw Error(ErrorCode::IoFailure, bundle.string() + ": cannot create: " + ec.message());
  auto copy = [&](const fs::path& from, const fs::path& to) {
    const fs::path tmp = to.string() + ".tmp";
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::rename(tmp, to, ec);
    if (ec) throw Error(ErrorCode::IoFailure, to.string() + ": cannot write: " + ec.message());
  };
  // The bundle keeps the weights in float16: half the size in git, and the Dice measured on the
  // held-out split (MODEL_CARD.md) is measured with exactly these weights. Loading casts to float32.
  try {
    UNet net(unet_config_from_plans(plans));
    torch::load(net, weights.string());
    net->to(torch::kHalf);
    const fs::path tmp = (bundle / kBundleWeightsFile).string() + ".tmp";
    torch::save(net, tmp.string());
    fs::rename(tmp, bundle / kBundleWeightsFile, ec);
    if (ec) throw Error(ErrorCode::IoFailure, (bundle / kBundleWeightsFile).string() + ": cannot write: " + ec.message());
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::IoFailure, weights.string() + ": cannot export: " + std::string(e.what_without_backtrace()));
  }
  save_plans(plans, bundle / kBundlePlansFile);
  if (fs::exists(run / "split.json")) copy(run / "split.json", bundle / "split.json");
  json training = {{"checkpoint", which},
                   {"epochs_done", state.epochs_done},
                   {"epochs_planned", state.epochs},
                   {"best_epoch", state.best_epoch},
                   {"best_pseudo_dice_ema", std::max(0.0, state.best_ema)},
                   {"last_pseudo_dice", state.last_dice},
                   {"validation_metric", "pseudo Dice: global Dice over fixed validation patches (not full cases)"},
                   {"seconds", state.elapsed},
                   {"seed", state.seed},
                   {"initialised_from", state.init_from.empty() ? json(nullptr) : json(state.init_from)},
                   {"weights_dtype", "float16"}};
  if (averaged) training["averaged_epochs"] = state.averaged_epochs;
  write_bundle_metadata(make_bundle_metadata(plans, version, training), bundle);
}

double measure_training_step(const Plans& plans, int iterations, int threads, bool bf16) {
  try {
    set_threads(threads);
    torch::manual_seed(1);
    UNet net(unet_config_from_plans(plans));
    net->train();
    torch::optim::SGD opt = make_optimizer(net, plans);
    std::vector<int64_t> shape{plans.batch_size, static_cast<int64_t>(plans.input_channels())};
    if (plans.dims() == 3) shape.push_back(plans.patch_size[2]);
    shape.push_back(plans.patch_size[1]);
    shape.push_back(plans.patch_size[0]);
    const torch::Tensor x = torch::randn(shape);
    std::vector<int64_t> lshape(shape);
    lshape.erase(lshape.begin() + 1);
    const torch::Tensor y = torch::randint(0, plans.num_classes(), lshape, torch::kLong);
    std::vector<double> times;
    for (int i = 0; i < iterations + 2; ++i) {
      const auto t0 = Clock::now();
      opt.zero_grad();
      std::vector<torch::Tensor> outputs;
      {
        AutocastScope autocast(bf16);
        outputs = net->forward(x);
      }
      for (auto& o : outputs) o = o.to(torch::kFloat);
      torch::Tensor loss = deep_supervision_loss(outputs, y, LossOptions{plans.training.loss});
      loss.backward();
      opt.step();
      if (i >= 2) times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Internal, std::string("measure_training_step: ") + e.what_without_backtrace());
  }
}

}  // namespace tumorlab::model
