#include "tumorlab/edit/tools.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"

namespace tumorlab::edit {
namespace {

Geometry grid(Size3 size, Vec3 spacing = {1, 1, 1}) {
  Geometry g;
  g.size = size;
  g.spacing_mm = spacing;
  return g;
}

void paint(LabelMap& l, Size3 b, Size3 e, uint8_t v = 1) {
  for (int64_t k = b[2]; k < e[2]; ++k)
    for (int64_t j = b[1]; j < e[1]; ++j)
      for (int64_t i = b[0]; i < e[0]; ++i) l.at(i, j, k) = v;
}

// int16 image, zero, with boxes set to values.
Volume image_on(const Geometry& g) {
  return Volume(g, PixelType::Int16, 1);
}
void fill(Volume& v, Size3 b, Size3 e, int16_t value) {
  int16_t* p = v.data<int16_t>();
  for (int64_t k = b[2]; k < e[2]; ++k)
    for (int64_t j = b[1]; j < e[1]; ++j)
      for (int64_t i = b[0]; i < e[0]; ++i) p[v.linear_index(i, j, k)] = value;
}

double dice(const LabelMap& a, const LabelMap& b) {
  int64_t both = 0, na = 0, nb = 0;
  for (int64_t n = 0; n < a.voxel_count(); ++n) {
    na += a.data()[n] != 0;
    nb += b.data()[n] != 0;
    both += a.data()[n] != 0 && b.data()[n] != 0;
  }
  return na + nb == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(na + nb);
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;
}

// ---- Brush ----

int64_t brush_count(const Geometry& g, BrushSettings st) {
  const LabelMap l(g);
  return applied(l, brush(l, st)).count(st.label);
}

TEST(Brush, Sphere_VoxelCountsOnIsotropicSpacing) {
  BrushSettings st;
  st.shape = BrushShape::Sphere;
  st.points = {{10, 10, 10}};
  st.radius_mm = 0;
  EXPECT_EQ(brush_count(grid({21, 21, 21}), st), 1);
  st.radius_mm = 1;
  EXPECT_EQ(brush_count(grid({21, 21, 21}), st), 7);  // centre + 6 face neighbours
  st.radius_mm = 1.5;
  EXPECT_EQ(brush_count(grid({21, 21, 21}), st), 19);  // + 12 edge neighbours (sqrt 2)
  st.radius_mm = 2;
  EXPECT_EQ(brush_count(grid({21, 21, 21}), st), 33);  // + 8 corners (sqrt 3) + 6 at distance 2
}

TEST(Brush, Sphere_RespectsAnisotropicSpacing) {
  BrushSettings st;
  st.shape = BrushShape::Sphere;
  st.points = {{10, 10, 5}};
  st.radius_mm = 2;
  // 1 x 1 x 3 mm voxels: the neighbours in k are 3 mm away, so only the in-plane disc of 13.
  EXPECT_EQ(brush_count(grid({21, 21, 11}, {1, 1, 3}), st), 13);
  st.radius_mm = 3;
  // In-plane r <= 3: 29 voxels; k +-1 at 3 mm: only the voxel straight above/below.
  EXPECT_EQ(brush_count(grid({21, 21, 11}, {1, 1, 3}), st), 31);
  // 0.5 mm in-plane: radius 1 mm covers 2 voxels each way in i and j: 13 in plane.
  st.radius_mm = 1;
  EXPECT_EQ(brush_count(grid({21, 21, 11}, {0.5, 0.5, 3}), st), 13);
}

TEST(Brush, Disc_StaysInTheSliceOfTheAxis) {
  BrushSettings st;
  st.shape = BrushShape::Disc;
  st.points = {{5, 6, 7}};
  st.radius_mm = 1;
  st.axis = 2;
  LabelMap l(grid({12, 12, 12}));
  LabelMap out = applied(l, brush(l, st));
  EXPECT_EQ(out.count(1), 5);
  EXPECT_EQ(out.at(5, 6, 7), 1);
  EXPECT_EQ(out.at(5, 6, 8), 0);
  st.axis = 0;  // sagittal disc: i fixed
  out = applied(l, brush(l, st));
  EXPECT_EQ(out.count(1), 5);
  EXPECT_EQ(out.at(5, 6, 8), 1);
  EXPECT_EQ(out.at(6, 6, 7), 0);
}

TEST(Brush, Stroke_JoinsItsPointsWithoutGaps) {
  BrushSettings st;
  st.shape = BrushShape::Disc;
  st.points = {{5, 5, 5}, {15, 5, 5}};
  st.radius_mm = 1;
  // Row j=5 from i=4 to 16 (13), rows j=4 and j=6 from i=5 to 15 (11 each).
  EXPECT_EQ(brush_count(grid({21, 11, 11}), st), 35);
}

TEST(Brush, ClipsAtTheBorderAndRespectsDrawOver) {
  LabelMap l(grid({10, 10, 10}));
  paint(l, {0, 0, 0}, {10, 10, 1}, 2);  // slice k=0 is label 2
  BrushSettings st;
  st.shape = BrushShape::Sphere;
  st.points = {{0, 0, 0}};
  st.radius_mm = 1;
  st.label = 1;
  st.draw_over = DrawOver::background();
  LabelMap out = applied(l, brush(l, st));
  // Corner voxel: centre + 3 neighbours inside; the 2 at k=0 keep label 2.
  EXPECT_EQ(out.count(1), 1);
  EXPECT_EQ(out.at(0, 0, 1), 1);
  EXPECT_EQ(out.count(2), 100);
  st.draw_over = DrawOver::all();
  out = applied(l, brush(l, st));
  EXPECT_EQ(out.count(1), 4);
  // A stroke entirely outside the grid changes nothing.
  st.points = {{-10, -10, -10}};
  EXPECT_TRUE(brush(l, st).empty());
}

TEST(Brush, Eraser_RemovesOnlyTheChosenLabel) {
  LabelMap l(grid({10, 10, 3}));
  paint(l, {0, 0, 1}, {5, 10, 2}, 1);
  paint(l, {5, 0, 1}, {10, 10, 2}, 2);
  BrushSettings st;
  st.shape = BrushShape::Disc;
  st.points = {{5, 5, 1}};
  st.radius_mm = 1;
  st.draw_over = DrawOver::only(2);
  const LabelDelta d = erase(l, st);
  EXPECT_EQ(d.name(), "Eraser");
  const LabelMap out = applied(l, d);
  // The disc (5 voxels) covers (4,5) of label 1 and four voxels of label 2.
  EXPECT_EQ(d.changed_voxels(), 4);
  EXPECT_EQ(out.at(4, 5, 1), 1);
  EXPECT_EQ(out.at(5, 5, 1), 0);
  EXPECT_EQ(d.label_change(2), -4);
}

TEST(Brush, ThresholdBrush_PaintsOnlyVoxelsInTheRange) {
  const Geometry g = grid({20, 20, 1});
  Volume img = image_on(g);
  int16_t* p = img.data<int16_t>();
  for (int64_t j = 0; j < 20; ++j)
    for (int64_t i = 0; i < 20; ++i) p[img.linear_index(i, j, 0)] = static_cast<int16_t>(i * 10);
  const LabelMap l(g);
  BrushSettings st;
  st.shape = BrushShape::Disc;
  st.points = {{10, 10, 0}};
  st.radius_mm = 3;                   // 29 voxels: i in 7..13
  IntensityRange range{100, 120, 0};  // i in 10..12
  const LabelMap out = applied(l, threshold_brush(img, l, st, range));
  // Disc columns: i=10: 7 voxels (|dj|<=3), i=11: 5 (dj^2 <= 8), i=12: 5 (dj^2 <= 5).
  EXPECT_EQ(out.count(1), 17);
  EXPECT_EQ(out.at(9, 10, 0), 0);
  EXPECT_EQ(out.at(10, 13, 0), 1);
  EXPECT_EQ(code_of([&] { threshold_brush(img, l, st, IntensityRange{5, 1, 0}); }), ErrorCode::BadArgument);
  EXPECT_EQ(code_of([&] { threshold_brush(img, l, st, IntensityRange{0, 1, 1}); }), ErrorCode::BadArgument);
}

TEST(Brush, BadSettings_AreBadArgument) {
  const LabelMap l(grid({5, 5, 5}));
  BrushSettings st;
  EXPECT_EQ(code_of([&] { brush(l, st); }), ErrorCode::BadArgument);  // no points
  st.points = {{1, 1, 1}};
  st.radius_mm = -1;
  EXPECT_EQ(code_of([&] { brush(l, st); }), ErrorCode::BadArgument);
  st.radius_mm = 1;
  st.axis = 3;
  EXPECT_EQ(code_of([&] { brush(l, st); }), ErrorCode::BadArgument);
  st.axis = 2;
  st.points = {{NAN, 1, 1}};
  EXPECT_EQ(code_of([&] { brush(l, st); }), ErrorCode::BadArgument);
}

// ---- Region grow ----

TEST(RegionGrow, ConnectivityDecidesWhetherDiagonalBlocksJoin) {
  const Geometry g = grid({12, 12, 12});
  Volume img = image_on(g);
  fill(img, {1, 1, 1}, {4, 4, 4}, 100);  // 27 voxels
  fill(img, {4, 4, 4}, {6, 6, 6}, 105);  // 8 voxels, touching the first only at a corner
  const LabelMap l(g);
  RegionGrowSettings st;
  st.seed = {2, 2, 2};
  st.tolerance = 10;
  st.connectivity = Connectivity::Face;
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 27);
  st.connectivity = Connectivity::Full;
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 35);
  st.tolerance = 2;  // 105 is out of range
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 27);
  st.tolerance = 10;
  st.lower = 103;  // absolute range that excludes the seed: nothing
  st.upper = 110;
  EXPECT_TRUE(region_grow(img, l, st).empty());
}

TEST(RegionGrow, SliceAndBoxLimitTheGrowth) {
  const Geometry g = grid({12, 12, 12});
  Volume img = image_on(g);
  fill(img, {1, 1, 1}, {6, 6, 6}, 50);  // 125 voxels
  const LabelMap l(g);
  RegionGrowSettings st;
  st.seed = {3, 3, 3};
  st.tolerance = 0;
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 125);
  st.slice_axis = 2;
  LabelMap out = applied(l, region_grow(img, l, st));
  EXPECT_EQ(out.count(1), 25);
  EXPECT_EQ(out.at(3, 3, 4), 0);
  st.slice_axis = 1;
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 25);
  st.slice_axis.reset();
  st.box = Box{{2, 2, 2}, {5, 5, 5}};
  EXPECT_EQ(applied(l, region_grow(img, l, st)).count(1), 27);
  st.seed = {8, 8, 8};  // outside the box
  EXPECT_EQ(code_of([&] { region_grow(img, l, st); }), ErrorCode::BadArgument);
  st.box.reset();
  st.seed = {12, 0, 0};
  EXPECT_EQ(code_of([&] { region_grow(img, l, st); }), ErrorCode::BadArgument);
}

TEST(RegionGrow, PaintsOnlyWhatDrawOverAllowsButGrowsThroughEverything) {
  const Geometry g = grid({10, 3, 1});
  Volume img = image_on(g);
  fill(img, {0, 1, 0}, {10, 2, 1}, 20);  // a line of 10 voxels at j = 1
  LabelMap l(g);
  l.at(4, 1, 0) = 3;
  l.at(5, 1, 0) = 3;
  RegionGrowSettings st;
  st.seed = {0, 1, 0};
  st.label = 1;
  st.draw_over = DrawOver::background();
  const LabelMap out = applied(l, region_grow(img, l, st));
  EXPECT_EQ(out.count(1), 8);
  EXPECT_EQ(out.count(3), 2);
  EXPECT_EQ(out.at(9, 1, 0), 1);
  // Multi-channel image: the grow reads the chosen channel.
  Volume two = Volume::stack_channels({image_on(g), img});
  st.channel = 1;
  EXPECT_EQ(applied(l, region_grow(two, l, st)).count(1), 8);
  st.channel = 2;
  EXPECT_EQ(code_of([&] { region_grow(two, l, st); }), ErrorCode::BadArgument);
  const Volume other(grid({10, 3, 2}), PixelType::Int16);
  st.channel = 0;
  EXPECT_EQ(code_of([&] { region_grow(other, l, st); }), ErrorCode::GeometryMismatch);
}

// ---- Threshold in a box ----

TEST(Threshold, PaintsInsideTheBoxAndTheSlice) {
  const Geometry g = grid({10, 10, 10});
  Volume img = image_on(g);
  fill(img, {0, 0, 0}, {10, 10, 10}, 10);
  fill(img, {2, 2, 2}, {8, 8, 8}, 200);  // 216 bright voxels
  const LabelMap l(g);
  ThresholdSettings st;
  st.box = Box{{0, 0, 0}, {5, 10, 10}};  // the bright part inside: 3 x 6 x 6
  st.lower = 150;
  st.upper = 250;
  st.label = 2;
  EXPECT_EQ(applied(l, threshold_box(img, l, st)).count(2), 108);
  st.slice = SliceRestriction{2, 4};
  EXPECT_EQ(applied(l, threshold_box(img, l, st)).count(2), 18);
  st.slice = SliceRestriction{2, 9};  // no bright voxel there
  EXPECT_TRUE(threshold_box(img, l, st).empty());
  st.slice.reset();
  st.box = Box{{0, 0, 0}, {11, 10, 10}};
  EXPECT_EQ(code_of([&] { threshold_box(img, l, st); }), ErrorCode::BadArgument);
  st.box = Box{{3, 0, 0}, {3, 10, 10}};
  EXPECT_EQ(code_of([&] { threshold_box(img, l, st); }), ErrorCode::BadArgument);
}

// ---- Fill holes ----

TEST(FillHoles, SliceWiseFillsATubeThatThe3DFillLeavesOpen) {
  LabelMap l(grid({9, 9, 7}));
  // A square tube along k (k = 1..5), 5x5 outline around a 3x3 hole: open at both ends.
  paint(l, {2, 2, 1}, {7, 7, 6}, 1);
  paint(l, {3, 3, 1}, {6, 6, 6}, 0);
  FillHolesSettings st;
  st.mode = FillMode::PerSlice2D;
  EXPECT_EQ(fill_holes(l, st).changed_voxels(), 45);  // 9 per slice, 5 slices
  st.slice = 3;
  const LabelDelta one = fill_holes(l, st);
  EXPECT_EQ(one.changed_voxels(), 9);
  EXPECT_EQ(one.box(), (Box{{3, 3, 3}, {6, 6, 4}}));
  st.slice.reset();
  st.mode = FillMode::Volume3D;
  EXPECT_TRUE(fill_holes(l, st).empty());
  // Close the ends: now the cavity (27 voxels at k = 2..4 after capping k = 1 and 5) is a 3D hole.
  paint(l, {2, 2, 1}, {7, 7, 2}, 1);
  paint(l, {2, 2, 5}, {7, 7, 6}, 1);
  EXPECT_EQ(fill_holes(l, st).changed_voxels(), 27);
}

TEST(FillHoles, KeepsOtherLabelsInsideTheHoleByDefault) {
  LabelMap l(grid({7, 7, 1}));
  paint(l, {1, 1, 0}, {6, 6, 1}, 1);
  paint(l, {2, 2, 0}, {5, 5, 1}, 0);
  l.at(3, 3, 0) = 2;
  FillHolesSettings st;
  LabelMap out = applied(l, fill_holes(l, st));
  EXPECT_EQ(out.count(1), 24);
  EXPECT_EQ(out.at(3, 3, 0), 2);
  st.draw_over = DrawOver::all();
  out = applied(l, fill_holes(l, st));
  EXPECT_EQ(out.count(1), 25);
}

// ---- Islands ----

TEST(Islands, RemovesSmallComponentsOrKeepsTheLargest) {
  LabelMap l(grid({20, 20, 20}));
  paint(l, {1, 1, 1}, {4, 4, 4});        // 27
  paint(l, {10, 10, 10}, {12, 12, 12});  // 8
  l.at(18, 18, 18) = 1;                  // 1
  IslandSettings st;
  st.min_voxels = 8;
  LabelDelta d = remove_islands(l, st);
  EXPECT_EQ(d.changed_voxels(), 1);
  EXPECT_EQ(applied(l, d).count(1), 35);
  st.min_voxels = 9;
  EXPECT_EQ(remove_islands(l, st).changed_voxels(), 9);
  st.keep_largest = true;
  d = remove_islands(l, st);
  EXPECT_EQ(d.name(), "Keep largest");
  EXPECT_EQ(applied(l, d).count(1), 27);
}

// ---- Interpolation ----

TEST(Interpolate, EqualShapesAreCopiedIntoTheGap) {
  LabelMap l(grid({12, 12, 9}));
  paint(l, {3, 4, 0}, {8, 7, 1});  // 5x3 rectangle on slice 0
  paint(l, {3, 4, 4}, {8, 7, 5});  // the same on slice 4
  InterpolateSettings st;
  st.first = 0;
  st.last = 4;
  const LabelMap out = applied(l, interpolate_slices(l, st));
  for (int64_t k = 0; k <= 4; ++k) {
    int64_t n = 0;
    for (int64_t j = 0; j < 12; ++j)
      for (int64_t i = 0; i < 12; ++i) {
        n += out.at(i, j, k);
        if (out.at(i, j, k)) {
          EXPECT_TRUE(i >= 3 && i < 8 && j >= 4 && j < 7);
        }
      }
    EXPECT_EQ(n, 15) << "slice " << k;
  }
  EXPECT_EQ(out.count(1), 75);
}

TEST(Interpolate, SizeChangesLinearly) {
  LabelMap l(grid({21, 21, 5}));
  paint(l, {8, 8, 0}, {13, 13, 1});  // half width 2 around (10, 10)
  paint(l, {4, 4, 4}, {17, 17, 5});  // half width 6
  InterpolateSettings st;            // automatic: the one gap 0..4
  const LabelMap out = applied(l, interpolate_slices(l, st));
  // Along the centre row the signed distances are exact: |x| - 2 and |x| - 6, so slice k
  // reaches half width 2 + k.
  for (int64_t k = 1; k <= 3; ++k) {
    for (int64_t i = 0; i < 21; ++i)
      EXPECT_EQ(out.at(i, 10, k), std::abs(i - 10) <= 2 + k ? 1 : 0) << "i " << i << " k " << k;
  }
  // Monotone growth of the area.
  int64_t prev = 0;
  for (int64_t k = 0; k <= 4; ++k) {
    int64_t n = 0;
    for (int64_t j = 0; j < 21; ++j)
      for (int64_t i = 0; i < 21; ++i) n += out.at(i, j, k);
    EXPECT_GT(n, prev);
    prev = n;
  }
}

TEST(Interpolate, FillsEveryGapAlongTheChosenAxisAndChecksItsSlices) {
  LabelMap l(grid({9, 6, 6}));
  for (int64_t i : {0, 4, 8}) paint(l, {i, 1, 1}, {i + 1, 4, 4});  // 3x3 squares on sagittal slices
  InterpolateSettings st;
  st.axis = 0;
  const LabelDelta d = interpolate_slices(l, st);
  EXPECT_EQ(d.changed_voxels(), 6 * 9);
  EXPECT_EQ(applied(l, d).count(1), 81);
  st.first = 0;
  st.last = 3;  // slice 3 holds nothing
  EXPECT_EQ(code_of([&] { interpolate_slices(l, st); }), ErrorCode::BadArgument);
  st.first = 4;
  st.last = 4;  // one slice: nothing to do
  EXPECT_TRUE(interpolate_slices(l, st).empty());
}

// ---- A real case ----

TEST(EditRealCase, InterpolationRestoresRemovedLesionSlicesAndDeltasUndo) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto root = testing::shared_data_dir() / "Dataset002_LGGFLAIR";
  const auto label_path = root / "labelsTr" / "TCGA_CS_4941_19960909.nii.gz";
  if (!std::filesystem::exists(label_path)) GTEST_SKIP() << "case not found: " << label_path;
  const LabelMap truth = LabelMap::from_volume(io::read_image(label_path), label_path.string());
  const Volume flair = io::read_image(root / "imagesTr" / "TCGA_CS_4941_19960909_0000.nii.gz");
  const Size3 s = truth.geometry().size;
  std::vector<int64_t> lesion_slices;
  for (int64_t k = 0; k < s[2]; ++k) {
    int64_t n = 0;
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i) n += truth.at(i, j, k) != 0;
    if (n > 0) lesion_slices.push_back(k);
  }
  ASSERT_GE(lesion_slices.size(), 5u);
  // Keep every other lesion slice, as an annotator contouring sparsely would.
  const int64_t first = lesion_slices.front(), last = lesion_slices.back();
  LabelMap sparse = truth;
  for (int64_t k = first; k <= last; ++k)
    if ((k - first) % 2 != 0 && k != last)
      for (int64_t j = 0; j < s[1]; ++j)
        for (int64_t i = 0; i < s[0]; ++i) sparse.at(i, j, k) = 0;
  const LabelDelta d = interpolate_slices(sparse, InterpolateSettings{});
  const LabelMap restored = applied(sparse, d);
  const double dice_sparse = dice(sparse, truth);
  const double dice_restored = dice(restored, truth);
  std::cout << "[ measured ] LGG " << lesion_slices.size() << " lesion slices, every 2nd kept: Dice " << dice_sparse
            << " -> " << dice_restored << " after interpolation; delta " << d.serialize().size() << " bytes for "
            << d.changed_voxels() << " voxels\n";
  EXPECT_GT(dice_restored, dice_sparse + 0.1);
  EXPECT_GT(dice_restored, 0.75);
  // The delta is much smaller than the label map and undoes exactly.
  EXPECT_LT(d.serialize().size(), static_cast<std::size_t>(truth.voxel_count()) / 20);
  LabelMap work = restored;
  d.revert(work);
  EXPECT_EQ(work.voxels(), sparse.voxels());
  // Region grow from the brightest lesion voxel on FLAIR stays mostly in the lesion.
  ASSERT_EQ(flair.geometry().size, s);
  int64_t best = -1;
  double best_value = -1;
  for (int64_t n = 0; n < truth.voxel_count(); ++n)
    if (truth.data()[n] && flair.value(n) > best_value) {
      best_value = flair.value(n);
      best = n;
    }
  RegionGrowSettings st;
  st.seed = {best % s[0], (best / s[0]) % s[1], best / (s[0] * s[1])};
  st.tolerance = 25;
  st.slice_axis = 2;
  const LabelMap empty(truth.geometry());
  const LabelMap grown = applied(empty, region_grow(flair, empty, st));
  int64_t in_lesion = 0;
  for (int64_t n = 0; n < grown.voxel_count(); ++n) in_lesion += grown.data()[n] && truth.data()[n];
  std::cout << "[ measured ] region grow (tolerance 25, seed slice): " << grown.count_nonzero() << " voxels, "
            << in_lesion << " in the lesion\n";
  EXPECT_GT(grown.count_nonzero(), 0);
}

}  // namespace
}  // namespace tumorlab::edit
