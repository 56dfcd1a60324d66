#pragma once
// Case preprocessing shared by training and inference, driven only by the plans:
// channel check -> optional inversion -> resampling to the target spacing -> normalisation.

#include <string>

#include "tumorlab/core/volume.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {

// Refuses an input the model cannot take, with a message naming `source`, what the model
// expects and what was found: wrong channel count (BadArgument), a 2D image for a 3D model
// (BadArgument), a modality that differs from plans.modality when the volume states one.
void check_input(const Volume& image, const Plans& plans, const std::string& source);

// Grid of the preprocessed image: the input's field of view at plans.target_spacing_mm.
// 2D models keep the input's z spacing and size (they work slice by slice).
Geometry target_geometry(const Geometry& input, const Plans& plans);

// float32, plans.channels.size() channels, on target_geometry(image.geometry()).
Volume preprocess_image(const Volume& image, const Plans& plans);
// Nearest-neighbour onto `target` (use target_geometry of the image).
LabelMap preprocess_label(const LabelMap& label, const Geometry& target);

}  // namespace tumorlab::model
