#include "tumorlab/imaging/resample.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "imaging_test_util.h"

namespace tumorlab::imaging {
namespace {

using test::grid;

Matrix3 rotation_z(double degrees) {
  const double a = degrees * M_PI / 180.0, c = std::cos(a), s = std::sin(a);
  return {c, -s, 0, s, c, 0, 0, 0, 1};
}

PointLPS centre_of(const Geometry& g) {
  return g.index_to_physical({(g.size[0] - 1) / 2.0, (g.size[1] - 1) / 2.0, (g.size[2] - 1) / 2.0});
}

TEST(Resample, GeometryWithSpacing_KeepsCentreAndCorner) {
  Geometry g = grid({10, 20, 5}, {1, 1, 3}, {10, -5, 2});
  g.direction = rotation_z(30);
  const Geometry h = geometry_with_spacing(g, {0.5, 2, 1.5});
  EXPECT_EQ(h.size, (Size3{20, 10, 10}));
  EXPECT_EQ(h.direction, g.direction);
  const PointLPS a = centre_of(g), b = centre_of(h);
  EXPECT_NEAR(a.x, b.x, 1e-12);
  EXPECT_NEAR(a.y, b.y, 1e-12);
  EXPECT_NEAR(a.z, b.z, 1e-12);
  // The extent divides exactly, so the outer corner (edge of voxel 0) stays: index -0.5.
  const PointLPS c0 = g.index_to_physical({-0.5, -0.5, -0.5}), c1 = h.index_to_physical({-0.5, -0.5, -0.5});
  EXPECT_NEAR(c0.x, c1.x, 1e-12);
  EXPECT_NEAR(c0.y, c1.y, 1e-12);
  EXPECT_NEAR(c0.z, c1.z, 1e-12);
  // By hand, identity direction: origin moves by (new - old spacing) / 2 per axis.
  const Geometry i = geometry_with_spacing(grid({10, 20, 5}, {1, 1, 3}, {10, -5, 2}), {0.5, 2, 1.5});
  EXPECT_DOUBLE_EQ(i.origin_lps[0], 10 - 0.25);
  EXPECT_DOUBLE_EQ(i.origin_lps[1], -5 + 0.5);
  EXPECT_DOUBLE_EQ(i.origin_lps[2], 2 - 0.75);
  // Rounding: 7 voxels of 1 mm at 2 mm -> round(3.5) = 4 voxels.
  EXPECT_EQ(geometry_with_spacing(grid({7, 1, 1}), {2, 1, 1}).size[0], 4);
}

TEST(Resample, BadSpacing_Throws) {
  EXPECT_THROW(geometry_with_spacing(grid({4, 4, 4}), {0, 1, 1}), Error);
  EXPECT_THROW(geometry_with_spacing(grid({4, 4, 4}), {1, NAN, 1}), Error);
}

TEST(Resample, LabelHalfSpacingAndBack_ExactRoundTrip) {
  Geometry g = grid({9, 7, 5}, {1.2, 0.8, 2.5}, {3, 4, -6});
  g.direction = rotation_z(90);
  LabelMap l(g);
  std::mt19937 rng(7);
  for (auto& v : l.voxels()) v = static_cast<uint8_t>(rng() % 4);
  const LabelMap fine = resample_to_spacing(l, {0.6, 0.4, 1.25});
  EXPECT_EQ(fine.geometry().size, (Size3{18, 14, 10}));
  EXPECT_EQ(fine.at(5, 3, 9), l.at(2, 1, 4));  // fine (2i or 2i+1) -> coarse i
  EXPECT_EQ(fine.at(4, 2, 8), l.at(2, 1, 4));
  const LabelMap back = resample_to_spacing(fine, g.spacing_mm);
  EXPECT_TRUE(back.geometry().same_grid(g, 1e-9)) << back.geometry().difference(g, 1e-9);
  EXPECT_EQ(back.voxels(), l.voxels());
}

TEST(Resample, VolumeNearestHalfSpacingAndBack_ExactMultiChannel) {
  const Geometry g = grid({6, 5, 4}, {1, 1, 2});
  Volume v(g, PixelType::Int16, 2);
  v.modality = "MR";
  std::mt19937 rng(3);
  int16_t* p = v.data<int16_t>();
  for (int64_t i = 0; i < v.voxel_count() * 2; ++i) p[i] = static_cast<int16_t>(static_cast<int>(rng() % 2000) - 1000);
  ResampleOptions o;
  o.interpolation = Interpolation::Nearest;
  const Volume fine = resample_to_spacing(v, {0.5, 0.5, 1}, o);
  EXPECT_EQ(fine.pixel_type(), PixelType::Int16);
  EXPECT_EQ(fine.channels(), 2);
  EXPECT_EQ(fine.modality, "MR");
  const Volume back = resample_to_spacing(fine, g.spacing_mm, o);
  EXPECT_TRUE(back.geometry().same_grid(g, 1e-9));
  for (int64_t i = 0; i < v.voxel_count() * 2; ++i) ASSERT_EQ(back.data<int16_t>()[i], p[i]) << i;
}

TEST(Resample, Linear_RampInterpolatedExactlyAsFloat32) {
  const Geometry g = grid({8, 6, 4}, {1, 2, 3}, {5, 5, 5});
  Volume v(g, PixelType::Int16, 1);
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 6; ++j)
      for (int64_t i = 0; i < 8; ++i) v.data<int16_t>()[v.linear_index(i, j, k)] = static_cast<int16_t>(3 * i + 2 * j - k);
  const Volume fine = resample_to_spacing(v, {0.5, 1, 1.5});
  EXPECT_EQ(fine.pixel_type(), PixelType::Float32);
  const Geometry& h = fine.geometry();
  int checked = 0;
  for (int64_t k = 0; k < h.size[2]; ++k)
    for (int64_t j = 0; j < h.size[1]; ++j)
      for (int64_t i = 0; i < h.size[0]; ++i) {
        const IndexIJK c = g.physical_to_index(h.index_to_physical({double(i), double(j), double(k)}));
        if (c.i < 0 || c.j < 0 || c.k < 0 || c.i > 7 || c.j > 5 || c.k > 3) continue;  // edge voxels clamp
        ASSERT_NEAR(fine.data<float>()[fine.linear_index(i, j, k)], 3 * c.i + 2 * c.j - c.k, 1e-4);
        ++checked;
      }
  EXPECT_EQ(checked, 14 * 10 * 6);
  ResampleOptions o;
  o.output_type = PixelType::Int16;
  EXPECT_EQ(resample_to_spacing(v, {0.5, 1, 1.5}, o).pixel_type(), PixelType::Int16);
}

TEST(Resample, PhysicalPositionsPreserved) {
  const Geometry g = grid({10, 10, 10}, {2, 2, 2}, {-20, 30, 1});
  LabelMap l(g);
  l.at(3, 4, 2) = 1;
  const LabelMap fine = resample_to_spacing(l, {1, 1, 1});
  const PointLPS p = g.index_to_physical({3, 4, 2});
  // The coarse voxel centre lies midway between fine voxels 2i and 2i+1.
  const IndexIJK q = fine.geometry().physical_to_index(p);
  EXPECT_NEAR(q.i, 6.5, 1e-12);
  EXPECT_NEAR(q.j, 8.5, 1e-12);
  EXPECT_NEAR(q.k, 4.5, 1e-12);
  EXPECT_EQ(fine.count_nonzero(), 8);
  for (int64_t k = 4; k <= 5; ++k)
    for (int64_t j = 8; j <= 9; ++j)
      for (int64_t i = 6; i <= 7; ++i) EXPECT_EQ(fine.at(i, j, k), 1);
}

// Target grid rotated 90 degrees about z whose voxel centres coincide with source centres:
// target (a, b, c) is source (3 - b, a, c).
TEST(Resample, OntoRotatedGrid_Nearest90Degrees) {
  const Geometry src = grid({4, 6, 3}, {1, 2, 3}, {10, 20, 30});
  Volume v(src, PixelType::Int16, 1);
  for (int64_t i = 0; i < v.voxel_count(); ++i) v.data<int16_t>()[i] = static_cast<int16_t>(i * 7 % 101);
  Geometry dst = grid({6, 4, 3}, {2, 1, 3}, {13, 20, 30});
  dst.direction = {0, -1, 0, 1, 0, 0, 0, 0, 1};  // column 0 = +y, column 1 = -x
  ResampleOptions o;
  o.interpolation = Interpolation::Nearest;
  const Volume out = resample(v, dst, o);
  EXPECT_TRUE(out.geometry().same_grid(dst));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t a = 0; a < 6; ++a)
        ASSERT_EQ(out.data<int16_t>()[out.linear_index(a, b, c)], v.data<int16_t>()[v.linear_index(3 - b, a, c)]);
}

// A field linear in physical coordinates, sampled on a grid rotated by 30 degrees: linear
// interpolation reproduces it wherever the target centre falls inside the source centres; target
// voxels outside the source grid get the default value.
TEST(Resample, OntoRotatedGrid_Linear30Degrees) {
  const Geometry src = grid({20, 20, 6}, {1, 1.5, 2}, {-10, -15, 0});
  auto field = [](const PointLPS& p) { return 0.5 * p.x + 0.25 * p.y - 0.1 * p.z; };
  Volume v(src, PixelType::Float32, 1);
  for (int64_t k = 0; k < 6; ++k)
    for (int64_t j = 0; j < 20; ++j)
      for (int64_t i = 0; i < 20; ++i)
        v.data<float>()[v.linear_index(i, j, k)] =
            static_cast<float>(field(src.index_to_physical({double(i), double(j), double(k)})));
  Geometry dst = grid({30, 30, 4}, {0.9, 0.9, 2}, {-12, -14, 1});
  dst.direction = rotation_z(30);
  ResampleOptions o;
  o.default_value = -999;
  const Volume out = resample(v, dst, o);
  int inside = 0, outside = 0;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 30; ++j)
      for (int64_t i = 0; i < 30; ++i) {
        const PointLPS p = dst.index_to_physical({double(i), double(j), double(k)});
        const IndexIJK c = src.physical_to_index(p);
        const float got = out.data<float>()[out.linear_index(i, j, k)];
        if (c.i >= 0 && c.j >= 0 && c.k >= 0 && c.i <= 19 && c.j <= 19 && c.k <= 5) {
          ASSERT_NEAR(got, field(p), 1e-4) << i << "," << j << "," << k;
          ++inside;
        } else if (c.i < -0.5 || c.j < -0.5 || c.k < -0.5 || c.i > 19.5 || c.j > 19.5 || c.k > 5.5) {
          ASSERT_EQ(got, -999.0f);
          ++outside;
        }
      }
  EXPECT_GT(inside, 1000);
  EXPECT_GT(outside, 100);
}

// Grids with the same (oblique) direction take the separable path; it must give ITK's filter's
// values: downsampling, upsampling, a shifted target partly outside the source (default value,
// edge clamping within half a voxel), multi-channel int16 input, a 2D slice.
TEST(Resample, SeparablePath_SameValuesAsItkFilter) {
  Geometry src = grid({23, 17, 9}, {0.8, 1.1, 2.5}, {-4, 7, 3});
  src.direction = rotation_z(25);
  Volume v(src, PixelType::Int16, 2);
  std::mt19937 rng(11);
  for (int64_t i = 0; i < v.voxel_count() * 2; ++i) v.data<int16_t>()[i] = static_cast<int16_t>(int(rng() % 2001) - 1000);
  Geometry shifted = geometry_with_spacing(src, {0.5, 0.7, 1.3});
  for (int r = 0; r < 3; ++r) shifted.origin_lps[r] += 2.2 * src.direction[r * 3 + 0] - 1.7 * src.direction[r * 3 + 2];
  Geometry flat = grid({40, 30, 1}, {1, 1, 1}, {1, 2, 3});
  Volume v2(flat, PixelType::Float32, 1);
  for (auto i = 0; i < 1200; ++i) v2.data<float>()[i] = static_cast<float>(rng() % 1000) / 7.0f;
  struct Case {
    const Volume* in;
    Geometry target;
  } cases[] = {{&v, geometry_with_spacing(src, {1.6, 2.3, 5.0})},
               {&v, geometry_with_spacing(src, {0.3, 0.5, 1.0})},
               {&v, shifted},
               {&v2, geometry_with_spacing(flat, {0.6, 1.7, 1})}};
  int outside = 0;
  for (const Case& c : cases) {
    ResampleOptions fast, itk;
    fast.default_value = itk.default_value = -5000;
    itk.separable = false;
    const Volume a = resample(*c.in, c.target, fast), b = resample(*c.in, c.target, itk);
    ASSERT_EQ(a.channels(), c.in->channels());
    ASSERT_TRUE(a.geometry().same_grid(b.geometry()));
    ASSERT_EQ(a.pixel_type(), PixelType::Float32);
    for (int64_t i = 0; i < a.voxel_count() * a.channels(); ++i) {
      const float x = a.data<float>()[i], y = b.data<float>()[i];
      ASSERT_NEAR(x, y, 1e-3f + 1e-5f * std::abs(y)) << "voxel " << i << " of " << c.target.describe();
      outside += y == -5000.0f;
    }
  }
  EXPECT_GT(outside, 1000);  // the shifted grid has a part outside the source
}

TEST(Resample, LabelOntoLargerGrid_BackgroundOutside) {
  const Geometry src = grid({4, 4, 4});
  LabelMap l(src);
  std::fill(l.voxels().begin(), l.voxels().end(), 3);
  const LabelMap out = resample(l, grid({8, 8, 8}, {1, 1, 1}, {-2, -2, -2}));
  EXPECT_EQ(out.count(3), 64);
  EXPECT_EQ(out.at(2, 2, 2), 3);
  EXPECT_EQ(out.at(1, 2, 2), 0);
}

}  // namespace
}  // namespace tumorlab::imaging
