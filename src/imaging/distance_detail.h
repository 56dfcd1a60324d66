#pragma once
// Internal to tumorlab_imaging: raw distance transform used by distance.cpp and metrics.cpp.

#include <cstdint>

#include "tumorlab/core/geometry.h"

namespace tumorlab::imaging::detail {

// ITK's signed Maurer distance (mm, inside negative, see distance.h) of a 0/1 mask on `geometry`
// into `out` (voxel_count floats). The mask must hold both foreground and background.
void maurer_signed_distance(const uint8_t* mask, const Geometry& geometry, float* out);

}  // namespace tumorlab::imaging::detail
