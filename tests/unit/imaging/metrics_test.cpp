#include "tumorlab/imaging/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::brute_directed;
using test::brute_surface;
using test::grid;
using test::numpy_percentile;
using test::paint_box;
using test::paint_ellipsoid;

TEST(Metrics, Boxes_ExactOverlapScores) {
  // 2D 10x10 grid, voxel 0.5 x 2 x 3 mm = 3 mm^3 = 0.003 mL.
  const Geometry g = grid({10, 10, 1}, {0.5, 2, 3});
  LabelMap pred(g), ref(g);
  paint_box(pred, {0, 0, 0}, {4, 5, 1});  // 20 voxels
  paint_box(ref, {2, 0, 0}, {8, 5, 1});   // 30 voxels, overlap x in [2,4) -> 10
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.pred_voxels, 20);
  EXPECT_EQ(m.ref_voxels, 30);
  EXPECT_DOUBLE_EQ(m.dice, 0.4);            // 2*10 / 50
  EXPECT_DOUBLE_EQ(m.iou, 0.25);            // 10 / 40
  EXPECT_DOUBLE_EQ(m.precision, 0.5);       // 10 / 20
  EXPECT_DOUBLE_EQ(m.recall, 1.0 / 3.0);    // 10 / 30
  EXPECT_NEAR(m.pred_volume_ml, 0.06, 1e-12);
  EXPECT_NEAR(m.ref_volume_ml, 0.09, 1e-12);
  EXPECT_NEAR(m.volume_diff_ml, -0.03, 1e-12);
  EXPECT_EQ(m.tp_lesions, 1);
  EXPECT_EQ(m.fp_lesions, 0);
  EXPECT_EQ(m.fn_lesions, 0);
  EXPECT_DOUBLE_EQ(m.lesion_f1, 1.0);
}

TEST(Metrics, LabelOption_SelectsOneLabel) {
  const Geometry g = grid({6, 6, 6});
  LabelMap pred(g), ref(g);
  paint_box(pred, {0, 0, 0}, {2, 2, 2}, 1);
  paint_box(pred, {3, 3, 3}, {5, 5, 5}, 2);  // label 2: 8 voxels
  paint_box(ref, {3, 3, 3}, {5, 5, 4}, 2);   // label 2: 4 voxels, all inside pred's
  paint_box(ref, {0, 0, 0}, {1, 1, 1}, 1);
  MetricOptions o;
  o.label = 2;
  const SegmentationMetrics m = compute_metrics(pred, ref, o);
  EXPECT_EQ(m.pred_voxels, 8);
  EXPECT_EQ(m.ref_voxels, 4);
  EXPECT_DOUBLE_EQ(m.dice, 8.0 / 12.0);
  EXPECT_DOUBLE_EQ(m.precision, 0.5);
  EXPECT_DOUBLE_EQ(m.recall, 1.0);
}

// Pred: one voxel; ref: two voxels 3 and 5 voxels away along one axis.
// pred->ref: [3s]; ref->pred: [3s, 5s]; p95 of [3s, 5s] = 3s + 0.95 * 2s (numpy linear).
TEST(Metrics, HandExample_PercentileInterpolation2D) {
  const Geometry g = grid({8, 3, 1});
  LabelMap pred(g), ref(g);
  pred.at(0, 1, 0) = 1;
  ref.at(3, 1, 0) = 1;
  ref.at(5, 1, 0) = 1;
  EXPECT_DOUBLE_EQ(hausdorff95_mm(pred, ref), 4.9);
  MetricOptions o;
  o.surface_tolerance_mm = 3.0;
  SegmentationMetrics m = compute_metrics(pred, ref, o);
  EXPECT_DOUBLE_EQ(m.hd95_mm, 4.9);
  EXPECT_DOUBLE_EQ(m.assd_mm, 11.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.surface_dice, 2.0 / 3.0);  // 3 <= 3 twice, 5 > 3
  o.surface_tolerance_mm = 2.99;
  EXPECT_DOUBLE_EQ(compute_metrics(pred, ref, o).surface_dice, 0.0);
  o.surface_tolerance_mm = 5.0;
  EXPECT_DOUBLE_EQ(compute_metrics(pred, ref, o).surface_dice, 1.0);
  EXPECT_DOUBLE_EQ(m.dice, 0.0);
  EXPECT_EQ(m.tp_lesions, 0);
  EXPECT_EQ(m.fp_lesions, 1);
  EXPECT_EQ(m.fn_lesions, 2);
  EXPECT_DOUBLE_EQ(m.lesion_f1, 0.0);
}

TEST(Metrics, HandExample_AnisotropicSpacingAlongK) {
  const Geometry g = grid({3, 3, 9}, {0.8, 0.8, 2.5});
  LabelMap pred(g), ref(g);
  pred.at(1, 1, 0) = 1;
  ref.at(1, 1, 3) = 1;
  ref.at(1, 1, 5) = 1;
  // ref->pred distances 7.5 and 12.5 mm: p95 = 7.5 + 0.95 * 5 = 12.25.
  EXPECT_NEAR(hausdorff95_mm(pred, ref), 12.25, 1e-5);
  const SurfaceDistances d = surface_distances_mm(pred, ref);
  ASSERT_EQ(d.pred_to_ref_mm.size(), 1u);
  ASSERT_EQ(d.ref_to_pred_mm.size(), 2u);
  EXPECT_NEAR(d.pred_to_ref_mm[0], 7.5, 1e-5);
  EXPECT_NEAR(d.ref_to_pred_mm[0], 7.5, 1e-5);
  EXPECT_NEAR(d.ref_to_pred_mm[1], 12.5, 1e-5);
}

TEST(Metrics, IdenticalMasks_ZeroDistancesPerfectScores) {
  const Geometry g = grid({12, 12, 12}, {0.7, 1.1, 2.0});
  LabelMap a(g);
  paint_ellipsoid(a, {6, 6, 6}, {4, 3, 2.5});
  const SegmentationMetrics m = compute_metrics(a, a);
  EXPECT_DOUBLE_EQ(m.dice, 1.0);
  EXPECT_DOUBLE_EQ(m.hd95_mm, 0.0);
  EXPECT_DOUBLE_EQ(m.assd_mm, 0.0);
  EXPECT_DOUBLE_EQ(m.surface_dice, 1.0);
}

// Cubes shifted by 2 voxels along i with anisotropic spacing: compared with brute force.
TEST(Metrics, ShiftedCubes_MatchBruteForceSurfaceDistances) {
  const Vec3 sp{0.7, 1.3, 2.5};
  const Geometry g = grid({20, 20, 20}, sp);
  LabelMap pred(g), ref(g);
  paint_box(pred, {5, 5, 5}, {10, 10, 10});
  paint_box(ref, {7, 5, 5}, {12, 10, 10});
  const auto ps = brute_surface(pred), rs = brute_surface(ref);
  ASSERT_EQ(ps.size(), 98u);  // 5^3 - 3^3
  const auto p2r = brute_directed(ps, rs, sp), r2p = brute_directed(rs, ps, sp);
  const SurfaceDistances d = surface_distances_mm(pred, ref);
  ASSERT_EQ(d.pred_to_ref_mm.size(), p2r.size());
  ASSERT_EQ(d.ref_to_pred_mm.size(), r2p.size());
  for (std::size_t i = 0; i < p2r.size(); ++i) EXPECT_NEAR(d.pred_to_ref_mm[i], p2r[i], 1e-5) << i;
  for (std::size_t i = 0; i < r2p.size(); ++i) EXPECT_NEAR(d.ref_to_pred_mm[i], r2p[i], 1e-5) << i;
  // The largest distance is the 2-voxel shift: 1.4 mm.
  EXPECT_NEAR(*std::max_element(p2r.begin(), p2r.end()), 1.4, 1e-12);
  const double expected_hd95 = std::max(numpy_percentile(p2r, 95), numpy_percentile(r2p, 95));
  EXPECT_NEAR(hausdorff95_mm(pred, ref), expected_hd95, 1e-5);

  // Surface Dice: a tolerance including the shift gives 1; one below the smallest non-zero
  // distance (0.7 mm) counts only the shared surface voxels.
  MetricOptions o;
  o.surface_tolerance_mm = 1.45;
  SegmentationMetrics m = compute_metrics(pred, ref, o);
  EXPECT_DOUBLE_EQ(m.surface_dice, 1.0);
  o.surface_tolerance_mm = 0.5;
  m = compute_metrics(pred, ref, o);
  int64_t zeros = 0;
  for (double x : p2r) zeros += x == 0;
  for (double x : r2p) zeros += x == 0;
  EXPECT_DOUBLE_EQ(m.surface_dice, static_cast<double>(zeros) / (p2r.size() + r2p.size()));
  EXPECT_EQ(zeros, 2 * 3 * 16);  // shared y/z faces at x in [7,10): 3 slices x 16 ring voxels, both ways
  double sum = 0;
  for (double x : p2r) sum += x;
  for (double x : r2p) sum += x;
  EXPECT_NEAR(m.assd_mm, sum / (p2r.size() + r2p.size()), 1e-6);
  EXPECT_DOUBLE_EQ(m.dice, 2.0 * 75 / 250);  // overlap 3x5x5
}

TEST(Metrics, OffsetEllipsoids_MatchBruteForceHd95) {
  const Vec3 sp{0.9, 1.4, 3.0};
  const Geometry g = grid({24, 20, 12}, sp, {-3, 4, 7});
  LabelMap pred(g), ref(g);
  paint_ellipsoid(pred, {10, 9, 5}, {6, 5, 3});
  paint_ellipsoid(ref, {12, 10, 6}, {5, 6, 3.5});
  ref.at(20, 2, 1) = 1;  // a far-away speck on the reference
  const auto ps = brute_surface(pred), rs = brute_surface(ref);
  const auto p2r = brute_directed(ps, rs, sp), r2p = brute_directed(rs, ps, sp);
  const double expected = std::max(numpy_percentile(p2r, 95), numpy_percentile(r2p, 95));
  EXPECT_NEAR(hausdorff95_mm(pred, ref), expected, 1e-5);
  const SurfaceDistances d = surface_distances_mm(pred, ref);
  ASSERT_EQ(d.ref_to_pred_mm.size(), r2p.size());
  for (std::size_t i = 0; i < r2p.size(); ++i) EXPECT_NEAR(d.ref_to_pred_mm[i], r2p[i], 1e-5) << i;
}

TEST(Metrics, MaskTouchingImageBorder_BorderCountsAsSurface) {
  const Geometry g = grid({4, 4, 4});
  LabelMap pred(g), ref(g);
  paint_box(pred, {0, 0, 0}, {4, 4, 4});  // whole image: every border voxel is surface
  paint_box(ref, {0, 0, 0}, {4, 4, 3});
  const auto ps = brute_surface(pred), rs = brute_surface(ref);
  EXPECT_EQ(ps.size(), 56u);  // 64 - 8
  const SurfaceDistances d = surface_distances_mm(pred, ref);
  const auto p2r = brute_directed(ps, rs, {1, 1, 1});
  ASSERT_EQ(d.pred_to_ref_mm.size(), p2r.size());
  for (std::size_t i = 0; i < p2r.size(); ++i) EXPECT_NEAR(d.pred_to_ref_mm[i], p2r[i], 1e-6);
}

// Three reference lesions, two predicted components, one of which is a false positive.
TEST(Metrics, Lesions_ThreeRefTwoPredOneFalsePositive) {
  const Geometry g = grid({20, 20, 10}, {1, 1, 2});  // voxel 0.002 mL
  LabelMap pred(g), ref(g);
  paint_box(ref, {2, 2, 2}, {4, 4, 4});  // lesion A: 8 voxels
  ref.at(10, 10, 5) = 1;                 // lesion B: 1 voxel
  ref.at(15, 2, 2) = 1;                  // lesion C: 3 voxels on a diagonal (26-connected)
  ref.at(16, 3, 3) = 1;
  ref.at(17, 4, 4) = 1;
  paint_box(pred, {3, 3, 3}, {6, 4, 4});   // touches A (1 voxel overlap): 3 voxels
  paint_box(pred, {2, 15, 7}, {7, 16, 8});  // far from everything: 5 voxels -> FP
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.ref_lesions, 3);
  EXPECT_EQ(m.pred_lesions, 2);
  EXPECT_EQ(m.tp_lesions, 1);
  EXPECT_EQ(m.fp_lesions, 1);
  EXPECT_EQ(m.fn_lesions, 2);
  EXPECT_DOUBLE_EQ(m.lesion_f1, 2.0 / 5.0);  // 2*1 / (2*1 + 1 + 2)
  EXPECT_NEAR(m.fp_volume_ml, 5 * 0.002, 1e-12);
  EXPECT_NEAR(m.fn_volume_ml, 4 * 0.002, 1e-12);
}

TEST(Metrics, Lesions_DiagonalComponentsAreOneLesionIn2D) {
  const Geometry g = grid({6, 6, 1});
  LabelMap pred(g), ref(g);
  ref.at(1, 1, 0) = ref.at(2, 2, 0) = 1;  // 8-connected: one lesion
  pred.at(2, 2, 0) = 1;
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.ref_lesions, 1);
  EXPECT_EQ(m.tp_lesions, 1);
  EXPECT_EQ(m.fn_lesions, 0);
  EXPECT_DOUBLE_EQ(m.lesion_f1, 1.0);
}

TEST(Metrics, BothEmpty_PerfectScoresZeroDistances) {
  const Geometry g = grid({5, 5, 5});
  LabelMap pred(g), ref(g);
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.dice, 1.0);
  EXPECT_EQ(m.iou, 1.0);
  EXPECT_EQ(m.precision, 1.0);
  EXPECT_EQ(m.recall, 1.0);
  EXPECT_EQ(m.surface_dice, 1.0);
  EXPECT_EQ(m.lesion_f1, 1.0);
  EXPECT_EQ(m.hd95_mm, 0.0);
  EXPECT_EQ(m.assd_mm, 0.0);
  EXPECT_EQ(m.tp_lesions + m.fp_lesions + m.fn_lesions, 0);
  EXPECT_EQ(m.fp_volume_ml, 0.0);
  EXPECT_EQ(m.fn_volume_ml, 0.0);
  EXPECT_EQ(hausdorff95_mm(pred, ref), 0.0);
  EXPECT_TRUE(surface_distances_mm(pred, ref).pred_to_ref_mm.empty());
}

TEST(Metrics, RefEmptyPredNot_Conventions) {
  const Geometry g = grid({5, 5, 5}, {1, 1, 1});
  LabelMap pred(g), ref(g);
  paint_box(pred, {1, 1, 1}, {3, 3, 3});
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.dice, 0.0);
  EXPECT_EQ(m.iou, 0.0);
  EXPECT_EQ(m.precision, 0.0);
  EXPECT_EQ(m.recall, 1.0);
  EXPECT_EQ(m.surface_dice, 0.0);
  EXPECT_EQ(m.lesion_f1, 0.0);
  EXPECT_TRUE(std::isnan(m.hd95_mm));
  EXPECT_TRUE(std::isnan(m.assd_mm));
  EXPECT_EQ(m.fp_lesions, 1);
  EXPECT_NEAR(m.fp_volume_ml, 0.008, 1e-12);
  EXPECT_EQ(m.fn_volume_ml, 0.0);
  EXPECT_TRUE(std::isnan(hausdorff95_mm(pred, ref)));
}

TEST(Metrics, PredEmptyRefNot_Conventions) {
  const Geometry g = grid({5, 5, 5});
  LabelMap pred(g), ref(g);
  paint_box(ref, {1, 1, 1}, {3, 3, 3});
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_EQ(m.dice, 0.0);
  EXPECT_EQ(m.iou, 0.0);
  EXPECT_EQ(m.recall, 0.0);
  EXPECT_EQ(m.precision, 1.0);
  EXPECT_EQ(m.surface_dice, 0.0);
  EXPECT_EQ(m.lesion_f1, 0.0);
  EXPECT_TRUE(std::isnan(m.hd95_mm));
  EXPECT_TRUE(std::isnan(m.assd_mm));
  EXPECT_EQ(m.fn_lesions, 1);
  EXPECT_NEAR(m.fn_volume_ml, 0.008, 1e-12);
  EXPECT_TRUE(std::isnan(hausdorff95_mm(pred, ref)));
}

TEST(Metrics, GridMismatch_Throws) {
  LabelMap a(grid({5, 5, 5})), b(grid({5, 5, 6})), c(grid({5, 5, 5}, {1, 1, 2}));
  for (const LabelMap* other : {&b, &c}) {
    try {
      compute_metrics(a, *other);
      FAIL() << "expected GeometryMismatch";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::GeometryMismatch);
    }
    EXPECT_THROW(hausdorff95_mm(a, *other), Error);
    EXPECT_THROW(surface_distances_mm(*other, a), Error);
  }
}

// A realistic case: 256x256x100 grid, lobulated tumour, prediction shifted and reshaped plus a
// far false positive. (Its speed is measured in bench/io_bench, not asserted here.)
TEST(Metrics, Hd95_LargeVolume_AgreesWithComputeMetricsAndCountsFarFalsePositive) {
  const Geometry g = grid({256, 256, 100}, {0.8, 0.8, 2.0});
  LabelMap pred(g), ref(g);
  paint_ellipsoid(ref, {120, 130, 50}, {28, 22, 12});
  paint_ellipsoid(ref, {145, 120, 55}, {12, 14, 8});
  paint_ellipsoid(pred, {122, 128, 51}, {26, 24, 11});
  paint_ellipsoid(pred, {150, 122, 54}, {10, 12, 7});
  paint_ellipsoid(pred, {60, 60, 20}, {3, 3, 2});  // a false positive far away
  const double hd95 = hausdorff95_mm(pred, ref);
  const SegmentationMetrics m = compute_metrics(pred, ref);
  EXPECT_GT(hd95, 0.0);
  EXPECT_DOUBLE_EQ(m.hd95_mm, hd95);
  EXPECT_EQ(m.fp_lesions, 1);
  EXPECT_EQ(m.tp_lesions, 1);
  EXPECT_GT(m.dice, 0.7);
}

}  // namespace
}  // namespace tumorlab::imaging
