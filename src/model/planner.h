#pragma once
// Planning (nnU-Net's second stage, sized for CPUs): dataset fingerprint -> plans.json.
// The rules are documented in planner.cpp and docs/planning.md. The result is a starting point that
// a person can read and edit; training and inference read everything from it.

#include <string>

#include "tumorlab/model/fingerprint.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {

struct PlanOptions {
  std::string name;           // plans.name; "" -> the dataset folder's name, lower case
  std::string dims = "auto";  // "auto" (2D data -> 2D, volumes -> 3D), "2d" or "3d"
  std::string modality;       // overrides the modality inferred from the channel names ("" = infer)
};

// Voxel budgets of one training patch (the CPU sizing; see planner.cpp).
inline constexpr long kPatchVoxelBudget2D = 320L * 320L;        // e.g. 224 x 448
inline constexpr long kPatchVoxelBudget3D = 128L * 128L * 24L;  // ~393k, e.g. 128 x 128 x 24
inline constexpr int kMaxStages = 6;                            // 5 downsamplings at most
inline constexpr int kMinFeatureMap = 4;                        // voxels per axis at the deepest stage
inline constexpr int kBaseFeatures = 16;
inline constexpr int kMaxFeatures = 256;

// Errors: BadArgument (dims not auto/2d/3d, 3d asked for a 2D dataset), InvalidDataset (the
// fingerprint has no channel).
Plans plan_from_fingerprint(const DatasetFingerprint& fingerprint, const PlanOptions& options = {});

// The per-channel rule on its own (for tests and docs): modality ("CT", "PT", "MR" or "") guessed
// from a channel name's words, e.g. "PET-MIP" -> "PT", "T1 post-contrast" -> "MR", "CT" -> "CT".
std::string modality_from_channel_name(const std::string& name);

}  // namespace tumorlab::model
