#pragma once
// `tumorlab demo-data OUTDIR`: synthetic demo cases (imaging/phantom.h) written as two small
// nnU-Net v2 raw datasets, so a newcomer (and an empty server) has something to open at once:
//   OUTDIR/Dataset901_DEMO_BrainMR/{dataset.json, imagesTr/DEMO-brain-<seed>_000{0,1}.nii.gz, labelsTr/...}
//   OUTDIR/Dataset902_DEMO_PetMip/{dataset.json, imagesTr/DEMO-pet-<seed>_0000.png, labelsTr/...}
// Channel names and label names match Dataset002 (FLAIR, T1 post-contrast) and Dataset001
// (PET-MIP), so the bundled models accept the images. dataset.json says "synthetic": true and
// holds each case's description. Same seed -> the same bytes.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tumorlab::app {

struct DemoDataRequest {
  std::filesystem::path output;  // created when missing
  uint64_t seed = 1;             // case c of each dataset uses seed + c
  int brain_cases = 2;           // 0..20
  int pet_cases = 2;             // 0..20
  int brain_slices = 28;
  int pet_height = 900;
};

struct DemoDataResult {
  std::vector<std::filesystem::path> datasets;  // dataset folders written
  std::vector<std::filesystem::path> files;     // every image, label and dataset.json
};

// Errors: BadArgument (counts, sizes), IoFailure (cannot write).
DemoDataResult write_demo_data(const DemoDataRequest& request);

}  // namespace tumorlab::app
