#include "tumorlab/model/fingerprint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/model/planner.h"

using namespace tumorlab;
using namespace tumorlab::model;
namespace fs = std::filesystem;

namespace {

// Two cases, 4 x 4 x 2 voxels at 1 x 1 x 2 mm (0.002 mL per voxel), channels "FLAIR" (uint8) and
// "T1" (float32, same values, so the histogram and the sorting paths must agree).
//   case_a: values 0..31 in scan order; label at voxels 0 and 1 (one lesion of 2) and 31 (a lesion of 1).
//   case_b: every value 10; no label.
void write_tiny_dataset(const fs::path& root) {
  fs::create_directories(root / "imagesTr");
  fs::create_directories(root / "labelsTr");
  std::ofstream(root / "dataset.json") << R"({"channel_names": {"0": "FLAIR", "1": "T1"},
    "labels": {"background": 0, "tumor": 1}, "numTraining": 2, "file_ending": ".nii.gz"})";
  Geometry g;
  g.size = {4, 4, 2};
  g.spacing_mm = {1, 1, 2};
  for (const char* id : {"case_a", "case_b"}) {
    const bool a = std::string(id) == "case_a";
    Volume u8(g, PixelType::UInt8);
    Volume f32(g, PixelType::Float32);
    LabelMap label(g);
    for (int i = 0; i < 32; ++i) {
      u8.data<uint8_t>()[i] = static_cast<uint8_t>(a ? i : 10);
      f32.data<float>()[i] = a ? static_cast<float>(i) : 10.f;
    }
    if (a) label.voxels()[0] = label.voxels()[1] = label.voxels()[31] = 1;
    io::write_image(u8, root / "imagesTr" / (std::string(id) + "_0000.nii.gz"));
    io::write_image(f32, root / "imagesTr" / (std::string(id) + "_0001.nii.gz"));
    io::write_label(label, root / "labelsTr" / (std::string(id) + ".nii.gz"));
  }
}

void expect_stats(const IntensityStats& s, int64_t count, double min, double max, double p005, double p50, double p995,
                  double mean, double std, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(s.count, count);
  EXPECT_DOUBLE_EQ(s.min, min);
  EXPECT_DOUBLE_EQ(s.max, max);
  EXPECT_NEAR(s.percentile_00_5, p005, 1e-9);
  EXPECT_NEAR(s.percentile_50_0, p50, 1e-9);
  EXPECT_NEAR(s.percentile_99_5, p995, 1e-9);
  EXPECT_NEAR(s.mean, mean, 1e-9);
  EXPECT_NEAR(s.std, std, 1e-9);
}

}  // namespace

TEST(Fingerprint, TinyDataset_ExactNumbers) {
  tumorlab::testing::TempDir dir;
  write_tiny_dataset(dir.path());
  const auto ds = io::read_nnunet_dataset(dir.path());
  int calls = 0;
  const DatasetFingerprint f = compute_fingerprint(ds, 2, [&](int done, int total) {
    ++calls;
    EXPECT_EQ(total, 2);
    EXPECT_LE(done, 2);
  });
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(f.cases.size(), 2u);
  ASSERT_EQ(f.channels.size(), 2u);
  EXPECT_FALSE(f.is_2d);
  EXPECT_EQ(f.median_spacing_mm, (Vec3{1, 1, 2}));
  EXPECT_EQ(f.median_size, (std::array<double, 3>{4, 4, 2}));

  const CaseFingerprint& a = f.cases[0];
  EXPECT_EQ(a.id, "case_a");
  EXPECT_EQ(a.size, (Size3{4, 4, 2}));
  EXPECT_EQ(a.pixel_type, "uint8");
  EXPECT_EQ(a.foreground_voxels, 3);
  EXPECT_DOUBLE_EQ(a.foreground_fraction, 3.0 / 32);
  EXPECT_EQ(a.lesion_voxels, (std::vector<int64_t>{2, 1}));
  ASSERT_EQ(a.lesion_ml.size(), 2u);
  EXPECT_NEAR(a.lesion_ml[0], 0.004, 1e-12);
  EXPECT_NEAR(a.lesion_ml[1], 0.002, 1e-12);
  // values 0..31: p0.5 at position 0.155, p99.5 at 30.845; std = sqrt((32^2 - 1) / 12)
  for (int c = 0; c < 2; ++c) {
    expect_stats(a.all[static_cast<std::size_t>(c)], 32, 0, 31, 0.155, 15.5, 30.845, 15.5, std::sqrt(85.25),
                 "case_a all, channel " + std::to_string(c));
    // foreground {0, 1, 31}: p0.5 at 0.01, median 1, p99.5 at 1.99 -> 1 + 0.99 * 30
    const double m = 32.0 / 3;
    const double sd = std::sqrt((m * m + (1 - m) * (1 - m) + (31 - m) * (31 - m)) / 3);
    expect_stats(a.foreground[static_cast<std::size_t>(c)], 3, 0, 31, 0.01, 1, 30.7, m, sd,
                 "case_a foreground, channel " + std::to_string(c));
  }
  const CaseFingerprint& b = f.cases[1];
  EXPECT_EQ(b.foreground_voxels, 0);
  EXPECT_TRUE(b.lesion_voxels.empty());
  EXPECT_EQ(b.foreground[0].count, 0);
  EXPECT_TRUE(std::isnan(b.foreground[0].mean));
  expect_stats(b.all[0], 32, 10, 10, 10, 10, 10, 10, 0, "case_b all");

  // Pooled over both cases (tiny cases contribute every voxel): 0..31 and 32 x 10.
  // Sorted: 0..9 (positions 0-9), 33 tens (10-42), 11..31 (43-63). p50 at 31.5 -> 10;
  // p0.5 at 0.315 -> 0.315; p99.5 at 62.685 -> 30.685.
  for (int c = 0; c < 2; ++c) {
    const ChannelFingerprint& ch = f.channels[static_cast<std::size_t>(c)];
    const double mean = (496.0 + 320.0) / 64;
    double ss = 32 * (10 - mean) * (10 - mean);
    for (int i = 0; i < 32; ++i) ss += (i - mean) * (i - mean);
    expect_stats(ch.all, 64, 0, 31, 0.315, 10, 30.685, mean, std::sqrt(ss / 64), "pooled all");
    EXPECT_EQ(ch.foreground.count, 3);
    EXPECT_NEAR(ch.foreground.percentile_99_5, 30.7, 1e-9);
  }
  EXPECT_EQ(f.channels[0].name, "FLAIR");
  EXPECT_EQ(f.channels[1].name, "T1");
  EXPECT_EQ(f.channels[1].pixel_type, "uint8");  // of the first case's channel 0 file

  EXPECT_EQ(f.cases_with_foreground, 1);
  EXPECT_DOUBLE_EQ(f.mean_foreground_fraction, 3.0 / 64);
  EXPECT_DOUBLE_EQ(f.median_foreground_fraction, 3.0 / 32);
  EXPECT_EQ(f.lesion_count, 2);
  EXPECT_EQ(f.cases_with_lesions, 1);
  EXPECT_DOUBLE_EQ(f.lesion_voxels.min, 1);
  EXPECT_DOUBLE_EQ(f.lesion_voxels.median, 1.5);
  EXPECT_DOUBLE_EQ(f.lesion_voxels.max, 2);
  EXPECT_NEAR(f.lesion_ml.min, 0.002, 1e-12);
  EXPECT_NEAR(f.lesion_ml.max, 0.004, 1e-12);
}

TEST(Fingerprint, JsonRoundTrip_KeepsNumbersAndNulls) {
  tumorlab::testing::TempDir dir;
  write_tiny_dataset(dir / "ds");
  const DatasetFingerprint f = compute_fingerprint(io::read_nnunet_dataset(dir / "ds"), 1);
  save_fingerprint(f, dir / "fingerprint.json");
  const DatasetFingerprint g = load_fingerprint(dir / "fingerprint.json");
  EXPECT_EQ(to_json(f), to_json(g));
  EXPECT_TRUE(std::isnan(g.cases[1].foreground[0].mean));  // written as null
  EXPECT_EQ(to_json(f)["cases"][1]["channels_foreground"][0]["mean"], nullptr);

  auto j = to_json(f);
  j["version"] = 7;
  EXPECT_THROW(fingerprint_from_json(j), Error);
  j = to_json(f);
  j.erase("lesions");
  try {
    fingerprint_from_json(j);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidDataset);
    EXPECT_NE(std::string(e.what()).find("lesions"), std::string::npos) << e.what();
  }
}

TEST(Fingerprint, ChannelOnAnotherGrid_IsInvalidDatasetNamingTheFile) {
  tumorlab::testing::TempDir dir;
  write_tiny_dataset(dir.path());
  Geometry g;
  g.size = {4, 4, 3};
  io::write_image(Volume(g, PixelType::Float32), dir / "imagesTr" / "case_b_0001.nii.gz");
  try {
    compute_fingerprint(io::read_nnunet_dataset(dir.path()), 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidDataset);
    EXPECT_NE(std::string(e.what()).find("case_b_0001"), std::string::npos) << e.what();
  }
}

// ---- Shared data: the two real datasets fingerprint quickly and plan to sane values. ----

TEST(FingerprintSharedData, Dataset001_MipPet_Plans2DInvertedPT) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto ds = io::read_nnunet_dataset(tumorlab::testing::shared_data_dir() / "Dataset001_MIPPET");
  const DatasetFingerprint f = compute_fingerprint(ds, 2);
  EXPECT_EQ(f.cases.size(), 568u);
  EXPECT_TRUE(f.is_2d);
  EXPECT_EQ(f.cases_with_foreground, 142);
  EXPECT_GT(f.lesion_count, 142);
  EXPECT_DOUBLE_EQ(f.median_size[0], 400);
  const Plans p = plan_from_fingerprint(f, {"mip-pet-2d", "auto", ""});
  EXPECT_EQ(p.dims(), 2);
  EXPECT_EQ(p.modality, "PT");
  ASSERT_EQ(p.channels.size(), 1u);
  EXPECT_TRUE(p.channels[0].invert);
  EXPECT_EQ(p.channels[0].normalization.scheme, imaging::NormalizationScheme::ZScore);
  EXPECT_EQ(p.patch_size[2], 1);
  EXPECT_LE(static_cast<long>(p.patch_size[0]) * p.patch_size[1], kPatchVoxelBudget2D);
  EXPECT_GE(p.patch_size[0], 128);
  EXPECT_GE(p.patch_size[1], 256);
  EXPECT_GE(p.batch_size, 8);
  EXPECT_GE(p.network.features.size(), 5u);
}

TEST(FingerprintSharedData, Dataset002_LggFlair_Plans3DTwoMrChannels) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto ds = io::read_nnunet_dataset(tumorlab::testing::shared_data_dir() / "Dataset002_LGGFLAIR");
  const DatasetFingerprint f = compute_fingerprint(ds, 2);
  EXPECT_EQ(f.cases.size(), 60u);
  EXPECT_FALSE(f.is_2d);
  EXPECT_EQ(f.channels.size(), 2u);
  EXPECT_GT(f.cases_with_foreground, 50);
  const Plans p = plan_from_fingerprint(f, {"lgg-flair-3d", "auto", ""});
  EXPECT_EQ(p.dims(), 3);
  EXPECT_EQ(p.modality, "MR");
  ASSERT_EQ(p.channels.size(), 2u);
  for (const auto& c : p.channels) {
    EXPECT_EQ(c.normalization.scheme, imaging::NormalizationScheme::ZScore);
    EXPECT_EQ(c.foreground, "above_zero");
    EXPECT_FALSE(c.invert);
  }
  EXPECT_LE(static_cast<long>(p.patch_size[0]) * p.patch_size[1] * p.patch_size[2], kPatchVoxelBudget3D);
  EXPECT_GE(p.patch_size[2], 8);
  EXPECT_EQ(p.batch_size, 2);
}
