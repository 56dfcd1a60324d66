#pragma once
// Binary morphology on a label map's foreground (label != 0 when `label` is 0, else == label).
// Results are binary masks: 1 = foreground, 0 = background.
// Structuring element: a BinaryBallStructuringElement whose elements we set ourselves (ITK's own
// fill is a larger ellipsoid: radius 1 would give 19 voxels):
// - radius in voxels r (per axis): offsets d with sum over axes of (d/r)^2 <= 1, axes with r = 0
//   allowing only d = 0. Radius 1 in 3D is the centre and its 6 face neighbours (7 voxels), 4 in
//   2D (5 voxels); radius 2 is 33 voxels.
// - radius in mm (the *_mm functions): the physical ball, offsets with |d * spacing| <= radius_mm.
// On 2D images (size[2] == 1) the k radius is forced to 0.
// Borders: dilation treats outside the image as background; erosion treats it as foreground
// (ITK's BoundaryToForeground default), so a mask cut by the image border is not eroded from
// that side; opening inherits this; closing pads the image (ITK's SafeBorder) so that the
// border does not affect it.

#include <cstdint>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

// Radius in voxels per axis approximating a ball of radius_mm: round(radius_mm / spacing) per axis
// (k = 0 on 2D images). The *_mm functions do not use it: they use the exact physical ball.
// Throws Error(BadArgument) for a negative or non-finite radius.
Size3 radius_in_voxels(const Geometry& geometry, double radius_mm);
// The same radius on every axis (k = 0 on 2D images).
Size3 uniform_radius(const Geometry& geometry, int64_t radius_voxels);

LabelMap dilate(const LabelMap& labels, const Size3& radius_voxels, uint8_t label = 0);
LabelMap erode(const LabelMap& labels, const Size3& radius_voxels, uint8_t label = 0);
LabelMap open(const LabelMap& labels, const Size3& radius_voxels, uint8_t label = 0);   // erode then dilate
LabelMap close(const LabelMap& labels, const Size3& radius_voxels, uint8_t label = 0);  // dilate then erode

// Radius in mm: the physical ball (see above). Error(BadArgument) for a negative radius.
LabelMap dilate_mm(const LabelMap& labels, double radius_mm, uint8_t label = 0);
LabelMap erode_mm(const LabelMap& labels, double radius_mm, uint8_t label = 0);
LabelMap open_mm(const LabelMap& labels, double radius_mm, uint8_t label = 0);
LabelMap close_mm(const LabelMap& labels, double radius_mm, uint8_t label = 0);

// Fills holes: background regions not connected to the image border (ITK's
// BinaryFillholeImageFilter, FullyConnected off). On 2D images this is a 2D fill.
LabelMap fill_holes(const LabelMap& labels, uint8_t label = 0);
// Fills holes in each 2D slice perpendicular to index axis `axis` (0, 1 or 2; 2 = axial slices
// for an axial acquisition), as fill_holes does on a 2D image.
LabelMap fill_holes_slicewise(const LabelMap& labels, int axis = 2, uint8_t label = 0);

}  // namespace tumorlab::imaging
