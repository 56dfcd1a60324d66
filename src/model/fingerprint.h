#pragma once
// Dataset fingerprint (nnU-Net's first stage): what the planner needs to know about a training set,
// written as fingerprint.json so that planning can be rerun or inspected without the images.
//
// Per case: size, spacing, pixel type, foreground (label > 0) voxel count and fraction, the
// connected components of the label (26/8-connected, imaging::Connectivity::Full) with voxels and
// mL, and per channel the statistics of all voxels and of the foreground voxels.
// Per channel over the dataset: the same statistics over a pooled sample of every case's voxels
// (at most kFingerprintSamplesPerCase per case and set, evenly strided in scan order, so every case
// weighs about the same; nnU-Net samples 10,000 foreground voxels per case at random). Tiny cases
// contribute all their voxels, so the numbers are then exact.
// Statistics: percentiles 0.5 / 50 / 99.5 (numpy's linear rule, imaging/statistics.h), mean and
// population std, min, max, count. Empty sets give NaN (null in JSON).
// Dataset: median spacing and size per axis, 10th percentile of the spacing per axis, 2D when every
// case has size z == 1, foreground fractions, lesion size summary (min / median / max).

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/core/geometry.h"
#include "tumorlab/io/nnunet.h"

namespace tumorlab::model {

inline constexpr int kFingerprintVersion = 1;
inline constexpr int64_t kFingerprintSamplesPerCase = 10000;

struct IntensityStats {
  int64_t count = 0;
  double min = 0, max = 0;
  double percentile_00_5 = 0, percentile_50_0 = 0, percentile_99_5 = 0;
  double mean = 0, std = 0;  // population std
};

struct CaseFingerprint {
  std::string id;
  Size3 size{1, 1, 1};
  Vec3 spacing_mm{1, 1, 1};
  std::string pixel_type;              // of channel 0's file ("uint8", ...)
  std::string modality;                // as read from the file ("" for most formats)
  int64_t foreground_voxels = 0;       // label > 0
  double foreground_fraction = 0;      // foreground_voxels / voxel count
  std::vector<int64_t> lesion_voxels;  // connected components of label > 0, largest first
  std::vector<double> lesion_ml;
  std::vector<IntensityStats> all;         // per channel, every voxel
  std::vector<IntensityStats> foreground;  // per channel, label > 0 voxels
};

struct ChannelFingerprint {
  std::string name;
  std::string pixel_type;  // of the first case
  IntensityStats all;      // pooled sample over the dataset
  IntensityStats foreground;
};

struct SizeSummary {
  double min = 0, median = 0, max = 0;  // NaN when there is no lesion
};

struct DatasetFingerprint {
  int version = kFingerprintVersion;
  std::string dataset;  // dataset.json "name"
  std::string root;     // folder the fingerprint was computed from
  std::string file_ending;
  std::map<std::string, int> labels;
  std::vector<ChannelFingerprint> channels;
  std::vector<CaseFingerprint> cases;

  bool is_2d = false;  // every case has size z == 1
  Vec3 median_spacing_mm{1, 1, 1};
  Vec3 spacing_p10_mm{1, 1, 1};  // 10th percentile per axis (nnU-Net's anisotropic rule)
  std::array<double, 3> median_size{1, 1, 1};
  std::string modality;  // the files' modality when all cases agree, else ""
  int cases_with_foreground = 0;
  double mean_foreground_fraction = 0;    // over all cases
  double median_foreground_fraction = 0;  // over cases with foreground (NaN when none)
  int64_t lesion_count = 0;               // over the dataset
  int cases_with_lesions = 0;
  SizeSummary lesion_voxels, lesion_ml;
};

// Reads every labelled training case (channels and label) with `threads` worker threads
// (<= 0: hardware concurrency) and summarises it. `progress(done, total)` is called under a lock
// from the worker threads. Errors: the readers' (naming the file), InvalidDataset when a case's
// channels or label are on different grids, EmptyInput when the dataset has no labelled case.
DatasetFingerprint compute_fingerprint(const io::NnunetDataset& dataset, int threads = 0,
                                       const std::function<void(int, int)>& progress = {});

nlohmann::json to_json(const DatasetFingerprint& fingerprint);
// Errors: InvalidDataset naming the field.
DatasetFingerprint fingerprint_from_json(const nlohmann::json& json, const std::string& source = "fingerprint.json");
DatasetFingerprint load_fingerprint(const std::filesystem::path& path);
void save_fingerprint(const DatasetFingerprint& fingerprint, const std::filesystem::path& path);

}  // namespace tumorlab::model
