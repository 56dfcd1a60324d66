#include "tumorlab/imaging/distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::grid;
using test::paint_box;

float at(const Volume& v, int64_t i, int64_t j, int64_t k) { return v.data<float>()[v.linear_index(i, j, k)]; }

TEST(Distance, ToSingleVoxel_AnisotropicSpacing) {
  LabelMap l(grid({7, 7, 7}, {1, 2, 3}));
  l.at(3, 3, 3) = 1;
  const Volume d = distance_to_mask_mm(l);
  EXPECT_EQ(d.pixel_type(), PixelType::Float32);
  EXPECT_FLOAT_EQ(at(d, 3, 3, 3), 0.0f);
  EXPECT_FLOAT_EQ(at(d, 4, 3, 3), 1.0f);
  EXPECT_FLOAT_EQ(at(d, 3, 4, 3), 2.0f);
  EXPECT_FLOAT_EQ(at(d, 3, 3, 5), 6.0f);
  EXPECT_NEAR(at(d, 4, 4, 4), std::sqrt(14.0), 1e-5);
  EXPECT_NEAR(at(d, 0, 0, 0), std::sqrt(9.0 + 36 + 81), 1e-4);
}

TEST(Distance, Signed_CubeConvention) {
  LabelMap l(grid({9, 9, 9}));
  paint_box(l, {2, 2, 2}, {7, 7, 7});
  const Volume d = signed_distance_mm(l);
  EXPECT_FLOAT_EQ(at(d, 2, 4, 4), 0.0f);   // boundary voxel
  EXPECT_FLOAT_EQ(at(d, 2, 2, 2), 0.0f);   // corner of the cube
  EXPECT_FLOAT_EQ(at(d, 3, 4, 4), -1.0f);  // one deeper
  EXPECT_FLOAT_EQ(at(d, 4, 4, 4), -2.0f);  // centre
  EXPECT_FLOAT_EQ(at(d, 1, 4, 4), 1.0f);   // background next to a face
  EXPECT_NEAR(at(d, 1, 1, 4), std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(at(d, 0, 0, 0), std::sqrt(12.0), 1e-5);
}

TEST(Distance, Signed_AnisotropicSpacing) {
  LabelMap l(grid({9, 9, 9}, {1, 1, 2}));
  paint_box(l, {2, 2, 2}, {7, 7, 7});
  const Volume d = signed_distance_mm(l);
  EXPECT_FLOAT_EQ(at(d, 4, 4, 4), -2.0f);  // 2 voxels to the i/j faces (2 mm) vs 2 along k (4 mm)
  EXPECT_FLOAT_EQ(at(d, 4, 4, 1), 2.0f);   // one voxel below the k face
  EXPECT_FLOAT_EQ(at(d, 4, 4, 8), 4.0f);
}

TEST(Distance, EmptyAndFullMasks) {
  LabelMap l(grid({3, 3, 3}));
  EXPECT_TRUE(std::isinf(at(signed_distance_mm(l), 1, 1, 1)));
  EXPECT_GT(at(signed_distance_mm(l), 1, 1, 1), 0);
  EXPECT_TRUE(std::isinf(at(distance_to_mask_mm(l), 0, 0, 0)));
  std::fill(l.voxels().begin(), l.voxels().end(), 1);
  EXPECT_LT(at(signed_distance_mm(l), 1, 1, 1), 0);
  EXPECT_EQ(at(distance_to_mask_mm(l), 1, 1, 1), 0.0f);
}

TEST(Distance, ToMask_MatchesBruteForceOnRandomMask) {
  const Vec3 sp{0.6, 1.7, 2.2};
  LabelMap l(grid({10, 9, 7}, sp));
  std::mt19937 rng(5);
  for (auto& v : l.voxels()) v = rng() % 23 == 0;
  std::vector<test::Voxel> fg;
  for (int64_t k = 0; k < 7; ++k)
    for (int64_t j = 0; j < 9; ++j)
      for (int64_t i = 0; i < 10; ++i)
        if (l.at(i, j, k)) fg.push_back({i, j, k});
  ASSERT_GT(fg.size(), 5u);
  const Volume d = distance_to_mask_mm(l);
  for (int64_t k = 0; k < 7; ++k)
    for (int64_t j = 0; j < 9; ++j)
      for (int64_t i = 0; i < 10; ++i) {
        double best = INFINITY;
        for (const auto& f : fg) best = std::min(best, test::voxel_distance({i, j, k}, f, sp));
        ASSERT_NEAR(at(d, i, j, k), best, 1e-5) << i << "," << j << "," << k;
      }
}

}  // namespace
}  // namespace tumorlab::imaging

namespace tumorlab::imaging {
namespace {

// The image border is not a boundary: a mask filling the left half has its zero level only at
// the voxels next to the right half.
TEST(Distance, Signed_ImageBorderIsNotABoundary) {
  LabelMap l(test::grid({6, 3, 3}));
  test::paint_box(l, {0, 0, 0}, {3, 3, 3});
  const Volume d = signed_distance_mm(l);
  EXPECT_FLOAT_EQ(d.data<float>()[d.linear_index(2, 1, 1)], 0.0f);
  EXPECT_FLOAT_EQ(d.data<float>()[d.linear_index(1, 0, 0)], -1.0f);
  EXPECT_FLOAT_EQ(d.data<float>()[d.linear_index(0, 1, 1)], -2.0f);
  EXPECT_FLOAT_EQ(d.data<float>()[d.linear_index(5, 1, 1)], 3.0f);
}

}  // namespace
}  // namespace tumorlab::imaging
