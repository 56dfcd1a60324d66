#pragma once
// Synthetic demo cases: seeded, deterministic generators of images that look enough like the
// project's training data that the bundled models respond to them. No patient data is involved;
// every case is named "DEMO-..." and its description says it is synthetic.
//
// - brain_mr_phantom: 256 x 256 x `slices` uint8, two channels (FLAIR, T1 post-contrast), 1 mm
//   nominal spacing and the LPS-identity direction of Dataset002 (LGG FLAIR, RAS diag(-1,-1,1) in
//   NIfTI). Scalp, skull, CSF, grey and white matter with texture, lateral ventricles, and an
//   irregular FLAIR-bright, T1-dark lesion in one hemisphere; label 1 = lesion. Intensities follow
//   that dataset: background 0..5, brain 50..70, lesion about 100..130 on FLAIR.
// - pet_mip_phantom: 400 x `height` uint8 2D image in the convention of Dataset001 (MIP PET):
//   white background (255), body light grey, high uptake dark; brain, heart, kidneys and bladder
//   dark as in real scans, liver mildly; 2..5 tumour blobs (label 1) in lymph-node sites.
// Same seed -> identical voxels. Different seeds give different anatomy and lesions.

#include <cstdint>
#include <string>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

struct Phantom {
  std::string name;         // "DEMO-brain-<seed>", "DEMO-pet-<seed>"
  std::string description;  // says "synthetic"
  Volume image;
  LabelMap label;
};

// slices in 16..64 (Error(BadArgument) otherwise).
Phantom brain_mr_phantom(uint64_t seed, int slices = 28);
// height in 400..1200 (Error(BadArgument) otherwise).
Phantom pet_mip_phantom(uint64_t seed, int height = 900);

}  // namespace tumorlab::imaging
