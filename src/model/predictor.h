#pragma once
// Inference with a model bundle (models/<name>/): preprocessing from plans.json, sliding window
// with Gaussian importance weighting, batched windows, optional mirroring TTA and MC-dropout,
// resampling back to the input grid, small-lesion removal, and an uncertainty map.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/box.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {

struct PredictOptions {
  bool tta = false;                 // mirror along plans.inference.tta_mirror_axes and average
  bool uncertainty = false;         // compute the entropy map (and MC-dropout when planned)
  std::optional<imaging::Box> roi;  // only this box of the input grid (voxels); outside = background
  int threads = 0;                  // LibTorch threads (0: all cores)
  double overlap = -1;              // < 0: plans.inference.overlap
  // bfloat16 autocast for the network (faster convolutions, less exact). Unset: the plans'
  // inference.bf16 on CPUs with native bf16 (resolve_bf16 in plans.h).
  std::optional<bool> bf16;
  std::string source = "input";     // names the image in error messages (file name, case id)
};

struct Prediction {
  LabelMap label;                   // on the input grid
  Volume probability;               // float32 foreground probability (1 - p(background)), input grid
  Volume uncertainty;               // float32 normalised entropy of the mean softmax in [0, 1]; empty unless asked
  double case_score = 0;            // case-level uncertainty for active learning (see docs/uncertainty.md);
                                    // computed only with options.uncertainty
  int64_t foreground_voxels = 0;    // label != 0 after small-lesion removal
  double foreground_ml = 0;         // foreground_voxels * voxel volume
  double seconds = 0;               // wall time of predict()
  // Parts of `seconds` (benchmarks, scores.json): checks + inversion + resampling to the plans'
  // spacing + normalisation; sliding window (network, TTA, Gaussian weighting); resampling the
  // probabilities back to the input grid + threshold/argmax + entropy map; small-lesion removal +
  // case score.
  double preprocess_seconds = 0;
  double infer_seconds = 0;
  double resample_seconds = 0;
  double postprocess_seconds = 0;
  bool bf16 = false;                // whether the network ran under bfloat16 autocast
};

class Predictor {
 public:
  // Loads and checks a bundle: bundle.json format version, plans, weights matching the network.
  // Errors: FileNotFound, InvalidDataset (naming the file and the mismatch).
  static Predictor load(const std::filesystem::path& bundle_folder);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  const Plans& plans() const;
  std::string name() const;
  std::string version() const;

  // `image` as read from disk (any grid); check_input() refuses what the model cannot take.
  Prediction predict(const Volume& image, const PredictOptions& options = {}) const;

 private:
  struct Impl;
  explicit Predictor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tumorlab::model
