#include "tumorlab/app/training.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "tumorlab/core/error.h"
#include "tumorlab/model/bundle.h"

namespace tumorlab::app {
namespace {

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace

void make_ensemble(const std::vector<std::filesystem::path>& members, const std::filesystem::path& output,
                   const std::string& version) {
  model::write_ensemble_bundle(members, output, version);
}

double parse_duration_seconds(const std::string& text) {
  const std::string what = "--time-budget '" + text + "': expected a duration such as 3600s, 60m, 1h or 1h30m";
  double total = 0;
  std::size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(text.substr(i), &used);
    } catch (const std::exception&) {
      throw Error(ErrorCode::BadArgument, what);
    }
    if (used == 0 || !std::isfinite(value)) throw Error(ErrorCode::BadArgument, what);
    i += used;
    std::string unit;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) unit.push_back(text[i++]);
    double factor = 0;
    if (unit.empty() || unit == "s" || unit == "sec") factor = 1;
    else if (unit == "m" || unit == "min") factor = 60;
    else if (unit == "h" || unit == "hr") factor = 3600;
    else throw Error(ErrorCode::BadArgument, what + " (unknown unit '" + unit + "')");
    if (unit.empty() && i < text.size()) throw Error(ErrorCode::BadArgument, what);
    total += value * factor;
    any = true;
  }
  if (!any || total <= 0) throw Error(ErrorCode::BadArgument, what);
  return total;
}

std::string format_epoch(const model::EpochReport& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %d/%d  lr %.5f  loss %.4f  dice %.4f (ema %.4f)  best %.4f%s  %.1f s/epoch  ETA %s",
                r.epoch, r.epochs, r.learning_rate, r.train_loss, r.val_dice, r.val_dice_ema, r.best_val_dice,
                r.is_best ? " *" : "  ", r.epoch_seconds, duration(r.eta_seconds).c_str());
  return buf;
}

TrainingOutcome run_training(const TrainingRequest& request) {
  TrainingOutcome out;
  if (request.export_only) {
    if (request.export_folder.empty()) {
      throw Error(ErrorCode::BadArgument, "--export-only needs --export FOLDER (where the bundle goes)");
    }
  } else {
    out.result = model::train(request.options);
  }
  if (!request.export_folder.empty() && !out.result.cancelled) {
    model::export_bundle(request.options.output, request.export_folder, request.export_which,
                         request.export_version);
    out.exported = request.export_folder;
  }
  return out;
}

}  // namespace tumorlab::app
