#pragma once
// Model bundles: a folder models/<name>/ that describes a trained model fully (nnU-Net's idea:
// inference never relies on code defaults).
//
//   model.pt       weights: torch::save of the UNet built by unet_config_from_plans(plans)
//   model_2.pt ... an ensemble's further members (bundle.json "weights"; same plans, the
//                  predictor averages the members' probabilities)
//   plans.json     the plans the network was trained with (preprocessing, patch, inference)
//   bundle.json    this header's BundleMetadata (format, versions, channel names, labels, training)
//   split.json     optional: the fixed train/validation split
//   MODEL_CARD.md  written by hand from `tumorlab evaluate` results
//
// bundle.json:
//   {"format": "tumorlab-model", "format_version": 1, "name": "...", "version": "...",
//    "tumorlab_version": "0.1.0", "torch_version": "1.13.1", "channels": ["FLAIR", ...],
//    "labels": {"background": 0, "tumor": 1}, "created": "2024-01-01T00:00:00Z",
//    "training": {...free-form summary: epochs, best validation Dice, dataset, seconds...},
//    "weights": ["model.pt", "model_2.pt"]}   (only for an ensemble; absent = ["model.pt"])
//
// No torch here: the trainer's export_bundle and the predictor both use this header.

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/model/plans.h"

namespace tumorlab::model {

inline constexpr const char* kBundleFormat = "tumorlab-model";
inline constexpr int kBundleFormatVersion = 1;
inline constexpr const char* kBundleWeightsFile = "model.pt";
inline constexpr const char* kBundlePlansFile = "plans.json";
inline constexpr const char* kBundleMetadataFile = "bundle.json";

struct BundleMetadata {
  std::string format = kBundleFormat;
  int format_version = kBundleFormatVersion;
  std::string name;                      // model name (plans.name by default)
  std::string version;                   // model version, e.g. "1" or "2024-05-01"
  std::string tumorlab_version;          // tumorlab that wrote the bundle
  std::string torch_version;             // LibTorch that saved model.pt
  std::vector<std::string> channels;     // input channel names, in order (must equal plans.json's)
  std::map<std::string, int> labels;     // label name -> value (as plans.json)
  std::string created;                   // ISO 8601 UTC, e.g. "2024-05-01T12:00:00Z"
  nlohmann::json training = nlohmann::json::object();  // free-form training summary
  // Held-out evaluation recorded by scripts/evaluate_model.sh --record (free-form: cases,
  // patients_mean_dice, patients_median_dice, patients_mean_hd95_mm, patients_mean_lesion_f1,
  // measured, settings); null when the bundle has not been evaluated.
  nlohmann::json evaluation = nullptr;
  // The weight files of the bundle's networks, in the folder: empty = one network in model.pt.
  // An ensemble lists several (the first is model.pt); each is a plain file name ending in .pt.
  std::vector<std::string> weights;
};

// The weight files of a bundle: metadata.weights, or {"model.pt"} when that is empty.
std::vector<std::string> weight_files(const BundleMetadata& metadata);
// The dtype model.pt's tensors are stored in: training.weights_dtype ("float16" as export_bundle
// writes), "float32" when absent (untrained and hand-made bundles).
std::string weights_dtype(const BundleMetadata& metadata);

// Metadata for a bundle of `plans`: name, channels and labels from the plans; tumorlab and
// LibTorch versions of this build; `created` = now (UTC).
BundleMetadata make_bundle_metadata(const Plans& plans, const std::string& version = "1",
                                    const nlohmann::json& training = nlohmann::json::object());

nlohmann::json to_json(const BundleMetadata& metadata);
// Parses and checks format and format_version. Error(InvalidDataset) naming `source` and the field.
BundleMetadata bundle_metadata_from_json(const nlohmann::json& json, const std::string& source = "bundle.json");

// Writes <bundle_folder>/bundle.json atomically (creates the folder). Error(IoFailure).
void write_bundle_metadata(const BundleMetadata& metadata, const std::filesystem::path& bundle_folder);
// Reads and checks <bundle_folder>/bundle.json. Errors: FileNotFound, InvalidDataset.
BundleMetadata read_bundle_metadata(const std::filesystem::path& bundle_folder);

// Checks that bundle.json agrees with plans.json: channel names (same count, same order) and
// labels. Error(InvalidDataset) naming both files, the expected and the found values.
void check_bundle_consistency(const BundleMetadata& metadata, const Plans& plans,
                              const std::filesystem::path& bundle_folder);

// Writes an ensemble bundle to `output` (a new or empty folder) from the bundles `members` (two or
// more, ensembles among them contribute all their networks): the first member's plans.json, every
// member's weights (model.pt, model_2.pt, ...), and bundle.json with version `version` and
// training.ensemble_of naming each member. The members must agree on everything in plans.json
// but the "training" section and the name (same network, preprocessing, patch, inference), and on
// channels, labels and the weights' dtype. Errors: BadArgument (fewer than two members, output
// not empty), FileNotFound, InvalidDataset (naming the member and what differs), IoFailure.
void write_ensemble_bundle(const std::vector<std::filesystem::path>& members, const std::filesystem::path& output,
                           const std::string& version);

// Writes a complete bundle holding an untrained network (weights initialised from `seed`) for
// `plans`: for tests, demos and smoke runs of the pipeline, never for real predictions.
// (Trained bundles come from the trainer's export_bundle.) Error(IoFailure).
void write_untrained_bundle(const std::filesystem::path& bundle_folder, const Plans& plans, uint64_t seed = 0);

// Version strings of this build.
std::string tumorlab_version();
std::string torch_version();

}  // namespace tumorlab::model
