#include "tumorlab/imaging/crop.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::grid;
using test::paint_box;

Geometry oblique_grid() {
  Geometry g = grid({12, 10, 8}, {0.7, 1.3, 2.5}, {-40, 12, 7});
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {c, 0, s, 0, 1, 0, -s, 0, c};
  return g;
}

TEST(Crop, BoundingBox_WithMarginClippedAndEmpty) {
  LabelMap l(grid({10, 10, 10}));
  EXPECT_TRUE(bounding_box(l).empty());
  l.at(2, 5, 9) = 1;
  l.at(6, 3, 4) = 2;
  EXPECT_EQ(bounding_box(l), (Box{{2, 3, 4}, {7, 6, 10}}));
  EXPECT_EQ(bounding_box(l, 2), (Box{{6, 3, 4}, {7, 4, 5}}));
  EXPECT_EQ(bounding_box(l, 0, 3), (Box{{0, 0, 1}, {10, 9, 10}}));
  EXPECT_EQ(bounding_box(l).voxel_count(), 5 * 3 * 6);
}

TEST(Crop, NonzeroBoundingBox_AnyChannel) {
  Volume v(grid({6, 6, 6}), PixelType::Float32, 2);
  EXPECT_TRUE(nonzero_bounding_box(v).empty());
  v.channel_data<float>(0)[v.linear_index(1, 2, 3)] = -1.5f;
  v.channel_data<float>(1)[v.linear_index(4, 4, 4)] = 2.0f;
  EXPECT_EQ(nonzero_bounding_box(v), (Box{{1, 2, 3}, {5, 5, 5}}));
  EXPECT_EQ(nonzero_bounding_box(v, 1), (Box{{0, 1, 2}, {6, 6, 6}}));
}

TEST(Crop, CroppedGeometry_KeepsPhysicalPositions) {
  const Geometry g = oblique_grid();
  const Box box{{3, 2, 1}, {9, 7, 5}};
  const Geometry c = cropped_geometry(g, box);
  EXPECT_EQ(c.size, (Size3{6, 5, 4}));
  for (const IndexIJK& idx : {IndexIJK{0, 0, 0}, IndexIJK{1, 2, 3}, IndexIJK{5, 4, 3}}) {
    const PointLPS a = c.index_to_physical(idx);
    const PointLPS b = g.index_to_physical({idx.i + 3, idx.j + 2, idx.k + 1});
    EXPECT_NEAR(a.x, b.x, 1e-12);
    EXPECT_NEAR(a.y, b.y, 1e-12);
    EXPECT_NEAR(a.z, b.z, 1e-12);
  }
  EXPECT_THROW(cropped_geometry(g, Box{{0, 0, 0}, {13, 1, 1}}), Error);
  EXPECT_THROW(cropped_geometry(g, Box{{2, 2, 2}, {2, 5, 5}}), Error);
}

TEST(Crop, LabelCropUncrop_ExactRoundTrip) {
  const Geometry g = oblique_grid();
  LabelMap l(g);
  std::mt19937 rng(11);
  for (int64_t k = 2; k < 6; ++k)
    for (int64_t j = 1; j < 9; ++j)
      for (int64_t i = 4; i < 7; ++i) l.at(i, j, k) = static_cast<uint8_t>(rng() % 3);
  const Box box = bounding_box(l, 0, 1);
  const LabelMap c = crop(l, box);
  EXPECT_EQ(c.count_nonzero(), l.count_nonzero());
  EXPECT_EQ(c.at(0, 0, 0), l.at(box.begin[0], box.begin[1], box.begin[2]));
  const LabelMap back = uncrop(c, box, g);
  EXPECT_TRUE(back.geometry().same_grid(g, 1e-12));
  EXPECT_EQ(back.voxels(), l.voxels());
  const LabelMap filled = uncrop(c, box, g, 9);
  EXPECT_EQ(filled.at(0, 0, 0), 9);
  EXPECT_EQ(filled.count(9), g.voxel_count() - box.voxel_count());
}

TEST(Crop, VolumeCropUncrop_MultiChannelWithFill) {
  const Geometry g = oblique_grid();
  Volume v(g, PixelType::Float32, 2);
  v.modality = "CT";
  for (int64_t i = 0; i < v.voxel_count() * 2; ++i) v.data<float>()[i] = static_cast<float>(i) * 0.5f;
  const Box box{{1, 2, 3}, {5, 6, 7}};
  const Volume c = crop(v, box);
  EXPECT_EQ(c.channels(), 2);
  EXPECT_EQ(c.modality, "CT");
  EXPECT_EQ(c.channel_data<float>(1)[c.linear_index(2, 1, 3)], v.channel_data<float>(1)[v.linear_index(3, 3, 6)]);
  const Volume back = uncrop(c, box, g, -7);
  for (int ch = 0; ch < 2; ++ch)
    for (int64_t k = 0; k < g.size[2]; ++k)
      for (int64_t j = 0; j < g.size[1]; ++j)
        for (int64_t i = 0; i < g.size[0]; ++i) {
          const float want = box.contains(i, j, k) ? v.channel_data<float>(ch)[v.linear_index(i, j, k)] : -7.0f;
          ASSERT_EQ(back.channel_data<float>(ch)[back.linear_index(i, j, k)], want);
        }
}

TEST(Crop, Uncrop_WrongPlacement_ThrowsGeometryMismatch) {
  const Geometry g = oblique_grid();
  LabelMap l(g);
  const Box box{{1, 1, 1}, {4, 4, 4}};
  const LabelMap c = crop(l, box);
  try {
    uncrop(c, Box{{2, 1, 1}, {5, 4, 4}}, g);
    FAIL() << "expected GeometryMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::GeometryMismatch);
  }
  EXPECT_THROW(uncrop(c, Box{{1, 1, 1}, {5, 4, 4}}, g), Error);
}

TEST(Box, UniteIntersectGrow) {
  const Box a{{0, 0, 0}, {2, 2, 2}}, b{{1, 1, 1}, {4, 3, 2}};
  EXPECT_EQ(unite(a, b), (Box{{0, 0, 0}, {4, 3, 2}}));
  EXPECT_EQ(intersect(a, b), (Box{{1, 1, 1}, {2, 2, 2}}));
  EXPECT_TRUE(intersect(a, Box{{3, 3, 3}, {4, 4, 4}}).empty());
  EXPECT_EQ(unite(Box{}, b), b);
  EXPECT_EQ(grow(b, 2, {5, 5, 5}), (Box{{0, 0, 0}, {5, 5, 4}}));
}

}  // namespace
}  // namespace tumorlab::imaging
