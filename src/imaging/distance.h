#pragma once
// Euclidean distance maps in millimetres (voxel spacing taken into account; distances are
// between voxel centres), computed with ITK's SignedMaurerDistanceMapImageFilter (exact EDT,
// UseImageSpacing on, SquaredDistance off). float32 volumes on the mask's grid.
//
// Signed convention (ITK's, InsideIsPositive off):
// - the boundary B is the set of foreground voxels that have at least one background voxel
//   among their 26 neighbours (8 in 2D) inside the image (the image border itself is not a
//   boundary);
// - boundary voxels get 0; other foreground voxels get -(distance to the nearest voxel of B);
//   background voxels get +(distance to the nearest voxel of B), which equals the distance to the
//   nearest foreground voxel.
//   Example (1 mm spacing): a 5x5x5 cube has 0 on its outer shell, -1 one voxel deeper, -2 at the
//   centre, and +1 at the background voxel next to a face.
// - empty mask: +infinity everywhere; mask without background: -infinity everywhere.

#include <cstdint>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

Volume signed_distance_mm(const LabelMap& labels, uint8_t label = 0);

// Unsigned distance from each voxel centre to the nearest foreground voxel centre (0 on the
// foreground). +infinity everywhere for an empty mask.
Volume distance_to_mask_mm(const LabelMap& labels, uint8_t label = 0);

}  // namespace tumorlab::imaging
