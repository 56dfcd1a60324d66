#pragma once
// Editing tools as pure functions of (image, label map, settings) -> LabelDelta, in the manner
// of ITK-SNAP: nothing here knows about users, sessions or the server. Apply the result with
// LabelDelta::apply (or edit::applied) and keep it for undo and the audit trail.
//
// Common rules:
// - The image is a Volume on the label map's grid (Error(GeometryMismatch) otherwise); tools read
//   one channel (`channel`, Error(BadArgument) when out of range).
// - Voxel indices are (i, j, k) on the label map's grid; radii are in millimetres and follow the
//   voxel spacing, so a 3 mm brush on 1 x 1 x 3 mm voxels is a flat disc of 13 voxels.
// - `draw_over` decides which voxels a tool may change (ITK-SNAP's "draw over"): every voxel,
//   only background (label 0), or only voxels holding one given label.
// - Out-of-range indices, empty boxes and bad axes are Error(BadArgument) naming the field.

#include <cstdint>
#include <optional>
#include <vector>

#include "tumorlab/core/volume.h"
#include "tumorlab/edit/delta.h"
#include "tumorlab/imaging/box.h"
#include "tumorlab/imaging/components.h"

namespace tumorlab::edit {

using imaging::Connectivity;

struct DrawOver {
  enum class Mode { All, Background, Label };
  Mode mode = Mode::All;
  uint8_t label = 0;  // for Mode::Label
  static DrawOver all() { return {}; }
  static DrawOver background() { return {Mode::Background, 0}; }
  static DrawOver only(uint8_t label) { return {Mode::Label, label}; }
  bool allows(uint8_t current) const {
    return mode == Mode::All || (mode == Mode::Background ? current == 0 : current == label);
  }
};

// Restriction to one slice: the voxels whose index along `axis` (0, 1 or 2) equals `index`.
struct SliceRestriction {
  int axis = 2;
  int64_t index = 0;
};

// ---- Region grow -------------------------------------------------------------------------
// Paints the voxels connected to `seed` whose intensity lies in
// [seed value - lower_tolerance, seed value + upper_tolerance] (or in [*lower, *upper] when
// given). Connectivity Face = 6 neighbours (4 in a slice), Full = 26 (8 in a slice).
// Growth stays inside `box` (when set) and, when `slice_axis` is set, inside the seed's slice
// along that axis. Growth passes through voxels whatever their label; only voxels `draw_over`
// allows are painted.
struct RegionGrowSettings {
  Size3 seed{0, 0, 0};
  double tolerance = 0;                // symmetric tolerance around the seed's intensity
  std::optional<double> lower, upper;  // absolute range; overrides `tolerance` when both set
  Connectivity connectivity = Connectivity::Face;
  std::optional<Box> box;
  std::optional<int> slice_axis;  // 0, 1 or 2: stay in the seed's slice
  int channel = 0;
  uint8_t label = 1;
  DrawOver draw_over;
  int64_t max_voxels = 0;  // > 0: stop growing after this many voxels (a leak guard)
};
LabelDelta region_grow(const Volume& image, const LabelMap& labels, const RegionGrowSettings& settings);

// ---- Threshold in a box ------------------------------------------------------------------
// Paints every voxel of `box` (optionally only one slice of it) whose intensity is in [lower, upper].
struct ThresholdSettings {
  Box box;
  double lower = 0, upper = 0;
  std::optional<SliceRestriction> slice;
  int channel = 0;
  uint8_t label = 1;
  DrawOver draw_over;
};
LabelDelta threshold_box(const Volume& image, const LabelMap& labels, const ThresholdSettings& settings);

// ---- Fill holes --------------------------------------------------------------------------
// Sets to `label` the voxels enclosed by `label` (background regions not connected to the image
// border, see imaging::fill_holes), in 3D or per 2D slice perpendicular to `axis`. With `slice`
// set, only that slice is filled (2D). Only voxels `draw_over` allows are painted; the default
// (background) keeps other labels that sit inside the hole.
enum class FillMode { Volume3D, PerSlice2D };
struct FillHolesSettings {
  uint8_t label = 1;
  FillMode mode = FillMode::PerSlice2D;
  int axis = 2;
  std::optional<int64_t> slice;  // with PerSlice2D: fill this slice only
  DrawOver draw_over = DrawOver::background();
};
LabelDelta fill_holes(const LabelMap& labels, const FillHolesSettings& settings);

// ---- Islands -----------------------------------------------------------------------------
// Removes the connected components of `label` (0 = any foreground) smaller than min_voxels,
// or, with keep_largest, all but the largest one. Removed voxels become 0.
struct IslandSettings {
  uint8_t label = 0;
  int64_t min_voxels = 1;
  bool keep_largest = false;
  Connectivity connectivity = Connectivity::Full;
};
LabelDelta remove_islands(const LabelMap& labels, const IslandSettings& settings);

// ---- Interpolation between slices --------------------------------------------------------
// Shape-based interpolation (Raya & Udupa 1990; ITK-SNAP's morphological interpolation is the same
// idea): for two slices along `axis` that hold `label`, the 2D signed distance maps (mm, in-plane
// spacing, imaging::signed_distance_mm) are blended linearly for every slice between them and
// the voxels where the blend is <= 0 become `label`. The end slices are reproduced exactly.
// With first/last unset, every gap between consecutive slices that hold `label` is filled.
// Only voxels `draw_over` allows are painted (default: background).
struct InterpolateSettings {
  uint8_t label = 1;
  int axis = 2;
  std::optional<int64_t> first, last;  // both or neither
  DrawOver draw_over = DrawOver::background();
};
LabelDelta interpolate_slices(const LabelMap& labels, const InterpolateSettings& settings);

// ---- Brush, eraser, threshold brush -----------------------------------------------------
// A stroke is a polyline of points in (possibly fractional) voxel indices; consecutive points
// are joined by stamps no further apart than half the smallest spacing. Each stamp paints the
// voxels whose centre is within radius_mm of the stamp point (physical distance, anisotropic
// spacing respected), and always the voxel nearest to the point (so radius 0 paints one voxel).
// Shape Sphere: 3D ball; Disc: only the slice through the point along `axis`.
enum class BrushShape { Sphere, Disc };
struct BrushSettings {
  std::vector<IndexIJK> points;
  double radius_mm = 1;
  BrushShape shape = BrushShape::Disc;
  int axis = 2;
  uint8_t label = 1;
  DrawOver draw_over;
};
LabelDelta brush(const LabelMap& labels, const BrushSettings& settings);
// Sets the voxels under the stroke to 0 (only those `draw_over` allows, e.g. one label).
LabelDelta erase(const LabelMap& labels, const BrushSettings& settings);
// Brush that paints only voxels whose intensity (channel `channel`) is in [lower, upper].
struct IntensityRange {
  double lower = 0, upper = 0;
  int channel = 0;
};
LabelDelta threshold_brush(const Volume& image, const LabelMap& labels, const BrushSettings& settings,
                           const IntensityRange& range);

}  // namespace tumorlab::edit
