#include "tumorlab/imaging/components.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

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

// The predictor's single labelling must give what the three rules applied one after another give.
TEST(Components, RemoveComponents_SameAsTheRulesOneAfterAnother) {
  LabelMap l(grid({40, 30, 6}));
  uint32_t rng = 7;
  for (int b = 0; b < 60; ++b) {  // boxes of 1 to 64 voxels, some touching, some with label 2
    rng = rng * 1664525u + 1013904223u;
    const int64_t x = rng % 36, y = (rng >> 8) % 26, z = (rng >> 16) % 5;
    const int64_t w = 1 + (rng >> 20) % 4, h = 1 + (rng >> 24) % 4, d = 1 + (rng >> 28) % 2;
    paint_box(l, {x, y, z}, {x + w, y + h, z + d}, static_cast<uint8_t>(1 + b % 2));
  }
  const double voxel_ml = l.geometry().voxel_volume_ml();
  for (const ComponentRules& r : {ComponentRules{0, 0, 0}, ComponentRules{5.5 * voxel_ml, 0, 0},
                                  ComponentRules{0, 9, 0}, ComponentRules{0, 0, 0.25}, ComponentRules{0, 0, 1.0},
                                  ComponentRules{3.5 * voxel_ml, 4, 0.1}, ComponentRules{1e9, 0, 1.0}}) {
    SCOPED_TRACE(std::to_string(r.min_volume_ml) + " mL, " + std::to_string(r.min_voxels) + " voxels, " +
                 std::to_string(r.min_fraction_of_largest) + " of the largest");
    for (uint8_t label : {uint8_t{0}, uint8_t{2}}) {
      LabelMap expected = l;
      if (r.min_volume_ml > 0) expected = remove_small_components_ml(expected, r.min_volume_ml, Connectivity::Full, label);
      if (r.min_voxels > 0) expected = remove_small_components(expected, r.min_voxels, Connectivity::Full, label);
      if (r.min_fraction_of_largest > 0)
        expected = remove_components_below_fraction_of_largest(expected, r.min_fraction_of_largest, Connectivity::Full,
                                                               label);
      const LabelMap got = remove_components(l, r, Connectivity::Full, label);
      ASSERT_EQ(got.voxel_count(), expected.voxel_count());
      EXPECT_TRUE(std::equal(got.data(), got.data() + got.voxel_count(), expected.data()));
    }
  }
  // The rules do remove something here (the comparison above is not between unchanged maps).
  EXPECT_LT(remove_components(l, {0, 9, 0}).count_nonzero(), l.count_nonzero());
  EXPECT_LT(remove_components(l, {0, 0, 1.0}).count_nonzero(), remove_components(l, {0, 0, 0.25}).count_nonzero());
  EXPECT_EQ(remove_components(l, {1e9, 0, 0}).count_nonzero(), 0);
  // No foreground: returned as it is.
  EXPECT_EQ(remove_components(LabelMap(grid({3, 3, 3})), {1, 1, 1}).count_nonzero(), 0);
}

}  // namespace
}  // namespace tumorlab::imaging
