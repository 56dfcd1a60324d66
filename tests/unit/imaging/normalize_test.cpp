#include "tumorlab/imaging/normalize.h"

#include <gtest/gtest.h>

#include <cmath>

#include "imaging_test_util.h"
#include "tumorlab/imaging/statistics.h"

namespace tumorlab::imaging {
namespace {

using test::grid;

Volume volume_of(const std::vector<float>& values, int channels = 1) {
  const int64_t n = static_cast<int64_t>(values.size()) / channels;
  Volume v(grid({n, 1, 1}), PixelType::Float32, channels);
  std::copy(values.begin(), values.end(), v.data<float>());
  return v;
}

NormalizationOptions opts(NormalizationScheme s) {
  NormalizationOptions o;
  o.scheme = s;
  return o;
}

TEST(Statistics, Percentile_MatchesNumpyLinear) {
  std::vector<double> a{1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(a, 50), 2.5);
  std::vector<double> b{10, 7, 4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(percentile(b, 95), 9.25);  // numpy.percentile([10,7,4,3,2,1], 95)
  std::vector<double> c{5};
  EXPECT_DOUBLE_EQ(percentile(c, 95), 5.0);
  std::vector<double> d{3, 1, 2};
  EXPECT_DOUBLE_EQ(percentile(d, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(d, 100), 3.0);
  std::vector<double> e;
  EXPECT_TRUE(std::isnan(percentile(e, 50)));
  EXPECT_THROW(percentile(d, 101), Error);
}

// Foreground {2,4,4,4,5,5,7,9}: mean 5, population std 2; background voxels are 0.
TEST(Normalize, ZScore_ForegroundAboveZero_KnownMeanStd) {
  const Volume v = volume_of({0, 2, 4, 4, 0, 4, 5, 5, 7, 9, 0});
  const auto params = compute_normalization(v, {opts(NormalizationScheme::ZScore)});
  ASSERT_EQ(params.size(), 1u);
  EXPECT_DOUBLE_EQ(params[0].mean, 5.0);
  EXPECT_DOUBLE_EQ(params[0].std, 2.0);
  const Volume out = apply_normalization(v, params);
  EXPECT_EQ(out.pixel_type(), PixelType::Float32);
  const float* p = out.data<float>();
  EXPECT_FLOAT_EQ(p[0], -2.5f);  // background is normalised too, not zeroed
  EXPECT_FLOAT_EQ(p[1], -1.5f);
  EXPECT_FLOAT_EQ(p[9], 2.0f);
  EXPECT_FLOAT_EQ(p[6], 0.0f);
}

TEST(Normalize, ZScore_WithMask_UsesMaskVoxels) {
  const Volume v = volume_of({1, 3, 100, 100});
  LabelMap mask(v.geometry());
  mask.voxels() = {1, 1, 0, 0};
  const auto params = compute_normalization(v, {opts(NormalizationScheme::ZScore)}, &mask);
  EXPECT_DOUBLE_EQ(params[0].mean, 2.0);
  EXPECT_DOUBLE_EQ(params[0].std, 1.0);
  EXPECT_FLOAT_EQ(normalize(v, {opts(NormalizationScheme::ZScore)}, &mask).data<float>()[2], 98.0f);
  LabelMap wrong(grid({5, 1, 1}));
  EXPECT_THROW(compute_normalization(v, {opts(NormalizationScheme::ZScore)}, &wrong), Error);
}

TEST(Normalize, ZScore_Otsu_SeparatesBrightForeground) {
  std::vector<float> values;
  for (int i = 0; i < 100; ++i) values.push_back(i % 2 ? 1.0f : 3.0f);
  for (int i = 0; i < 50; ++i) values.push_back(90.0f);
  for (int i = 0; i < 50; ++i) values.push_back(110.0f);
  NormalizationOptions o = opts(NormalizationScheme::ZScore);
  o.foreground = ForegroundRule::Otsu;
  const auto p = compute_normalization(volume_of(values), {o});
  EXPECT_DOUBLE_EQ(p[0].mean, 100.0);
  EXPECT_DOUBLE_EQ(p[0].std, 10.0);
  o.foreground = ForegroundRule::All;
  EXPECT_DOUBLE_EQ(compute_normalization(volume_of(values), {o})[0].mean, (200.0 + 4500 + 5500) / 200);
}

// Fixed window [-100, 100]: clipped values {-100,-50,0,50,100}, mean 0, std sqrt(5000).
TEST(Normalize, CT_FixedClip_ByHand) {
  const Volume v = volume_of({-2000, -50, 0, 50, 3000});
  NormalizationOptions o = opts(NormalizationScheme::CT);
  o.use_fixed_clip = true;
  o.fixed_clip_low = -100;
  o.fixed_clip_high = 100;
  const auto p = compute_normalization(v, {o});
  EXPECT_DOUBLE_EQ(p[0].clip_low, -100);
  EXPECT_DOUBLE_EQ(p[0].clip_high, 100);
  EXPECT_DOUBLE_EQ(p[0].mean, 0.0);
  EXPECT_DOUBLE_EQ(p[0].std, std::sqrt(5000.0));
  const Volume out = apply_normalization(v, p);
  EXPECT_FLOAT_EQ(out.data<float>()[4], static_cast<float>(100 / std::sqrt(5000.0)));
  EXPECT_FLOAT_EQ(out.data<float>()[0], static_cast<float>(-100 / std::sqrt(5000.0)));
  EXPECT_FLOAT_EQ(out.data<float>()[1], static_cast<float>(-50 / std::sqrt(5000.0)));
}

// Values 1..100: p0.5 = 1 + 0.495 = 1.495, p99.5 = 99 + 0.505 = 99.505 (numpy linear);
// the clipped set is symmetric, so the mean stays 50.5.
TEST(Normalize, CT_Percentiles_ByHand) {
  std::vector<float> values;
  for (int i = 1; i <= 100; ++i) values.push_back(static_cast<float>(i));
  const Volume v = volume_of(values);
  const auto p = compute_normalization(v, {opts(NormalizationScheme::CT)});
  EXPECT_NEAR(p[0].clip_low, 1.495, 1e-9);
  EXPECT_NEAR(p[0].clip_high, 99.505, 1e-9);
  EXPECT_NEAR(p[0].mean, 50.5, 1e-9);
  double ss = 0;
  for (int i = 1; i <= 100; ++i) {
    const double c = std::clamp(static_cast<double>(i), 1.495, 99.505) - 50.5;
    ss += c * c;
  }
  EXPECT_NEAR(p[0].std, std::sqrt(ss / 100), 1e-9);
  const Volume out = apply_normalization(v, p);
  EXPECT_NEAR(out.data<float>()[99], (99.505 - 50.5) / p[0].std, 1e-5);
  EXPECT_NEAR(out.data<float>()[49], (50 - 50.5) / p[0].std, 1e-5);
}

TEST(Normalize, CT_StatisticsFromMaskOnly) {
  const Volume v = volume_of({-1000, -1000, 10, 20, 30, -1000});
  LabelMap mask(v.geometry());
  mask.voxels() = {0, 0, 1, 1, 1, 0};
  NormalizationOptions o = opts(NormalizationScheme::CT);
  o.lower_percentile = 0;
  o.upper_percentile = 100;
  const auto p = compute_normalization(v, {o}, &mask);
  EXPECT_DOUBLE_EQ(p[0].clip_low, 10);
  EXPECT_DOUBLE_EQ(p[0].clip_high, 30);
  EXPECT_DOUBLE_EQ(p[0].mean, 20);
  // Applying clips every voxel, inside the mask or not.
  EXPECT_FLOAT_EQ(apply_normalization(v, p).data<float>()[0], static_cast<float>(-10 / p[0].std));
}

TEST(Normalize, PerChannel_CTAndPET) {
  // Channel 0 (CT): -50, 50; channel 1 (PET): 0.5, 7.25 kept as is.
  const Volume v = volume_of({-50, 50, 0.5f, 7.25f}, 2);
  NormalizationOptions ct = opts(NormalizationScheme::CT);
  ct.use_fixed_clip = true;
  ct.fixed_clip_low = -1000;
  ct.fixed_clip_high = 1000;
  const auto params = compute_normalization(v, {ct, opts(NormalizationScheme::None)});
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[1].scheme, NormalizationScheme::None);
  const Volume out = apply_normalization(v, params);
  EXPECT_FLOAT_EQ(out.channel_data<float>(0)[0], -1.0f);
  EXPECT_FLOAT_EQ(out.channel_data<float>(0)[1], 1.0f);
  EXPECT_FLOAT_EQ(out.channel_data<float>(1)[0], 0.5f);
  EXPECT_FLOAT_EQ(out.channel_data<float>(1)[1], 7.25f);
  EXPECT_THROW(compute_normalization(v, {ct, ct, ct}), Error);
}

TEST(Normalize, StoredParams_ApplySameNumbersToNewImage) {
  NormalizationParams p;
  p.scheme = NormalizationScheme::CT;
  p.clip_low = -100;
  p.clip_high = 200;
  p.mean = 50;
  p.std = 25;
  Volume v(grid({3, 1, 1}), PixelType::Int16, 1);
  v.data<int16_t>()[0] = -1024;
  v.data<int16_t>()[1] = 100;
  v.data<int16_t>()[2] = 3000;
  const Volume out = apply_normalization(v, {p});
  EXPECT_FLOAT_EQ(out.data<float>()[0], -6.0f);
  EXPECT_FLOAT_EQ(out.data<float>()[1], 2.0f);
  EXPECT_FLOAT_EQ(out.data<float>()[2], 6.0f);
}

TEST(Normalize, SchemeNames) {
  EXPECT_EQ(parse_normalization_scheme("CT"), NormalizationScheme::CT);
  EXPECT_EQ(parse_normalization_scheme("MR"), NormalizationScheme::ZScore);
  EXPECT_EQ(parse_normalization_scheme(to_string(NormalizationScheme::None)), NormalizationScheme::None);
  EXPECT_THROW(parse_normalization_scheme("ct"), Error);
  EXPECT_EQ(scheme_for_modality("PT"), NormalizationScheme::None);
  EXPECT_EQ(scheme_for_modality("CT"), NormalizationScheme::CT);
  EXPECT_EQ(scheme_for_modality("MR"), NormalizationScheme::ZScore);
}

}  // namespace
}  // namespace tumorlab::imaging
