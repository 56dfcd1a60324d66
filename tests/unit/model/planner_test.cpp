#include "tumorlab/model/planner.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "tumorlab/core/error.h"

using namespace tumorlab;
using namespace tumorlab::model;

namespace {

IntensityStats stats(double p005, double p50, double p995, double mean, double std) {
  IntensityStats s;
  s.count = 1000;
  s.min = p005;
  s.max = p995;
  s.percentile_00_5 = p005;
  s.percentile_50_0 = p50;
  s.percentile_99_5 = p995;
  s.mean = mean;
  s.std = std;
  return s;
}

// A fingerprint by hand: `n` cases of the given size and spacing, one channel per name.
DatasetFingerprint fingerprint(Size3 size, Vec3 spacing, const std::vector<std::string>& names,
                               const std::string& pixel_type = "int16", int n = 10) {
  DatasetFingerprint f;
  f.dataset = "test";
  f.root = "/data/Dataset009_Test";
  f.file_ending = ".nii.gz";
  f.labels = {{"background", 0}, {"tumor", 1}};
  for (int i = 0; i < n; ++i) {
    CaseFingerprint c;
    c.id = "case_" + std::to_string(i);
    c.size = size;
    c.spacing_mm = spacing;
    c.pixel_type = pixel_type;
    f.cases.push_back(c);
  }
  for (const auto& name : names) {
    ChannelFingerprint c;
    c.name = name;
    c.pixel_type = pixel_type;
    c.all = stats(-1000, 0, 1500, 10, 400);
    c.foreground = stats(-50, 60, 250, 70, 30);
    f.channels.push_back(c);
  }
  f.is_2d = size[2] == 1;
  f.median_spacing_mm = spacing;
  f.spacing_p10_mm = spacing;
  f.median_size = {static_cast<double>(size[0]), static_cast<double>(size[1]), static_cast<double>(size[2])};
  f.lesion_count = 3;
  f.lesion_ml = {0.2, 1.0, 5.0};
  return f;
}

std::array<int, 3> divisor_of(const Plans& p) {
  std::array<int, 3> d{1, 1, 1};
  for (const auto& s : p.network.strides)
    for (int a = 0; a < 3; ++a) d[static_cast<std::size_t>(a)] *= s[static_cast<std::size_t>(a)];
  return d;
}

void expect_valid(const Plans& p) {
  const Plans q = plans_from_json(to_json(p));
  EXPECT_EQ(to_json(p), to_json(q));
  const auto d = divisor_of(p);
  for (int a = 0; a < 3; ++a)
    EXPECT_EQ(p.patch_size[static_cast<std::size_t>(a)] % d[static_cast<std::size_t>(a)], 0) << a;
  EXPECT_EQ(p.network.features.size(), p.network.strides.size() + 1);
  EXPECT_EQ(p.network.features.front(), 16);
  for (int f : p.network.features) EXPECT_LE(f, 256);
}

}  // namespace

TEST(Planner, OneLesionPerPatient_KeepsOnlyTheLargestPredictedComponent) {
  auto f = fingerprint({256, 256, 36}, {1, 1, 1}, {"FLAIR"}, "uint8", 20);
  for (auto& c : f.cases) c.lesion_voxels = {5000};
  f.cases[0].lesion_voxels = {5000, 40};  // 19 of 20 (95%) single-lesion cases
  f.cases_with_lesions = 20;
  EXPECT_DOUBLE_EQ(plan_from_fingerprint(f, {}).inference.min_fraction_of_largest, 1.0);
  f.cases[1].lesion_voxels = {5000, 40, 30};  // 18 of 20 (90%): still one lesion per patient
  EXPECT_DOUBLE_EQ(plan_from_fingerprint(f, {}).inference.min_fraction_of_largest, 1.0);
  f.cases[2].lesion_voxels = {5000, 40};  // 17 of 20: several lesions are common, keep them
  EXPECT_DOUBLE_EQ(plan_from_fingerprint(f, {}).inference.min_fraction_of_largest, 0.0);
  // Too few labelled cases to tell.
  auto g = fingerprint({256, 256, 36}, {1, 1, 1}, {"FLAIR"}, "uint8", 5);
  for (auto& c : g.cases) c.lesion_voxels = {5000};
  g.cases_with_lesions = 5;
  EXPECT_DOUBLE_EQ(plan_from_fingerprint(g, {}).inference.min_fraction_of_largest, 0.0);
}

TEST(Planner, TwoDimensionalData_PlansA2DModel) {
  auto f = fingerprint({400, 900, 1}, {1, 1, 1}, {"PET-MIP"}, "uint8", 100);
  f.channels[0].all = stats(0, 255, 255, 240, 40);  // white background
  const Plans p = plan_from_fingerprint(f, {});
  expect_valid(p);
  EXPECT_EQ(p.name, "dataset009_test");
  EXPECT_EQ(p.dims(), 2);
  EXPECT_EQ(p.patch_size[2], 1);
  for (const auto& s : p.network.strides) EXPECT_EQ(s[2], 1);
  EXPECT_LE(static_cast<long>(p.patch_size[0]) * p.patch_size[1], kPatchVoxelBudget2D);
  EXPECT_GT(p.patch_size[1], p.patch_size[0]);  // keeps the tall median shape's proportions
  EXPECT_EQ(p.modality, "PT");
  EXPECT_TRUE(p.training.bf16);  // measured worth it on these CPUs (docs/planning.md)
  EXPECT_TRUE(p.channels[0].invert);
  EXPECT_EQ(p.channels[0].normalization.scheme, imaging::NormalizationScheme::ZScore);
  EXPECT_EQ(p.channels[0].foreground, "above_zero");
  EXPECT_GE(p.batch_size, 8);
  EXPECT_LE(p.batch_size, 12);
  EXPECT_EQ(p.inference.tta_mirror_axes, (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(p.inference.min_lesion_ml, 0.1);  // half the smallest reference lesion
  EXPECT_DOUBLE_EQ(p.training.learning_rate, 0.01);
  EXPECT_DOUBLE_EQ(p.training.momentum, 0.99);
  EXPECT_DOUBLE_EQ(p.training.foreground_oversample, 0.33);
  EXPECT_EQ(p.training.seed, 42);
  EXPECT_TRUE(p.network.deep_supervision);

  try {
    plan_from_fingerprint(f, {"x", "3d", ""});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_EQ(e.exit_code(), 2);
  }
  EXPECT_THROW(plan_from_fingerprint(f, {"x", "4d", ""}), Error);
}

TEST(Planner, DarkBackgroundMip_NotInverted) {
  auto f = fingerprint({200, 400, 1}, {2, 2, 1}, {"PET MIP"}, "uint8");
  f.channels[0].all = stats(0, 3, 255, 20, 40);  // black background: bright = high uptake already
  const Plans p = plan_from_fingerprint(f, {});
  EXPECT_FALSE(p.channels[0].invert);
  EXPECT_EQ(p.target_spacing_mm, (Vec3{2, 2, 1}));
}

TEST(Planner, AnisotropicSpacing_SkipsZStridesWhileSlicesAreThick) {
  auto f = fingerprint({256, 256, 30}, {0.8, 0.8, 4}, {"T2"});
  f.spacing_p10_mm = {0.7, 0.7, 3.5};
  const Plans p = plan_from_fingerprint(f, {});
  expect_valid(p);
  EXPECT_EQ(p.dims(), 3);
  EXPECT_EQ(p.modality, "MR");
  // nnU-Net's anisotropy rule: coarse axis takes the 10th percentile of its spacings
  EXPECT_DOUBLE_EQ(p.target_spacing_mm[2], 3.5);
  EXPECT_DOUBLE_EQ(p.target_spacing_mm[0], 0.8);
  // stage spacing 0.8 -> 1.6 -> 3.2 in-plane: z (3.5) waits until in-plane spacing is >= 1.75
  ASSERT_GE(p.network.strides.size(), 3u);
  EXPECT_EQ(p.network.strides[0], (std::array<int, 3>{2, 2, 1}));
  EXPECT_EQ(p.network.strides[1], (std::array<int, 3>{2, 2, 1}));
  EXPECT_EQ(p.network.strides[2][2], 2);
  EXPECT_LE(static_cast<long>(p.patch_size[0]) * p.patch_size[1] * p.patch_size[2], kPatchVoxelBudget3D);
  EXPECT_EQ(p.batch_size, 2);
  EXPECT_EQ(p.training.augmentation.mirror_axes, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(p.channels[0].normalization.scheme, imaging::NormalizationScheme::ZScore);
}

TEST(Planner, IsotropicVolume_DownsamplesEveryAxisWhileFeatureMapsStayAtLeast4) {
  const auto f = fingerprint({64, 64, 16}, {1, 1, 1}, {"FLAIR", "T1 post-contrast"});
  const Plans p = plan_from_fingerprint(f, {});
  expect_valid(p);
  EXPECT_EQ(p.patch_size, (std::array<int, 3>{64, 64, 16}));
  // z: 16 -> 8 -> 4, then stop; x, y: 64 -> 4 in 4 strides
  ASSERT_EQ(p.network.strides.size(), 4u);
  EXPECT_EQ(p.network.strides[0], (std::array<int, 3>{2, 2, 2}));
  EXPECT_EQ(p.network.strides[1], (std::array<int, 3>{2, 2, 2}));
  EXPECT_EQ(p.network.strides[2], (std::array<int, 3>{2, 2, 1}));
  EXPECT_EQ(p.network.strides[3], (std::array<int, 3>{2, 2, 1}));
  EXPECT_EQ(p.network.features, (std::vector<int>{16, 32, 64, 128, 256}));
  EXPECT_EQ(p.channels.size(), 2u);
  EXPECT_EQ(p.modality, "MR");
}

TEST(Planner, CtChannel_UsesDatasetForegroundPercentiles) {
  const auto f = fingerprint({128, 128, 64}, {0.7, 0.7, 1.0}, {"CT"});
  const Plans p = plan_from_fingerprint(f, {"liver", "auto", ""});
  expect_valid(p);
  EXPECT_EQ(p.modality, "CT");
  const auto& n = p.channels[0].normalization;
  EXPECT_EQ(n.scheme, imaging::NormalizationScheme::CT);
  EXPECT_DOUBLE_EQ(n.clip_low, -50);
  EXPECT_DOUBLE_EQ(n.clip_high, 250);
  EXPECT_DOUBLE_EQ(n.mean, 70);
  EXPECT_DOUBLE_EQ(n.std, 30);
}

TEST(Planner, ForcedTwoDOnVolumes_ResamplesInPlaneOnly) {
  const auto f = fingerprint({256, 256, 40}, {0.5, 0.5, 5}, {"FLAIR"});
  const Plans p = plan_from_fingerprint(f, {"slices", "2d", ""});
  expect_valid(p);
  EXPECT_EQ(p.dims(), 2);
  EXPECT_EQ(p.patch_size[2], 1);
}

TEST(Planner, ModalityWords) {
  EXPECT_EQ(modality_from_channel_name("PET-MIP"), "PT");
  EXPECT_EQ(modality_from_channel_name("T1 post-contrast"), "MR");
  EXPECT_EQ(modality_from_channel_name("FLAIR"), "MR");
  EXPECT_EQ(modality_from_channel_name("ct"), "CT");
  EXPECT_EQ(modality_from_channel_name("contrast"), "");  // "ct" inside a word does not count
  EXPECT_EQ(modality_from_channel_name("channel0"), "");
}

TEST(Planner, MixedModalities_NoPlansModalityUnlessOverridden) {
  const auto f = fingerprint({128, 128, 64}, {1, 1, 1}, {"CT", "PET"});
  Plans p = plan_from_fingerprint(f, {});
  EXPECT_EQ(p.modality, "");
  EXPECT_EQ(p.channels[1].normalization.scheme, imaging::NormalizationScheme::None);  // SUV kept
  p = plan_from_fingerprint(f, {"x", "auto", "PET"});
  EXPECT_EQ(p.modality, "PT");
}
