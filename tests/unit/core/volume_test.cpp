#include "tumorlab/core/volume.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace tumorlab;

namespace {
Geometry small() {
  Geometry g;
  g.size = {4, 3, 2};
  return g;
}
}  // namespace

TEST(Volume, Construct_ZeroFilledWithLayout) {
  Volume v(small(), PixelType::Int16, 2);
  EXPECT_EQ(v.voxel_count(), 24);
  EXPECT_EQ(v.size_bytes(), 24u * 2 * 2);
  EXPECT_EQ(v.linear_index(1, 2, 1), 1 + 4 * (2 + 3 * 1));
  v.channel_data<int16_t>(1)[v.linear_index(3, 2, 1)] = -7;
  EXPECT_EQ(v.value(v.linear_index(3, 2, 1), 1), -7);
  EXPECT_EQ(v.value(v.linear_index(3, 2, 1), 0), 0);
}

// Buffers of 4 MiB and more take the huge-page path (advised before the zero fill): still zero,
// of the right size, and a volume made again in the same place (reused memory) is zero too.
TEST(Volume, LargeBuffers_ZeroFilledAgainAfterReuse) {
  Geometry g;
  g.size = {700, 600, 5};
  for (int round = 0; round < 2; ++round) {
    Volume v(g, PixelType::Float32, 2);
    ASSERT_EQ(v.size_bytes(), 700u * 600 * 5 * 2 * 4);
    const float* f = v.data<float>();
    for (int64_t i = 0; i < v.voxel_count() * 2; ++i) ASSERT_EQ(f[i], 0.0f) << "voxel " << i << ", round " << round;
    std::fill(v.data<float>(), v.data<float>() + v.voxel_count() * 2, 3.5f);
    LabelMap l(g);
    ASSERT_EQ(l.voxels().size(), 700u * 600 * 5);
    EXPECT_EQ(l.count_nonzero(), 0);
    std::fill(l.voxels().begin(), l.voxels().end(), uint8_t{9});
  }
}

TEST(Volume, TypedAccess_WrongTypeThrows) {
  Volume v(small(), PixelType::Float32);
  EXPECT_THROW(v.data<int16_t>(), Error);
  EXPECT_NO_THROW(v.data<float>());
}

TEST(Volume, AsType_RoundsAndClamps) {
  Volume v(small(), PixelType::Float32);
  float* p = v.data<float>();
  p[0] = 1.6f;
  p[1] = -3.0f;
  p[2] = 300.0f;
  p[3] = std::numeric_limits<float>::quiet_NaN();
  const Volume u = v.as_type(PixelType::UInt8);
  EXPECT_EQ(u.data<uint8_t>()[0], 2);
  EXPECT_EQ(u.data<uint8_t>()[1], 0);
  EXPECT_EQ(u.data<uint8_t>()[2], 255);
  EXPECT_EQ(u.data<uint8_t>()[3], 0);
  EXPECT_TRUE(u.geometry().same_grid(v.geometry()));
}

TEST(Volume, StackChannels_ConcatenatesAndChecksGrid) {
  Volume a(small(), PixelType::UInt8), b(small(), PixelType::UInt8);
  a.data<uint8_t>()[5] = 1;
  b.data<uint8_t>()[5] = 2;
  a.channel_names = {"FLAIR"};
  b.channel_names = {"T1c"};
  const Volume s = Volume::stack_channels({a, b});
  EXPECT_EQ(s.channels(), 2);
  EXPECT_EQ(s.value(5, 0), 1);
  EXPECT_EQ(s.value(5, 1), 2);
  EXPECT_EQ(s.channel_names, (std::vector<std::string>{"FLAIR", "T1c"}));
  EXPECT_EQ(s.channel(1).value(5), 2);

  Geometry other = small();
  other.spacing_mm[0] = 2;
  Volume c(other, PixelType::UInt8);
  try {
    Volume::stack_channels({a, c});
    FAIL() << "expected GeometryMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::GeometryMismatch);
  }
}

TEST(Volume, IntensityRangeAndNonFinite) {
  Volume v(small(), PixelType::Float32);
  float* p = v.data<float>();
  p[0] = -5;
  p[1] = 9;
  p[2] = std::numeric_limits<float>::infinity();
  p[3] = std::numeric_limits<float>::quiet_NaN();
  auto [lo, hi] = v.intensity_range();
  EXPECT_EQ(lo, -5);
  EXPECT_EQ(hi, 9);
  EXPECT_EQ(v.count_non_finite(), 2);
}

TEST(Volume, CheckAllocation_RefusesAbsurdSizeBeforeAllocating) {
  try {
    check_allocation({100000, 100000, 100000}, 1, PixelType::Float32, "huge.nii");
    FAIL() << "expected TooLarge";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TooLarge);
    EXPECT_NE(std::string(e.what()).find("huge.nii"), std::string::npos);
  }
  // Overflowing products must not wrap around to a small number.
  EXPECT_THROW(check_allocation({INT64_MAX / 2, 4, 4}, 1, PixelType::UInt8, "x"), Error);
  EXPECT_NO_THROW(check_allocation({512, 512, 100}, 1, PixelType::Int16, "ct"));
}

TEST(LabelMap, FromVolume_AcceptsIntegralRejectsOthers) {
  Volume v(small(), PixelType::Float32);
  v.data<float>()[3] = 2.0f;
  LabelMap l = LabelMap::from_volume(v, "lbl");
  EXPECT_EQ(l.count(2), 1);
  EXPECT_EQ(l.max_label(), 2);
  v.data<float>()[4] = 0.5f;
  EXPECT_THROW(LabelMap::from_volume(v, "lbl"), Error);
  Volume w(small(), PixelType::Int16);
  w.data<int16_t>()[0] = 300;
  EXPECT_THROW(LabelMap::from_volume(w, "lbl"), Error);
}

TEST(LabelMap, Binary_SelectsLabel) {
  LabelMap l(small());
  l.at(0, 0, 0) = 1;
  l.at(1, 0, 0) = 2;
  l.at(2, 0, 0) = 2;
  EXPECT_EQ(l.binary(2).count(1), 2);
  EXPECT_EQ(l.binary().count(1), 3);
  EXPECT_EQ(l.count_nonzero(), 3);
}
