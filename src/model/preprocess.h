#pragma once
// Case preprocessing shared by training and inference, driven only by the plans:
// channel check -> optional inversion -> resampling to the target spacing -> normalisation.
//
// Exactly:
// 1. check_input (below).
// 2. Inversion, for channels whose ChannelPlan::invert is true, on the input's own values before
//    any interpolation: x -> M - x, with M = 255 for uint8 images (8-bit PNG MIPs: white background
//    becomes 0, dark = high uptake becomes high), 65535 for uint16, and the channel's largest
//    finite value for every other pixel type (so the result is >= 0 there too).
// 3. Resampling to target_geometry (linear, float32; target voxels outside the input get 0).
//    Skipped when the grid is already the target grid. Spacings within 1e-6 (relative) of the
//    target are kept as they are.
// 4. Normalisation per channel (ChannelPlan::normalization):
//    CT     clip to [clip_low, clip_high], then (x - mean) / std with the plans' stored numbers;
//    ZScore (x - mean) / std with mean and std of this case's foreground voxels, chosen by
//           ChannelPlan::foreground: "above_zero" (x > 0 after inversion and resampling; nnU-Net's
//           nonzero mask), "all", or "otsu" (above the channel's Otsu threshold); an empty
//           foreground falls back to all voxels;
//    None   values unchanged (float32 copy).
//    (std is floored at 1e-8; see imaging/normalize.h.)
// Output channel names are the plans' channel names; the modality is the input's.

#include <string>

#include "tumorlab/core/volume.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {

// Refuses an input the model cannot take, with a message naming `source`, what the model
// expects and what was found: wrong channel count (BadArgument), a 2D image for a 3D model
// (BadArgument), a modality that differs from plans.modality when the volume states one
// (BadArgument; "PT" = "PET" and "MR" = "MRI", case ignored). A 2D model takes 2D images and 3D
// volumes (slice by slice).
void check_input(const Volume& image, const Plans& plans, const std::string& source);

// Grid of the preprocessed image: the input's field of view at plans.target_spacing_mm.
// 2D models keep the input's z spacing and size (they work slice by slice).
Geometry target_geometry(const Geometry& input, const Plans& plans);

// float32, plans.channels.size() channels, on target_geometry(image.geometry()).
Volume preprocess_image(const Volume& image, const Plans& plans);
// Nearest-neighbour onto `target` (use target_geometry of the image).
LabelMap preprocess_label(const LabelMap& label, const Geometry& target);

}  // namespace tumorlab::model
