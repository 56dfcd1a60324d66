#pragma once
// Resampling volumes and label maps to a new spacing or onto a reference grid.
//
// Conventions
// - Values are sampled at the physical positions of the target voxel centres (ITK's
//   ResampleImageFilter, identity transform). Target voxels whose centre falls outside the
//   source grid (more than half a voxel beyond the outermost centres) get `default_value`.
// - Resampling to a new spacing keeps the field of view centred: new size per axis is
//   round(old_size * old_spacing / new_spacing) (at least 1), and the new origin is chosen so that
//   the centre of the grid, origin + D * diag(spacing) * (size - 1) / 2, is the same physical
//   point before and after. When the extent divides exactly (new_size * new_spacing ==
//   old_size * old_spacing) this keeps the outer corner of the field of view (the edge of voxel 0,
//   origin - D * spacing / 2) fixed, which is where nnU-Net's resize (skimage, edge-aligned) puts
//   it. The common SimpleITK recipe that keeps the origin unchanged shifts the field of view by
//   (new_spacing - old_spacing) / 2 instead; we do not do that.
//   Direction cosines are kept.
// - Interpolation: Linear for images, Nearest for labels (label maps always use Nearest).
//   Output pixel type: the input's for Nearest; float32 for Linear unless `output_type` is given
//   (values are then rounded and clamped to the type's range).

#include <optional>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

enum class Interpolation { Nearest, Linear };

struct ResampleOptions {
  Interpolation interpolation = Interpolation::Linear;
  std::optional<PixelType> output_type;  // default: input type (Nearest) or float32 (Linear)
  double default_value = 0;              // for target voxels outside the source grid
  // Linear, same direction cosines on both grids (resampling to a spacing and back): three 1D
  // passes instead of ITK's filter, the same values to float rounding. false: always ITK's filter.
  bool separable = true;
};

// The grid `resample_to_spacing` produces (see the conventions above).
// Throws Error(BadArgument) for a non-positive or non-finite spacing.
Geometry geometry_with_spacing(const Geometry& geometry, const Vec3& spacing_mm);

// All channels, resampled onto `target`. Modality and channel names are kept.
Volume resample(const Volume& volume, const Geometry& target, const ResampleOptions& options = {});
Volume resample_to_spacing(const Volume& volume, const Vec3& spacing_mm, const ResampleOptions& options = {});

// Label maps: nearest neighbour, background (0) outside the source grid.
LabelMap resample(const LabelMap& labels, const Geometry& target);
LabelMap resample_to_spacing(const LabelMap& labels, const Vec3& spacing_mm);

}  // namespace tumorlab::imaging
