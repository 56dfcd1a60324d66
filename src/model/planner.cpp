// Planning rules (CPU-sized nnU-Net; also in docs/planning.md).
//
// 1. Dimensionality: a dataset whose cases all have one slice is planned 2D; volumes 3D, unless
//    PlanOptions::dims says "2d" (slice-wise model for volumes). "3d" for 2D data is refused.
// 2. Target spacing: the median spacing per axis. For 3D, nnU-Net's anisotropy rule: when the
//    coarsest axis' median spacing is more than 3x the finest other axis AND its median size is
//    less than a third of the smallest other size, the coarse axis takes the 10th percentile of its
//    spacings (but never finer than the other axes), so thick-slice scans are not interpolated to
//    many slices. 2D plans keep z as the median (preprocessing never resamples z for 2D models).
// 3. Patch size: start from the median shape at the target spacing (2D: x, y; z = 1). Then, while
//    the patch has more voxels than the budget (kPatchVoxelBudget2D = 320^2, kPatchVoxelBudget3D
//    = 128x128x24 ~ 393k: what two CPU cores train at a few seconds per iteration), shrink the
//    axis whose patch is largest relative to the median shape by that axis' divisor (nnU-Net's
//    loop, which keeps the median shape's proportions). Every axis is a multiple of its divisor,
//    the product of its strides (rounded up).
// 4. Topology: stage after stage, an axis is downsampled (stride 2) when its spacing at that stage
//    is at most 2x the finest spacing at that stage (so z waits while slices are thick) and its
//    feature map stays >= kMinFeatureMap (4) voxels after the stride; at most kMaxStages (6)
//    stages. Features 16 doubling per stage, capped at 256. Two convolutions per stage, deep
//    supervision on, plain encoder, no attention gates, no dropout (nnU-Net defaults).
// 5. Batch size: 2D: 8 patches of the full budget, more for smaller patches (8 * budget / patch
//    voxels, clamped to 2..12). 3D: 2 (up to 4 for small patches). Never more than 5% of the
//    dataset's voxels in one batch (nnU-Net's cap), but at least 2.
// 6. Normalisation per channel, from the channel name's words (dataset.json channel_names) and
//    the modality:
//    - "CT": scheme CT with the dataset's foreground percentiles 0.5 / 99.5 as clip bounds and the
//      foreground mean / std (nnU-Net's CTNormalization; numbers stored in the plans).
//    - PET words (PET, PT, MIP, SUV, FDG, PSMA): modality "PT". A MIP (2D projection, arbitrary
//      units) gets a per-case z-score over the body: voxels above zero after inversion
//      (foreground "above_zero"). An 8-bit MIP whose median voxel is bright (> 127.5: white
//      background, dark = high uptake) is inverted (255 - x) first, so background becomes 0 and
//      uptake is high. We use the body rather than all voxels because the share of empty
//      background varies with the patient's size and would shift mean and std.
//      A PET volume (not a MIP) keeps its values (scheme None): SUVs are already comparable.
//    - MR words (FLAIR, T1, T2, T1C, T1CE, T1GD, PD, DWI, ADC, SWI, MR, MRI, ...): modality "MR",
//      per-case z-score over voxels above zero (nnU-Net's ZScore with the nonzero mask).
//    - anything else: the modality from the files or PlanOptions::modality decides (CT -> as above
//      with the dataset numbers, PT -> None, otherwise z-score over all voxels).
//    plans.modality: the channels' common modality; "" when they differ (no check at inference);
//    PlanOptions::modality overrides it.
// 7. Training (CPU-sized; nnU-Net's 1000 x 250 iterations are a GPU's budget): SGD lr 0.01,
//    momentum 0.99, weight decay 3e-5, Dice + CE, foreground oversampling 0.33, seed 42.
//    2D: 50 epochs x 100 iterations x batch 8; 3D: 50 epochs x 50 iterations x batch 2.
//    Mirroring augmentation on every axis of the network (nnU-Net), in-plane rotation +-15 deg.
// 8. Inference: overlap 0.5, 4 windows per forward pass, TTA mirrors the in-plane axes (0, 1),
//    threshold 0.5, min_lesion_ml = half the smallest lesion of the training labels (0 when there
//    is none): a prediction smaller than anything a reader ever outlined is noise, and half of it
//    leaves room for a lesion cut by the resampling; with one-voxel reference lesions this removes
//    nothing. min_fraction_of_largest = 1 (keep only the largest predicted component) when the
//    training labels show one lesion per patient (>= 90% of >= 10 cases with foreground have a
//    single component): a second predicted lesion is then most likely a false positive.

#include "tumorlab/model/planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "tumorlab/core/error.h"
#include "tumorlab/core/modality.h"
#include "tumorlab/imaging/statistics.h"

namespace tumorlab::model {
namespace {

std::vector<std::string> words_of(const std::string& name) {
  std::vector<std::string> words;
  std::string w;
  for (char ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      w.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
    } else if (!w.empty()) {
      words.push_back(w);
      w.clear();
    }
  }
  if (!w.empty()) words.push_back(w);
  return words;
}

bool has_word(const std::vector<std::string>& words, std::initializer_list<const char*> any) {
  for (const auto& w : words)
    for (const char* a : any)
      if (w == a) return true;
  return false;
}

double round_sig(double x, int digits = 6) {
  if (x == 0 || !std::isfinite(x)) return x;
  const double scale = std::pow(10.0, digits - 1 - static_cast<int>(std::floor(std::log10(std::fabs(x)))));
  return std::round(x * scale) / scale;
}

struct Topology {
  std::vector<std::array<int, 3>> strides;
  std::array<int, 3> divisor{1, 1, 1};
};

// Rule 4: strides per stage for a patch at a spacing; `axes` = 2 (x, y) or 3.
Topology topology_for(const std::array<int, 3>& patch, const Vec3& spacing, int axes) {
  Topology t;
  std::array<double, 3> size{static_cast<double>(patch[0]), static_cast<double>(patch[1]),
                             static_cast<double>(patch[2])};
  Vec3 sp = spacing;
  while (static_cast<int>(t.strides.size()) + 1 < kMaxStages) {
    double finest = sp[0];
    for (int a = 1; a < axes; ++a) finest = std::min(finest, sp[static_cast<std::size_t>(a)]);
    std::array<int, 3> stride{1, 1, 1};
    bool any = false;
    for (int a = 0; a < axes; ++a) {
      const auto ua = static_cast<std::size_t>(a);
      if (sp[ua] <= 2.0 * finest + 1e-9 && size[ua] / 2.0 >= kMinFeatureMap) {
        stride[ua] = 2;
        any = true;
      }
    }
    if (!any) break;
    for (int a = 0; a < 3; ++a) {
      const auto ua = static_cast<std::size_t>(a);
      size[ua] /= stride[ua];
      sp[ua] *= stride[ua];
      t.divisor[ua] *= stride[ua];
    }
    t.strides.push_back(stride);
  }
  return t;
}

int round_up(double x, int multiple) {
  const int n = static_cast<int>(std::ceil(x / multiple - 1e-9));
  return std::max(1, n) * multiple;
}

long voxels(const std::array<int, 3>& p) {
  return static_cast<long>(p[0]) * p[1] * p[2];
}

struct ChannelRule {
  ChannelPlan plan;
  std::string modality;  // "" when the name says nothing
};

ChannelRule channel_rule(const ChannelFingerprint& c, bool is_2d_data, const std::string& fallback_modality) {
  ChannelRule r;
  r.plan.name = c.name;
  r.modality = modality_from_channel_name(c.name);
  const auto words = words_of(c.name);
  const std::string modality = r.modality.empty() ? canonical_modality(fallback_modality) : r.modality;
  auto& n = r.plan.normalization;
  if (modality == "CT") {
    const IntensityStats& s = c.foreground.count > 0 ? c.foreground : c.all;
    n.scheme = imaging::NormalizationScheme::CT;
    n.clip_low = round_sig(s.percentile_00_5);
    n.clip_high = round_sig(s.percentile_99_5);
    n.mean = round_sig(s.mean);
    n.std = round_sig(std::max(s.std, 1e-8));
  } else if (modality == "PT") {
    const bool mip = has_word(words, {"MIP"}) || is_2d_data;
    if (mip) {
      r.plan.invert = c.pixel_type == "uint8" && c.all.count > 0 && c.all.percentile_50_0 > 127.5;
      n.scheme = imaging::NormalizationScheme::ZScore;
      r.plan.foreground = "above_zero";
    } else {
      n.scheme = imaging::NormalizationScheme::None;
    }
  } else if (modality == "MR") {
    n.scheme = imaging::NormalizationScheme::ZScore;
    r.plan.foreground = "above_zero";
  } else {
    n.scheme = imaging::NormalizationScheme::ZScore;
    r.plan.foreground = "all";
  }
  return r;
}

std::string default_name(const DatasetFingerprint& f) {
  std::string base = std::filesystem::path(f.root).filename().string();
  if (base.empty()) base = std::filesystem::path(f.root).parent_path().filename().string();
  std::string out;
  for (char ch : base) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  return out.empty() ? "model" : out;
}

}  // namespace

std::string modality_from_channel_name(const std::string& name) {
  const auto w = words_of(name);
  if (has_word(w, {"CT", "CTA", "HU"})) return "CT";
  if (has_word(w, {"PET", "PT", "MIP", "SUV", "FDG", "PSMA"})) return "PT";
  if (has_word(w, {"MR",   "MRI", "FLAIR", "T1",  "T2",  "T1C", "T1CE",  "T1GD", "T1W", "T2W",   "T1WI",
                   "T2WI", "PD",  "DWI",   "ADC", "SWI", "DCE", "DIXON", "STIR", "GRE", "T2STAR"}))
    return "MR";
  return "";
}

Plans plan_from_fingerprint(const DatasetFingerprint& f, const PlanOptions& options) {
  if (f.channels.empty()) throw Error(ErrorCode::InvalidDataset, "fingerprint: no channel");
  // 1. dimensionality
  int dims = 0;
  if (options.dims == "auto" || options.dims.empty())
    dims = f.is_2d ? 2 : 3;
  else if (options.dims == "2d" || options.dims == "2D")
    dims = 2;
  else if (options.dims == "3d" || options.dims == "3D")
    dims = 3;
  else
    throw Error(ErrorCode::BadArgument, "--dims: expected auto, 2d or 3d, found '" + options.dims + "'");
  if (dims == 3 && f.is_2d) {
    throw Error(ErrorCode::BadArgument,
                "--dims 3d: dataset '" + f.dataset + "' is 2D (every case has one slice); a 3D model needs volumes");
  }
  const int axes = dims;

  Plans p;
  p.name = options.name.empty() ? default_name(f) : options.name;
  p.labels = f.labels.empty() ? p.labels : f.labels;
  p.file_ending = f.file_ending;
  p.network.dims = dims;

  // 2. target spacing
  Vec3 target = f.median_spacing_mm;
  if (dims == 3) {
    int worst = 0;
    for (int a = 1; a < 3; ++a)
      if (target[static_cast<std::size_t>(a)] > target[static_cast<std::size_t>(worst)]) worst = a;
    double finest_other = 1e300, coarsest_other = 0, smallest_other_size = 1e300;
    for (int a = 0; a < 3; ++a) {
      if (a == worst) continue;
      finest_other = std::min(finest_other, target[static_cast<std::size_t>(a)]);
      coarsest_other = std::max(coarsest_other, target[static_cast<std::size_t>(a)]);
      smallest_other_size = std::min(smallest_other_size, f.median_size[static_cast<std::size_t>(a)]);
    }
    const bool aniso_spacing = target[static_cast<std::size_t>(worst)] > 3.0 * finest_other;
    const bool aniso_voxels = f.median_size[static_cast<std::size_t>(worst)] * 3.0 < smallest_other_size;
    if (aniso_spacing && aniso_voxels) {
      double t = f.spacing_p10_mm[static_cast<std::size_t>(worst)];
      if (t < coarsest_other) t = coarsest_other + 1e-5;
      target[static_cast<std::size_t>(worst)] = t;
    }
  }
  for (auto& t : target) t = round_sig(t);
  p.target_spacing_mm = target;

  // Median shape at the target spacing.
  std::array<double, 3> median_shape{1, 1, 1};
  for (int a = 0; a < 3; ++a) {
    const auto ua = static_cast<std::size_t>(a);
    std::vector<double> v;
    for (const auto& c : f.cases) v.push_back(static_cast<double>(c.size[ua]) * c.spacing_mm[ua] / target[ua]);
    median_shape[ua] =
        v.empty() ? f.median_size[ua] * f.median_spacing_mm[ua] / target[ua] : imaging::percentile(v, 50);
    median_shape[ua] = std::max(1.0, median_shape[ua]);
  }
  if (dims == 2) median_shape[2] = 1;

  // 3. + 4. patch size and topology
  const long budget = dims == 2 ? kPatchVoxelBudget2D : kPatchVoxelBudget3D;
  std::array<int, 3> patch{1, 1, 1};
  for (int a = 0; a < axes; ++a)
    patch[static_cast<std::size_t>(a)] = static_cast<int>(std::round(median_shape[static_cast<std::size_t>(a)]));
  Topology topo;
  for (;;) {
    topo = topology_for(patch, target, axes);
    for (int a = 0; a < 3; ++a) {
      const auto ua = static_cast<std::size_t>(a);
      patch[ua] = round_up(patch[ua], topo.divisor[ua]);
    }
    if (voxels(patch) <= budget) break;
    int shrink = -1;
    double worst_ratio = -1;
    for (int a = 0; a < axes; ++a) {
      const auto ua = static_cast<std::size_t>(a);
      if (patch[ua] <= topo.divisor[ua]) continue;  // cannot shrink further
      const double ratio = patch[ua] / median_shape[ua];
      if (ratio > worst_ratio + 1e-9 || (shrink >= 0 && std::fabs(ratio - worst_ratio) <= 1e-9 &&
                                         patch[ua] > patch[static_cast<std::size_t>(shrink)])) {
        worst_ratio = ratio;
        shrink = a;
      }
    }
    if (shrink < 0) break;  // every axis at its minimum
    patch[static_cast<std::size_t>(shrink)] -= topo.divisor[static_cast<std::size_t>(shrink)];
  }
  p.patch_size = patch;
  p.network.strides = topo.strides;
  p.network.features.clear();
  for (std::size_t s = 0; s <= topo.strides.size(); ++s) {
    p.network.features.push_back(std::min(kMaxFeatures, kBaseFeatures << s));
  }
  p.network.convs_per_stage = 2;
  p.network.deep_supervision = true;
  p.network.residual_encoder = false;
  p.network.attention_gates = false;
  p.network.dropout = 0;

  // 5. batch size
  const double patch_voxels = static_cast<double>(voxels(patch));
  int batch = dims == 2 ? std::clamp(static_cast<int>(std::floor(8.0 * kPatchVoxelBudget2D / patch_voxels)), 2, 12)
                        : std::clamp(static_cast<int>(std::floor(2.0 * kPatchVoxelBudget3D / patch_voxels)), 2, 4);
  double dataset_voxels = 0;
  for (const auto& c : f.cases) dataset_voxels += static_cast<double>(c.size[0]) * c.size[1] * c.size[2];
  if (dataset_voxels > 0) {
    const int cap = static_cast<int>(std::floor(0.05 * dataset_voxels / patch_voxels));
    batch = std::max(2, std::min(batch, cap));
  }
  p.batch_size = batch;

  // 6. normalisation and modality
  std::set<std::string> modalities;
  bool unknown = false;
  const std::string fallback = options.modality.empty() ? f.modality : options.modality;
  for (const auto& c : f.channels) {
    ChannelRule r = channel_rule(c, f.is_2d, fallback);
    if (r.modality.empty())
      unknown = true;
    else
      modalities.insert(r.modality);
    p.channels.push_back(r.plan);
  }
  if (!options.modality.empty())
    p.modality = canonical_modality(options.modality);
  else if (modalities.size() == 1 && !unknown)
    p.modality = *modalities.begin();
  else if (modalities.empty())
    p.modality = canonical_modality(f.modality);
  else
    p.modality = "";

  // 7. training
  auto& t = p.training;
  t.epochs = 50;
  t.iterations_per_epoch = dims == 2 ? 100 : 50;
  t.validation_cases = 0;
  t.learning_rate = 0.01;
  t.momentum = 0.99;
  t.weight_decay = 3e-5;
  t.loss = "dice_ce";
  t.foreground_oversample = 0.33;
  t.seed = 42;
  // bf16 autocast for the forward pass: measured on these AVX-512 BF16 CPUs, a 2D epoch (LGG,
  // 256 x 256 x 12) took 358 s instead of 740 s and both shipped models trained with it reach the
  // same Dice; set it false on a CPU without BF16, where the emulation is slower than float32.
  t.bf16 = true;
  t.augmentation.mirror = true;
  t.augmentation.mirror_axes = dims == 2 ? std::vector<int>{0, 1} : std::vector<int>{0, 1, 2};

  // 8. inference
  auto& i = p.inference;
  i.overlap = 0.5;
  i.window_batch = 4;
  i.tta_mirror_axes = {0, 1};
  i.mc_dropout_samples = 0;
  i.threshold = 0.5;
  i.min_lesion_ml = f.lesion_count > 0 && std::isfinite(f.lesion_ml.min) ? round_sig(0.5 * f.lesion_ml.min) : 0.0;
  i.min_lesion_voxels = 0;
  // One lesion per patient (>= 90% of the cases with foreground have a single component, at least
  // 10 such cases): keep only the largest predicted component, as nnU-Net does when it helps.
  int single = 0;
  for (const auto& c : f.cases) single += c.lesion_voxels.size() == 1 ? 1 : 0;
  i.min_fraction_of_largest =
      f.cases_with_lesions >= 10 && single >= 0.9 * f.cases_with_lesions ? 1.0 : 0.0;

  // The plans must read back as valid plans (same checks as plans.json files get).
  return plans_from_json(to_json(p), "planned plans");
}

}  // namespace tumorlab::model
