#pragma once
// Bounding boxes of foreground, cropping to a box and pasting a crop back (uncrop).
// Cropping keeps physical positions: the cropped geometry's origin is the physical position of
// the box's first voxel, so index_to_physical of the same voxel agrees before and after.

#include <cstdint>

#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/box.h"

namespace tumorlab::imaging {

// Bounding box of the voxels with label != 0 (label == 0) or == label, grown by margin_voxels on
// every side and clipped to the grid. Empty Box (Box{} , empty() true) when there is no foreground.
Box bounding_box(const LabelMap& labels, uint8_t label = 0, int64_t margin_voxels = 0);
// Bounding box of voxels that are non-zero in any channel (NaN counts as non-zero).
Box nonzero_bounding_box(const Volume& volume, int64_t margin_voxels = 0);

// Geometry of the sub-grid `box` of `geometry` (same spacing and direction, origin moved).
// Throws Error(BadArgument) when the box is empty or not inside the grid.
Geometry cropped_geometry(const Geometry& geometry, const Box& box);

// Copies of the voxels inside `box` (all channels; modality and channel names kept).
Volume crop(const Volume& volume, const Box& box);
LabelMap crop(const LabelMap& labels, const Box& box);

// Pastes a cropped image back into a new image on `full` filled with `fill` elsewhere.
// The crop must have the size of `box` and sit where cropped_geometry(full, box) says, otherwise
// Error(GeometryMismatch).
Volume uncrop(const Volume& cropped, const Box& box, const Geometry& full, double fill = 0);
LabelMap uncrop(const LabelMap& cropped, const Box& box, const Geometry& full, uint8_t fill = 0);

}  // namespace tumorlab::imaging
