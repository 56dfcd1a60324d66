#include "tumorlab/core/geometry.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tumorlab/core/error.h"

using namespace tumorlab;

namespace {
Geometry oblique() {
  Geometry g;
  g.size = {10, 20, 30};
  g.spacing_mm = {0.5, 0.75, 2.0};
  g.origin_lps = {-100.0, 50.0, 12.5};
  // 30 degrees about z, then 20 degrees about x: a rotation matrix (orthonormal).
  const double a = M_PI / 6, b = M_PI / 9;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += rx[r * 3 + k] * rz[k * 3 + c];
      g.direction[r * 3 + c] = s;
    }
  return g;
}
}  // namespace

TEST(Geometry, IndexToPhysical_IdentityDirection_ScalesAndShifts) {
  Geometry g;
  g.spacing_mm = {2, 3, 4};
  g.origin_lps = {10, 20, 30};
  const PointLPS p = g.index_to_physical({1, 2, 3});
  EXPECT_DOUBLE_EQ(p.x, 12);
  EXPECT_DOUBLE_EQ(p.y, 26);
  EXPECT_DOUBLE_EQ(p.z, 42);
}

TEST(Geometry, PhysicalToIndex_InvertsIndexToPhysical_Oblique) {
  const Geometry g = oblique();
  const IndexIJK idx{3.25, 7.5, 11};
  const IndexIJK back = g.physical_to_index(g.index_to_physical(idx));
  EXPECT_NEAR(back.i, idx.i, 1e-9);
  EXPECT_NEAR(back.j, idx.j, 1e-9);
  EXPECT_NEAR(back.k, idx.k, 1e-9);
}

TEST(Geometry, AffineLps_MatchesIndexToPhysical) {
  const Geometry g = oblique();
  const auto a = g.affine_lps();
  const PointLPS p = g.index_to_physical({2, 3, 4});
  EXPECT_NEAR(a[0] * 2 + a[1] * 3 + a[2] * 4 + a[3], p.x, 1e-9);
  EXPECT_NEAR(a[4] * 2 + a[5] * 3 + a[6] * 4 + a[7], p.y, 1e-9);
  EXPECT_NEAR(a[8] * 2 + a[9] * 3 + a[10] * 4 + a[11], p.z, 1e-9);
  EXPECT_EQ(a[15], 1.0);
}

TEST(Geometry, Difference_NamesWhatDiffers) {
  Geometry a = oblique(), b = oblique();
  EXPECT_TRUE(a.same_grid(b));
  b.size[2] = 31;
  EXPECT_NE(a.difference(b).find("size 10x20x30 vs 10x20x31"), std::string::npos);
  b = oblique();
  b.spacing_mm[1] = 0.8;
  EXPECT_NE(a.difference(b).find("spacing"), std::string::npos);
  b = oblique();
  b.origin_lps[0] += 1.0;
  EXPECT_NE(a.difference(b).find("origin"), std::string::npos);
  b = oblique();
  b.direction = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  EXPECT_NE(a.difference(b).find("direction"), std::string::npos);
}

TEST(Geometry, Validate_RejectsBadSpacingAndNonOrthonormalDirection) {
  Geometry g;
  g.spacing_mm[1] = 0;
  EXPECT_THROW(g.validate("x"), Error);
  g = Geometry();
  g.direction = {1, 0, 0, 1, 1, 0, 0, 0, 1};
  EXPECT_THROW(g.validate("x"), Error);
  g = Geometry();
  g.size[0] = 0;
  EXPECT_THROW(g.validate("x"), Error);
  EXPECT_NO_THROW(oblique().validate("x"));
}

TEST(Geometry, OrientationCode_NamesAxes) {
  EXPECT_EQ(orientation_code({1, 0, 0, 0, 1, 0, 0, 0, 1}), "LPS");
  EXPECT_EQ(orientation_code({-1, 0, 0, 0, -1, 0, 0, 0, 1}), "RAS");
  // Sagittal: i along P, j along I (downwards), k along L.
  EXPECT_EQ(orientation_code({0, 0, 1, 1, 0, 0, 0, -1, 0}), "PIL");
}
