#include "tumorlab/imaging/morphology.h"

#include <gtest/gtest.h>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::grid;
using test::paint_box;

TEST(Morphology, DilateSingleVoxelRadius1_SevenVoxelBall) {
  LabelMap l(grid({5, 5, 5}));
  l.at(2, 2, 2) = 4;
  const LabelMap d = dilate(l, uniform_radius(l.geometry(), 1));
  EXPECT_EQ(d.count_nonzero(), 7);
  EXPECT_EQ(d.max_label(), 1);  // binary output
  for (auto [i, j, k] : {std::array<int, 3>{2, 2, 2}, {1, 2, 2}, {3, 2, 2}, {2, 1, 2}, {2, 3, 2}, {2, 2, 1}, {2, 2, 3}})
    EXPECT_EQ(d.at(i, j, k), 1);
}

TEST(Morphology, DilateSingleVoxel2D_FiveVoxelCross) {
  LabelMap l(grid({5, 5, 1}));
  l.at(2, 2, 0) = 1;
  EXPECT_EQ(uniform_radius(l.geometry(), 1), (Size3{1, 1, 0}));
  EXPECT_EQ(dilate(l, Size3{1, 1, 1}).count_nonzero(), 5);
}

TEST(Morphology, RadiusInMm_PerAxis) {
  const Geometry g = grid({9, 9, 9}, {1, 1, 3});
  EXPECT_EQ(radius_in_voxels(g, 3.0), (Size3{3, 3, 1}));
  EXPECT_EQ(radius_in_voxels(g, 1.4), (Size3{1, 1, 0}));
  EXPECT_THROW(radius_in_voxels(g, -1), Error);
  LabelMap l(g);
  l.at(4, 4, 4) = 1;
  const LabelMap d = dilate_mm(l, 3.0);
  EXPECT_EQ(d.at(7, 4, 4), 1);
  EXPECT_EQ(d.at(4, 4, 5), 1);
  EXPECT_EQ(d.at(4, 4, 6), 0);
  EXPECT_EQ(d.at(8, 4, 4), 0);
  EXPECT_EQ(d.count_nonzero(), 31);  // 29 in-plane (i^2 + j^2 <= 9) + 1 above + 1 below
  // Spacing 1 x 1 x 2, 3 mm: k = 0: i^2 + j^2 <= 9 (29); k = +-1: i^2 + j^2 <= 5 (21 each);
  // k = +-2 is 4 mm away. The voxel-radius ellipsoid (3, 3, 2) would give 73 instead.
  LabelMap m(grid({9, 9, 9}, {1, 1, 2}));
  m.at(4, 4, 4) = 1;
  EXPECT_EQ(dilate_mm(m, 3.0).count_nonzero(), 71);
  EXPECT_EQ(dilate(m, radius_in_voxels(m.geometry(), 3.0)).count_nonzero(), 73);
}

TEST(Morphology, ErodeCube_LeavesInterior) {
  LabelMap l(grid({9, 9, 9}));
  paint_box(l, {2, 2, 2}, {7, 7, 7});
  const LabelMap e = erode(l, {1, 1, 1});
  EXPECT_EQ(e.count_nonzero(), 27);
  EXPECT_EQ(e.at(3, 3, 3), 1);
  EXPECT_EQ(e.at(2, 4, 4), 0);
}

TEST(Morphology, OpenRemovesSpeck_CloseBridgesGap) {
  LabelMap l(grid({16, 9, 9}));
  paint_box(l, {1, 2, 2}, {6, 7, 7});
  paint_box(l, {7, 2, 2}, {12, 7, 7});  // 1-voxel gap at i = 6
  l.at(14, 4, 4) = 1;                   // speck
  const LabelMap o = open(l, {1, 1, 1});
  EXPECT_EQ(o.at(14, 4, 4), 0);
  EXPECT_EQ(o.at(4, 4, 4), 1);
  const LabelMap c = close(l, {1, 1, 1});
  EXPECT_EQ(c.at(6, 4, 4), 1);
  EXPECT_EQ(c.at(14, 4, 4), 1);
  EXPECT_EQ(c.at(0, 4, 4), 0);
}

TEST(Morphology, FillHoles_HollowCubeFilled_OpenBoxNot) {
  LabelMap l(grid({11, 11, 11}));
  paint_box(l, {2, 2, 2}, {9, 9, 9});
  paint_box(l, {3, 3, 3}, {8, 8, 8}, 0);  // hollow 7^3 shell around a 5^3 cavity
  ASSERT_EQ(l.count_nonzero(), 343 - 125);
  const LabelMap f = fill_holes(l);
  EXPECT_EQ(f.count_nonzero(), 343);
  paint_box(l, {3, 3, 8}, {8, 8, 9}, 0);  // open the top face: no longer a hole
  EXPECT_EQ(fill_holes(l).count_nonzero(), l.count_nonzero());
}

TEST(Morphology, FillHolesSlicewise_FillsTubeThat3DLeavesOpen) {
  LabelMap l(grid({9, 9, 5}));
  paint_box(l, {2, 2, 0}, {7, 7, 5});
  paint_box(l, {3, 3, 0}, {6, 6, 5}, 0);  // a tube along k, open at both ends
  const int64_t tube = l.count_nonzero();
  EXPECT_EQ(fill_holes(l).count_nonzero(), tube);
  EXPECT_EQ(fill_holes_slicewise(l, 2).count_nonzero(), 25 * 5);
  EXPECT_EQ(fill_holes_slicewise(l, 0).count_nonzero(), tube);  // sideways slices see no holes
  LabelMap ring(grid({7, 7, 1}));
  paint_box(ring, {1, 1, 0}, {6, 6, 1});
  ring.at(3, 3, 0) = 0;
  EXPECT_EQ(fill_holes(ring).count_nonzero(), 25);  // 2D image: 2D filling
}

}  // namespace
}  // namespace tumorlab::imaging

namespace tumorlab::imaging {
namespace {

TEST(Morphology, DilateRadius2AndZeroAxis_EllipsoidCounts) {
  LabelMap l(test::grid({9, 9, 9}));
  l.at(4, 4, 4) = 1;
  // Integer offsets with i^2 + j^2 + k^2 <= 4: 1 + 6 + 12 + 8 + 6 = 33.
  EXPECT_EQ(dilate(l, Size3{2, 2, 2}).count_nonzero(), 33);
  // Radius 0 along k: a disc i^2 + j^2 <= 4 in one slice: 13 voxels.
  EXPECT_EQ(dilate(l, Size3{2, 2, 0}).count_nonzero(), 13);
  EXPECT_EQ(dilate(l, Size3{0, 0, 0}).count_nonzero(), 1);
}

}  // namespace
}  // namespace tumorlab::imaging
