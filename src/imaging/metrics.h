#pragma once
// Segmentation metrics: the numbers tumorlab is judged by. Definitions (also in
// docs/metrics.md):
// - Binary masks: a voxel is foreground when its label != 0 (or == MetricOptions::label).
// - Dice = 2|P∩R| / (|P|+|R|); IoU = |P∩R| / |P∪R|; precision = |P∩R|/|P|; recall = |P∩R|/|R|.
// - Volumes in mL use the voxel spacing; volume_diff_ml = pred - ref (signed).
// - Surfaces are the foreground voxels with at least one 6-neighbour in the background
//   (outside the image counts as background). On 2D images (size[2] == 1) only the 4 in-plane
//   neighbours count (otherwise every voxel would touch the "outside" above and below).
//   Distances are between voxel centres, in mm (Euclidean, using the spacing); the distance from
//   a surface voxel to the other surface is the distance to its nearest voxel.
// - HD95 = max(p95 of distances from pred surface to ref surface, p95 ref -> pred), as in MONAI.
//   p95 interpolates linearly between order statistics, like numpy.percentile's default: with the
//   n distances sorted, position 0.95 * (n - 1).
// - ASSD = mean of all surface distances in both directions.
// - Surface Dice at tolerance t mm (Nikolov et al. 2018, counted in voxels as MONAI's
//   compute_surface_dice without sub-voxels; "within" means distance <= t) =
//   (#pred surface voxels within t of ref surface +
//   #ref surface voxels within t of pred surface) / (#pred surface + #ref surface).
// - Lesions are connected components (26-connectivity in 3D, 8 in 2D). A reference lesion is
//   detected (TP) when any of its voxels is predicted; a predicted component that touches no
//   reference voxel is a false positive; lesion F1 = 2TP / (2TP + FP + FN).
// - autoPET: fp_volume_ml = volume of predicted components that touch no reference voxel;
//   fn_volume_ml = volume of reference components that touch no predicted voxel.
// Empty cases:
// - both empty: dice = iou = precision = recall = surface_dice = lesion_f1 = 1, distances 0.
// - ref empty, pred not: dice = iou = precision = 0, recall = 1 (nothing to find),
//   surface_dice = 0, lesion_f1 = 0, hd95 and assd undefined (NaN).
// - pred empty, ref not: dice = iou = recall = 0, precision = 1 (nothing wrongly marked),
//   surface_dice = 0, lesion_f1 = 0, hd95 and assd undefined (NaN).
// Undefined values are NaN here, "null" in JSON, empty in CSV, and left out of means.

#include <cstdint>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging {

struct MetricOptions {
  uint8_t label = 0;                 // 0: any non-zero label is foreground
  double surface_tolerance_mm = 1.0; // for surface Dice
};

struct SegmentationMetrics {
  double dice = 0, iou = 0, precision = 0, recall = 0;
  double pred_volume_ml = 0, ref_volume_ml = 0, volume_diff_ml = 0;
  double hd95_mm = 0, assd_mm = 0, surface_dice = 0;
  int64_t tp_lesions = 0, fp_lesions = 0, fn_lesions = 0;
  double lesion_f1 = 0;
  double fp_volume_ml = 0, fn_volume_ml = 0;
  int64_t pred_voxels = 0, ref_voxels = 0;
  int64_t pred_lesions = 0, ref_lesions = 0;  // connected components of pred and of ref
};

// Throws Error(GeometryMismatch) when pred and ref are not on the same grid.
SegmentationMetrics compute_metrics(const LabelMap& pred, const LabelMap& ref, const MetricOptions& options = {});

// HD95 alone (mm), as in compute_metrics; NaN when exactly one mask is empty, 0 when both are.
// Throws Error(GeometryMismatch) when pred and ref are not on the same grid.
double hausdorff95_mm(const LabelMap& pred, const LabelMap& ref, uint8_t label = 0);

// The directed surface distances behind HD95, ASSD and surface Dice: one entry per pred surface
// voxel (distance to the ref surface) and one per ref surface voxel (to the pred surface), in scan
// order. Both empty when either mask is empty.
// Throws Error(GeometryMismatch) when pred and ref are not on the same grid.
struct SurfaceDistances {
  std::vector<double> pred_to_ref_mm;
  std::vector<double> ref_to_pred_mm;
};
SurfaceDistances surface_distances_mm(const LabelMap& pred, const LabelMap& ref, uint8_t label = 0);

}  // namespace tumorlab::imaging
