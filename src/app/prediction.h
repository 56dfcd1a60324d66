#pragma once
// `tumorlab predict`: segment images with a model bundle and write one label per case.
//
// Inputs (each INPUT argument):
// - an image file                 -> one case named after the file ("<stem>")
// - a DICOM folder, .zip or file  -> one case per readable image series, named
//                                    "<series number>_<description>" (sanitised)
// - an imagesTr-style folder      -> cases grouped by "<case>_<XXXX><ending>" (channel files),
//                                    the channel count from the model's plans; an nnU-Net dataset
//                                    root uses its imagesTs/ (else imagesTr/)
// Outputs in OUTDIR: "<case>.png" (uint8, 0/1...) for PNG inputs, else "<case>.nii.gz", exactly on
// the input's grid; with uncertainty also "<case>_uncertainty.nii.gz" (float32, [0, 1]) and
// scores.json + scores.csv ranking the cases by case score (docs/uncertainty.md); with
// probabilities also "<case>_probability.nii.gz" (float32 foreground probability in [0, 1], before
// the threshold and small-lesion removal: for ensembling outside tumorlab, calibration, audits).

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tumorlab/imaging/box.h"

namespace tumorlab::app {

struct PredictRequest {
  std::string model;                          // bundle folder, or a name under models/
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path output;               // folder (created)
  bool tta = false;
  bool uncertainty = false;
  bool probabilities = false;                 // also write <case>_probability.nii.gz
  std::optional<bool> bf16;                   // unset: the plans' inference.bf16 (model::PredictOptions)
  std::optional<imaging::Box> roi;            // voxels of the input grid, end exclusive
  int threads = 0;                            // 0: all cores
  double overlap = -1;                        // < 0: the plans' value
  std::filesystem::path timings_file;         // optional: per-case timings as JSON (bench/model_bench.py)
};

struct CaseResult {
  std::string id;
  std::filesystem::path label_file;
  std::filesystem::path uncertainty_file;     // empty unless uncertainty
  std::filesystem::path probability_file;     // empty unless probabilities
  double score = 0;                           // case score (uncertainty only)
  int64_t foreground_voxels = 0;
  double volume_ml = 0;
  double seconds = 0;                         // read + predict + write
  double predict_seconds = 0;                 // the network part (Predictor::predict)
  // Parts of `seconds` (benchmarks): reading the image; Predictor::predict's preprocess, infer
  // (sliding window), resample (back to the input grid), postprocess (small lesions, uncertainty);
  // writing the label (and uncertainty map). model_load_seconds: loading the bundle, once per run
  // (the same value on every case, not part of `seconds`).
  double read_seconds = 0;
  double preprocess_seconds = 0;
  double infer_seconds = 0;
  double resample_seconds = 0;
  double postprocess_seconds = 0;
  double write_seconds = 0;
  double model_load_seconds = 0;
  bool bf16 = false;                          // the network ran under bfloat16 autocast
};

// A model argument as a bundle folder: an existing folder as given; otherwise a name looked up
// in $TUMORLAB_MODELS_DIR, ./models and the source tree's models/. Error(FileNotFound) listing
// the places tried.
std::filesystem::path resolve_model(const std::string& model);

// Runs every case; `on_case` is called after each (for progress lines). Errors of a case stop
// the run with the error naming the case.
std::vector<CaseResult> predict(const PredictRequest& request,
                                const std::function<void(const CaseResult&, int done, int total)>& on_case = {});

// "i0,j0,k0,i1,j1,k1" -> Box (end exclusive). Error(BadArgument) otherwise.
imaging::Box parse_roi(const std::string& text);

}  // namespace tumorlab::app
