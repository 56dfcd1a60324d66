#pragma once
// `tumorlab plan`: nnU-Net raw dataset -> fingerprint.json -> plans.json (see docs/planning.md).

#include <filesystem>
#include <functional>
#include <string>

#include "tumorlab/model/fingerprint.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::app {

struct PlanRequest {
  std::filesystem::path dataset;  // nnU-Net v2 raw dataset folder
  std::filesystem::path output;   // plans.json to write (parent folders are created)
  std::string name;               // plans.name ("" -> the dataset folder's name, lower case)
  std::string dims = "auto";      // auto | 2d | 3d
  std::string modality;           // override ("" -> from the channel names)
  // Fingerprint file: read when it exists (no image is read), otherwise computed and written there.
  // Empty: computed and written as fingerprint.json beside `output`.
  std::filesystem::path fingerprint;
  int threads = 0;                         // 0: one per core
  std::function<void(int, int)> progress;  // cases fingerprinted (done, total)
};

struct PlanResult {
  model::Plans plans;
  model::DatasetFingerprint fingerprint;
  std::filesystem::path plans_path, fingerprint_path;
  bool fingerprint_computed = false;
};

// Errors: FileNotFound / InvalidDataset (dataset, or a fingerprint whose channels differ from
// dataset.json), BadArgument (options), the readers' errors, IoFailure when writing.
PlanResult plan_dataset(const PlanRequest& request);

// A few human-readable lines: dims, spacing, patch, batch, stages, normalisation per channel.
std::string describe(const model::Plans& plans, const model::DatasetFingerprint& fingerprint);

}  // namespace tumorlab::app
