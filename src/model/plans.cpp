#include "tumorlab/model/plans.h"

#include <fstream>

#include "tumorlab/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tumorlab::model {
namespace {

json norm_json(const imaging::NormalizationParams& n, const std::string& foreground) {
  return {{"scheme", imaging::to_string(n.scheme)},
          {"clip_low", n.clip_low},
          {"clip_high", n.clip_high},
          {"mean", n.mean},
          {"std", n.std},
          {"foreground", foreground}};
}

// Reads `key` of `obj` into `out`, naming the field in errors; a missing key keeps the default.
template <class T> void read(const json& obj, const char* key, T& out, const std::string& where) {
  if (!obj.contains(key)) return;
  try {
    out = obj.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, where + "." + key + ": " + e.what());
  }
}

template <class T> void require(bool ok, const std::string& where, const T& what) {
  if (!ok) throw Error(ErrorCode::InvalidDataset, where + ": " + what);
}

}  // namespace

int Plans::num_classes() const {
  int max_label = 0;
  for (const auto& [name, value] : labels) max_label = std::max(max_label, value);
  return max_label + 1;
}

int Plans::input_channels() const {
  return static_cast<int>(channels.size()) * (2 * network.context_slices + 1);
}

json to_json(const Plans& p) {
  json channels = json::array();
  for (const auto& c : p.channels) {
    channels.push_back({{"name", c.name}, {"invert", c.invert}, {"normalization", norm_json(c.normalization, c.foreground)}});
  }
  const auto& n = p.network;
  const auto& t = p.training;
  const auto& a = t.augmentation;
  const auto& i = p.inference;
  return {
      {"format", "tumorlab-plans"},
      {"version", p.version},
      {"name", p.name},
      {"modality", p.modality},
      {"channels", channels},
      {"labels", p.labels},
      {"file_ending", p.file_ending},
      {"target_spacing_mm", p.target_spacing_mm},
      {"patch_size", p.patch_size},
      {"batch_size", p.batch_size},
      {"network",
       {{"dims", n.dims},
        {"features", n.features},
        {"strides", n.strides},
        {"convs_per_stage", n.convs_per_stage},
        {"residual_encoder", n.residual_encoder},
        {"attention_gates", n.attention_gates},
        {"deep_supervision", n.deep_supervision},
        {"dropout", n.dropout},
        {"context_slices", n.context_slices}}},
      {"training",
       {{"epochs", t.epochs},
        {"iterations_per_epoch", t.iterations_per_epoch},
        {"validation_cases", t.validation_cases},
        {"learning_rate", t.learning_rate},
        {"momentum", t.momentum},
        {"weight_decay", t.weight_decay},
        {"loss", t.loss},
        {"foreground_oversample", t.foreground_oversample},
        {"bf16", t.bf16},
        {"average_epochs", t.average_epochs},
        {"seed", t.seed},
        {"augmentation",
         {{"mirror", a.mirror},
          {"mirror_axes", a.mirror_axes},
          {"rotation_deg", a.rotation_deg},
          {"scale_low", a.scale_low},
          {"scale_high", a.scale_high},
          {"elastic", a.elastic},
          {"gamma_low", a.gamma_low},
          {"gamma_high", a.gamma_high},
          {"brightness", a.brightness},
          {"contrast", a.contrast},
          {"noise_std", a.noise_std},
          {"blur_sigma_max", a.blur_sigma_max},
          {"probability", a.probability}}}}},
      {"inference",
       {{"overlap", i.overlap},
        {"window_batch", i.window_batch},
        {"tta_mirror_axes", i.tta_mirror_axes},
        {"mc_dropout_samples", i.mc_dropout_samples},
        {"threshold", i.threshold},
        {"min_lesion_ml", i.min_lesion_ml},
        {"min_lesion_voxels", i.min_lesion_voxels},
        {"min_fraction_of_largest", i.min_fraction_of_largest},
        {"bf16", i.bf16}}},
  };
}

Plans plans_from_json(const json& j, const std::string& source) {
  Plans p;
  require(j.is_object(), source, "expected a JSON object");
  require(j.value("format", "") == "tumorlab-plans", source, "field 'format' must be \"tumorlab-plans\"");
  read(j, "version", p.version, source);
  require(p.version == kPlansVersion, source + ".version",
          "is " + std::to_string(p.version) + ", this tumorlab reads version " + std::to_string(kPlansVersion));
  read(j, "name", p.name, source);
  read(j, "modality", p.modality, source);
  require(j.contains("channels") && j["channels"].is_array() && !j["channels"].empty(), source + ".channels",
          "expected a non-empty array");
  for (std::size_t c = 0; c < j["channels"].size(); ++c) {
    const json& cj = j["channels"][c];
    const std::string where = source + ".channels[" + std::to_string(c) + "]";
    ChannelPlan ch;
    read(cj, "name", ch.name, where);
    read(cj, "invert", ch.invert, where);
    if (cj.contains("normalization")) {
      const json& nj = cj["normalization"];
      std::string scheme = "None";
      read(nj, "scheme", scheme, where + ".normalization");
      try {
        ch.normalization.scheme = imaging::parse_normalization_scheme(scheme);
      } catch (const Error& e) {
        throw Error(ErrorCode::InvalidDataset, where + ".normalization.scheme: " + e.what());
      }
      read(nj, "clip_low", ch.normalization.clip_low, where + ".normalization");
      read(nj, "clip_high", ch.normalization.clip_high, where + ".normalization");
      read(nj, "mean", ch.normalization.mean, where + ".normalization");
      read(nj, "std", ch.normalization.std, where + ".normalization");
      read(nj, "foreground", ch.foreground, where + ".normalization");
      require(ch.foreground == "above_zero" || ch.foreground == "all" || ch.foreground == "otsu",
              where + ".normalization.foreground",
              "must be \"above_zero\", \"all\" or \"otsu\", is \"" + ch.foreground + "\"");
      if (ch.normalization.scheme == imaging::NormalizationScheme::CT) {
        require(ch.normalization.clip_low <= ch.normalization.clip_high, where + ".normalization",
                "CT needs clip_low <= clip_high");
        require(ch.normalization.std > 0, where + ".normalization.std", "CT needs a positive std");
      }
    }
    p.channels.push_back(ch);
  }
  read(j, "labels", p.labels, source);
  read(j, "file_ending", p.file_ending, source);
  read(j, "target_spacing_mm", p.target_spacing_mm, source);
  read(j, "patch_size", p.patch_size, source);
  read(j, "batch_size", p.batch_size, source);
  if (j.contains("network")) {
    const json& n = j["network"];
    const std::string w = source + ".network";
    read(n, "dims", p.network.dims, w);
    read(n, "features", p.network.features, w);
    read(n, "strides", p.network.strides, w);
    read(n, "convs_per_stage", p.network.convs_per_stage, w);
    read(n, "residual_encoder", p.network.residual_encoder, w);
    read(n, "attention_gates", p.network.attention_gates, w);
    read(n, "deep_supervision", p.network.deep_supervision, w);
    read(n, "dropout", p.network.dropout, w);
    read(n, "context_slices", p.network.context_slices, w);
  }
  if (j.contains("training")) {
    const json& t = j["training"];
    const std::string w = source + ".training";
    read(t, "epochs", p.training.epochs, w);
    read(t, "iterations_per_epoch", p.training.iterations_per_epoch, w);
    read(t, "validation_cases", p.training.validation_cases, w);
    read(t, "learning_rate", p.training.learning_rate, w);
    read(t, "momentum", p.training.momentum, w);
    read(t, "weight_decay", p.training.weight_decay, w);
    read(t, "loss", p.training.loss, w);
    read(t, "foreground_oversample", p.training.foreground_oversample, w);
    read(t, "bf16", p.training.bf16, w);
    read(t, "seed", p.training.seed, w);
    read(t, "average_epochs", p.training.average_epochs, w);
    if (t.contains("augmentation")) {
      const json& a = t["augmentation"];
      auto& A = p.training.augmentation;
      const std::string wa = w + ".augmentation";
      read(a, "mirror", A.mirror, wa);
      read(a, "mirror_axes", A.mirror_axes, wa);
      read(a, "rotation_deg", A.rotation_deg, wa);
      read(a, "scale_low", A.scale_low, wa);
      read(a, "scale_high", A.scale_high, wa);
      read(a, "elastic", A.elastic, wa);
      read(a, "gamma_low", A.gamma_low, wa);
      read(a, "gamma_high", A.gamma_high, wa);
      read(a, "brightness", A.brightness, wa);
      read(a, "contrast", A.contrast, wa);
      read(a, "noise_std", A.noise_std, wa);
      read(a, "blur_sigma_max", A.blur_sigma_max, wa);
      read(a, "probability", A.probability, wa);
    }
  }
  if (j.contains("inference")) {
    const json& i = j["inference"];
    const std::string w = source + ".inference";
    read(i, "overlap", p.inference.overlap, w);
    read(i, "window_batch", p.inference.window_batch, w);
    read(i, "tta_mirror_axes", p.inference.tta_mirror_axes, w);
    read(i, "mc_dropout_samples", p.inference.mc_dropout_samples, w);
    read(i, "threshold", p.inference.threshold, w);
    read(i, "min_lesion_ml", p.inference.min_lesion_ml, w);
    read(i, "min_lesion_voxels", p.inference.min_lesion_voxels, w);
    read(i, "min_fraction_of_largest", p.inference.min_fraction_of_largest, w);
    read(i, "bf16", p.inference.bf16, w);
  }

  // Validation: the numbers must make a network and a window that can run.
  const int dims = p.network.dims;
  require(dims == 2 || dims == 3, source + ".network.dims", "must be 2 or 3, is " + std::to_string(dims));
  const std::size_t stages = p.network.features.size();
  require(stages >= 2, source + ".network.features", "needs at least 2 stages");
  for (int f : p.network.features) require(f > 0, source + ".network.features", "must be positive");
  if (p.network.strides.empty()) {
    for (std::size_t s = 1; s < stages; ++s) p.network.strides.push_back({2, 2, dims == 3 ? 2 : 1});
  }
  require(p.network.strides.size() == stages - 1, source + ".network.strides",
          "needs " + std::to_string(stages - 1) + " entries (one per stage after the first), has " +
              std::to_string(p.network.strides.size()));
  std::array<int, 3> divisor{1, 1, 1};
  for (const auto& s : p.network.strides) {
    for (int a = 0; a < 3; ++a) {
      require(s[a] >= 1 && s[a] <= 4, source + ".network.strides", "entries must be 1..4");
      divisor[a] *= s[a];
    }
  }
  require(p.network.context_slices >= 0 && p.network.context_slices <= 8, source + ".network.context_slices",
          "must be in 0..8, is " + std::to_string(p.network.context_slices));
  require(p.network.context_slices == 0 || dims == 2, source + ".network.context_slices",
          "neighbouring slices as channels are for 2D networks only; a 3D network (dims 3) sees them already");
  if (dims == 2) {
    require(p.patch_size[2] == 1, source + ".patch_size", "a 2D network needs patch_size z = 1");
    for (const auto& s : p.network.strides) require(s[2] == 1, source + ".network.strides", "2D: z stride must be 1");
  }
  for (int a = 0; a < 3; ++a) {
    require(p.patch_size[a] >= 1 && p.patch_size[a] % divisor[a] == 0, source + ".patch_size",
            "axis " + std::to_string(a) + " is " + std::to_string(p.patch_size[a]) + ", must be a positive multiple of " +
                std::to_string(divisor[a]) + " (the product of the strides)");
    require(p.target_spacing_mm[a] > 0, source + ".target_spacing_mm", "must be positive");
  }
  require(p.batch_size >= 1, source + ".batch_size", "must be >= 1");
  require(p.labels.count("background") && p.labels.at("background") == 0, source + ".labels",
          "must map \"background\" to 0");
  require(p.num_classes() >= 2, source + ".labels", "needs at least one foreground label");
  require(p.inference.overlap >= 0 && p.inference.overlap < 1, source + ".inference.overlap", "must be in [0, 1)");
  require(p.inference.min_fraction_of_largest >= 0 && p.inference.min_fraction_of_largest <= 1,
          source + ".inference.min_fraction_of_largest",
          "must be in [0, 1], is " + std::to_string(p.inference.min_fraction_of_largest));
  require(p.training.average_epochs >= 0, source + ".training.average_epochs",
          "must be >= 0, is " + std::to_string(p.training.average_epochs));
  require(p.training.loss == "dice_ce" || p.training.loss == "dice_focal", source + ".training.loss",
          "must be \"dice_ce\" or \"dice_focal\"");
  return p;
}

Plans load_plans(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::FileNotFound, path.string() + ": cannot open plans");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": not valid JSON: " + e.what());
  }
  return plans_from_json(j, path.filename().string());
}

void save_plans(const Plans& plans, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << to_json(plans).dump(2) << "\n";
    if (!out) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, path.string() + ": cannot write: " + ec.message());
}

bool cpu_has_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx512bf16") != 0;
  return has;
#else
  return false;
#endif
}

bool resolve_bf16(std::optional<bool> requested, bool planned) {
  return requested.value_or(planned && cpu_has_native_bf16());
}

}  // namespace tumorlab::model
