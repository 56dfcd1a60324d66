#include "tumorlab/imaging/components.h"

#include <gtest/gtest.h>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::grid;
using test::paint_box;

TEST(Components, DiagonalVoxels_FaceVsFullConnectivity) {
  LabelMap l(grid({8, 8, 8}));
  l.at(1, 1, 0) = l.at(2, 2, 0) = 1;  // edge-connected pair
  l.at(5, 5, 5) = l.at(6, 6, 6) = 1;  // corner-connected pair
  EXPECT_EQ(connected_components(l, Connectivity::Face).count(), 4);
  EXPECT_EQ(connected_components(l, Connectivity::Full).count(), 2);
}

TEST(Components, TwoD_FourVersusEight) {
  LabelMap l(grid({5, 5, 1}));
  l.at(0, 0, 0) = l.at(1, 1, 0) = l.at(2, 2, 0) = 1;
  l.at(4, 0, 0) = 1;
  EXPECT_EQ(connected_components(l, Connectivity::Face).count(), 4);
  EXPECT_EQ(connected_components(l, Connectivity::Full).count(), 2);
}

TEST(Components, SizesBoxesAndIds_SortedBySize) {
  LabelMap l(grid({10, 10, 10}, {2, 2, 2}));
  paint_box(l, {0, 0, 0}, {1, 1, 3});     // 3 voxels
  paint_box(l, {5, 5, 5}, {7, 8, 6}, 2);  // 6 voxels, label 2
  l.at(9, 9, 9) = 1;                      // 1 voxel
  const Components c = connected_components(l);
  ASSERT_EQ(c.count(), 3);
  EXPECT_EQ(c.components[0].voxels, 6);
  EXPECT_EQ(c.components[0].box, (Box{{5, 5, 5}, {7, 8, 6}}));
  EXPECT_NEAR(c.components[0].volume_ml, 6 * 0.008, 1e-12);
  EXPECT_EQ(c.components[1].voxels, 3);
  EXPECT_EQ(c.components[1].box, (Box{{0, 0, 0}, {1, 1, 3}}));
  EXPECT_EQ(c.components[2].voxels, 1);
  EXPECT_EQ(c.ids.pixel_type(), PixelType::Int32);
  EXPECT_EQ(c.ids.data<int32_t>()[c.ids.linear_index(6, 7, 5)], 1);
  EXPECT_EQ(c.ids.data<int32_t>()[c.ids.linear_index(9, 9, 9)], 3);
  EXPECT_EQ(c.ids.data<int32_t>()[c.ids.linear_index(3, 3, 3)], 0);
  // One label only.
  EXPECT_EQ(connected_components(l, Connectivity::Full, 2).count(), 1);
  EXPECT_EQ(connected_components(LabelMap(grid({3, 3, 3}))).count(), 0);
}

TEST(Components, RemoveSmall_ByVoxelsAndByMl) {
  LabelMap l(grid({12, 12, 12}, {2, 2, 2}));  // 0.008 mL per voxel
  l.at(0, 0, 0) = 1;                            // 1 voxel
  paint_box(l, {4, 4, 4}, {7, 5, 5}, 2);        // 3 voxels (0.024 mL)
  paint_box(l, {8, 8, 8}, {10, 11, 10}, 1);     // 12 voxels
  const LabelMap a = remove_small_components(l, 3);
  EXPECT_EQ(a.at(0, 0, 0), 0);
  EXPECT_EQ(a.count(2), 3);  // labels of kept voxels are preserved
  EXPECT_EQ(a.count(1), 12);
  const LabelMap b = remove_small_components_ml(l, 0.025);
  EXPECT_EQ(b.count(2), 0);
  EXPECT_EQ(b.count(1), 12);
  EXPECT_EQ(remove_small_components_ml(l, 0.024).count(2), 3);
  const LabelMap c = keep_largest_component(l);
  EXPECT_EQ(c.count_nonzero(), 12);
  // Selecting label 2: label-1 voxels are untouched even when small.
  const LabelMap d = remove_small_components(l, 4, Connectivity::Full, 2);
  EXPECT_EQ(d.count(2), 0);
  EXPECT_EQ(d.count(1), 13);
}

TEST(Components, RemoveBelowFractionOfLargest_KeepsLargestAndComparableOnes) {
  LabelMap l(grid({20, 20, 4}));
  paint_box(l, {0, 0, 0}, {10, 10, 1}, 1);   // 100 voxels, the largest
  paint_box(l, {12, 0, 0}, {17, 5, 1}, 1);   // 25 voxels
  paint_box(l, {0, 12, 0}, {3, 15, 1}, 1);   // 9 voxels
  paint_box(l, {15, 15, 3}, {16, 16, 4}, 1); // 1 voxel
  EXPECT_EQ(remove_components_below_fraction_of_largest(l, 0.2).count_nonzero(), 125);
  EXPECT_EQ(remove_components_below_fraction_of_largest(l, 0.09).count_nonzero(), 134);
  EXPECT_EQ(remove_components_below_fraction_of_largest(l, 1.0).count_nonzero(), 100);
  EXPECT_EQ(remove_components_below_fraction_of_largest(l, 0.0).count_nonzero(), 135);
  EXPECT_EQ(remove_components_below_fraction_of_largest(LabelMap(grid({3, 3, 3})), 1.0).count_nonzero(), 0);
}

}  // namespace
}  // namespace tumorlab::imaging
