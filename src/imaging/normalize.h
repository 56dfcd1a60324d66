#pragma once
// Intensity normalisation, per channel, returning float32 volumes.
//
// Schemes (nnU-Net's, see nnunetv2/preprocessing/normalization):
// - CT: the voxels of the statistics set S (the mask's foreground when a mask is given, else all
//   voxels) give clip_low/clip_high = percentiles lower_percentile/upper_percentile of S (default
//   0.5 and 99.5; numpy-style linear percentiles, see statistics.h), unless fixed clip values are
//   given. mean and std are computed over S after clipping. Applying: clip every voxel to
//   [clip_low, clip_high], then (x - mean) / max(std, 1e-8).
//   nnU-Net computes these numbers once over the training set's foreground; the planner stores
//   them in plans.json and inference applies the same numbers (apply_normalization).
// - ZScore (MR): mean and std over the foreground: the mask's foreground when a mask is given,
//   otherwise voxels > foreground_threshold (default 0) or, with ForegroundRule::Otsu, voxels
//   above the Otsu threshold of the channel (ITK's OtsuThresholdCalculator, 128 bins), or all
//   voxels with ForegroundRule::All. If the foreground is empty, all voxels are used (and a
//   warning is logged). Applying: (x - mean) / max(std, 1e-8) on every voxel (no clipping, no
//   zeroing of the background). Computed per case, at training and at inference.
// - None (PET, already in SUV or Bq/mL): a float32 copy; values unchanged.
// Non-finite voxels are left out of all statistics; they stay non-finite after applying.
// std is the population standard deviation (divide by n).

#include <string>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

enum class NormalizationScheme { CT, ZScore, None };

std::string to_string(NormalizationScheme scheme);  // "CT", "ZScore", "None"
// Parses "CT", "ZScore" (or "MR"), "None" (or "PET", "noNorm"); Error(BadArgument) otherwise.
NormalizationScheme parse_normalization_scheme(const std::string& name);
// CT -> CT, PT/PET -> None, anything else (MR, "") -> ZScore.
NormalizationScheme scheme_for_modality(const std::string& modality);

enum class ForegroundRule { AboveThreshold, Otsu, All };

struct NormalizationOptions {
  NormalizationScheme scheme = NormalizationScheme::ZScore;
  // CT: percentiles of the statistics set used as clip bounds, unless fixed values are set.
  double lower_percentile = 0.5;
  double upper_percentile = 99.5;
  bool use_fixed_clip = false;  // use fixed_clip_low/high instead of percentiles
  double fixed_clip_low = 0;
  double fixed_clip_high = 0;
  // ZScore without a mask: which voxels are foreground.
  ForegroundRule foreground = ForegroundRule::AboveThreshold;
  double foreground_threshold = 0;
};

// The numbers needed to apply a normalisation to one channel (what plans.json stores).
struct NormalizationParams {
  NormalizationScheme scheme = NormalizationScheme::None;
  double clip_low = 0, clip_high = 0;  // used by CT only
  double mean = 0, std = 1;            // used by CT and ZScore
};

// Statistics per channel. `options` holds one entry per channel, or one entry used for all.
// `mask` (optional) must be on the image's grid (Error(GeometryMismatch) otherwise); its non-zero
// voxels are the statistics set.
std::vector<NormalizationParams> compute_normalization(const Volume& image,
                                                       const std::vector<NormalizationOptions>& options,
                                                       const LabelMap* mask = nullptr);
NormalizationParams compute_channel_normalization(const Volume& image, int channel,
                                                  const NormalizationOptions& options,
                                                  const LabelMap* mask = nullptr);

// float32 volume with each channel normalised by its params (one per channel, or one for all).
Volume apply_normalization(const Volume& image, const std::vector<NormalizationParams>& params);

// compute_normalization followed by apply_normalization.
Volume normalize(const Volume& image, const std::vector<NormalizationOptions>& options,
                 const LabelMap* mask = nullptr);

}  // namespace tumorlab::imaging
