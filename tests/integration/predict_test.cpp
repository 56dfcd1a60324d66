// `tumorlab predict` run as a user would, with untrained (random-weight) bundles: outputs named
// after the cases, exactly on the input grids, PNG labels 0/1, uncertainty maps and scores.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "test_support.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using namespace tumorlab::testing::cli;

model::Plans plans(int dims, int channels = 1) {
  model::Plans p;
  p.name = dims == 2 ? "cli-2d" : "cli-3d";
  for (int c = 0; c < channels; ++c) {
    model::ChannelPlan ch;
    ch.name = "ch" + std::to_string(c);
    ch.normalization.scheme = imaging::NormalizationScheme::ZScore;
    ch.foreground = "all";
    p.channels.push_back(ch);
  }
  p.network.dims = dims;
  p.network.features = {4, 8};
  p.network.deep_supervision = false;
  if (dims == 2) {
    p.network.strides = {{2, 2, 1}};
    p.patch_size = {32, 32, 1};
    p.target_spacing_mm = {1, 1, 1};
  } else {
    p.network.strides = {{2, 2, 2}};
    p.patch_size = {16, 16, 8};
    p.target_spacing_mm = {1, 1, 2};
  }
  return p;
}

Volume pattern(const Geometry& g, PixelType type) {
  Volume v(g, PixelType::Float32);
  for (int64_t i = 0; i < v.voxel_count(); ++i) v.data<float>()[i] = static_cast<float>((i * 37) % 251);
  return v.as_type(type);
}

Geometry oblique() {
  Geometry g;
  g.size = {30, 26, 9};
  g.spacing_mm = {0.9, 1.2, 2.5};
  g.origin_lps = {-20.5, 10.25, 33};
  const double a = 0.4, c = std::cos(a), s = std::sin(a);
  g.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  return g;
}

}  // namespace

TEST(PredictCli, Help_ListsOptions) {
  const Result r = run("predict --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* o : {"--model", "--uncertainty", "--probabilities", "--tta", "--roi", "--threads", "--bf16", "--fp32", "Exit codes"})
    EXPECT_NE(r.out.find(o), std::string::npos) << o;
}

TEST(PredictCli, NiftiAndPng_OutputsNamedAfterCasesOnTheInputGrid) {
  TempDir dir;
  model::write_untrained_bundle(dir / "m3d", plans(3), 1);
  model::write_untrained_bundle(dir / "m2d", plans(2), 1);
  io::write_image(pattern(oblique(), PixelType::Int16), dir / "brain_01.nii.gz");
  Geometry g2;
  g2.size = {50, 70, 1};
  io::write_image(pattern(g2, PixelType::UInt8), dir / "mip_7.png");

  Result r = run("predict -m " + quote((dir / "m3d").string()) + " " + quote((dir / "brain_01.nii.gz").string()) +
                 " -o " + quote((dir / "out").string()) + " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("brain_01"), std::string::npos) << r.out;
  const Volume input = io::read_image(dir / "brain_01.nii.gz");
  const LabelMap label = io::read_label(dir / "out/brain_01.nii.gz");
  EXPECT_TRUE(label.geometry().same_grid(input.geometry(), 1e-5)) << label.geometry().difference(input.geometry());

  r = run("predict -m " + quote((dir / "m2d").string()) + " " + quote((dir / "mip_7.png").string()) + " -o " +
          quote((dir / "out").string()) + " --tta");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir / "out/mip_7.png"));
  const Volume png = io::read_image(dir / "out/mip_7.png");
  EXPECT_EQ(png.pixel_type(), PixelType::UInt8);
  EXPECT_EQ(png.geometry().size, g2.size);
  const auto range = png.intensity_range();
  EXPECT_GE(range.first, 0);
  EXPECT_LE(range.second, 1);
  EXPECT_FALSE(fs::exists(dir / "out/scores.json"));  // only with --uncertainty
}

TEST(PredictCli, Probabilities_WrittenOnTheInputGrid_LabelIsTheirThreshold) {
  TempDir dir;
  model::write_untrained_bundle(dir / "m3d", plans(3), 3);
  io::write_image(pattern(oblique(), PixelType::Int16), dir / "brain_01.nii.gz");
  const Result r = run("predict -m " + quote((dir / "m3d").string()) + " " + quote((dir / "brain_01.nii.gz").string()) +
                       " -o " + quote((dir / "out").string()) + " --threads 1 --probabilities");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Volume input = io::read_image(dir / "brain_01.nii.gz");
  const LabelMap label = io::read_label(dir / "out/brain_01.nii.gz");
  const Volume p = io::read_image(dir / "out/brain_01_probability.nii.gz");
  EXPECT_EQ(p.pixel_type(), PixelType::Float32);
  EXPECT_TRUE(p.geometry().same_grid(input.geometry(), 1e-5)) << p.geometry().difference(input.geometry());
  const auto range = p.intensity_range();
  EXPECT_GE(range.first, 0.0);
  EXPECT_LE(range.second, 1.0);
  EXPECT_LT(range.first, range.second);  // a map, not a constant
  // No small-lesion removal in these plans: the label is the probability thresholded.
  const double threshold = plans(3).inference.threshold;
  int64_t mismatches = 0;
  for (int64_t v = 0; v < p.voxel_count(); ++v)
    mismatches += (p.data<float>()[v] >= threshold) != (label.data()[v] != 0);
  EXPECT_EQ(mismatches, 0);
  EXPECT_FALSE(fs::exists(dir / "out/brain_01_uncertainty.nii.gz"));  // only with --uncertainty
}

TEST(PredictCli, Uncertainty_WritesMapsAndRankedScores) {
  TempDir dir;
  model::write_untrained_bundle(dir / "m2d", plans(2), 2);
  fs::create_directories(dir / "imagesTs");
  Geometry g;
  g.size = {40, 36, 1};
  for (const char* c : {"case_a", "case_b"}) {
    io::write_image(pattern(g, PixelType::UInt8), dir / "imagesTs" / (std::string(c) + "_0000.png"));
  }
  const Result r = run("predict -m " + quote((dir / "m2d").string()) + " " + quote((dir / "imagesTs").string()) +
                       " -o " + quote((dir / "out").string()) + " --uncertainty --roi 5,5,0,30,30,1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* c : {"case_a", "case_b"}) {
    ASSERT_TRUE(fs::exists(dir / "out" / (std::string(c) + ".png"))) << c;
    const Volume u = io::read_image(dir / "out" / (std::string(c) + "_uncertainty.nii.gz"));
    EXPECT_EQ(u.pixel_type(), PixelType::Float32);
    EXPECT_EQ(u.geometry().size, g.size);
    const auto range = u.intensity_range();
    EXPECT_GE(range.first, 0.0);
    EXPECT_LE(range.second, 1.0);
    EXPECT_EQ(u.value(u.linear_index(35, 35, 0)), 0.0);  // outside the ROI
  }
  std::ifstream in(dir / "out/scores.json");
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["cases"].size(), 2u);
  EXPECT_EQ(j["cases"][0]["rank"], 1);
  EXPECT_GE(j["cases"][0]["score"].get<double>(), j["cases"][1]["score"].get<double>());
  std::ifstream csv(dir / "out/scores.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "case,score,foreground_voxels,volume_ml,seconds");
}

TEST(PredictCli, Bf16_FlagsOverrideThePlansDefault_ReportedInOutputAndTimings) {
  TempDir dir;
  model::Plans p = plans(3);
  p.inference.bf16 = true;
  model::write_untrained_bundle(dir / "m", p, 1);
  io::write_image(pattern(oblique(), PixelType::Int16), dir / "brain.nii.gz");
  auto timings_bf16 = [&](const std::string& flag, std::string* out) {
    const fs::path t = dir / ("t" + flag + ".json");
    const Result r = run("predict -m " + quote((dir / "m").string()) + " " + quote((dir / "brain.nii.gz").string()) +
                         " -o " + quote((dir / "out").string()) + " --threads 1 --timings " + quote(t.string()) + " " +
                         flag);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    *out = r.out;
    std::ifstream in(t);
    return nlohmann::json::parse(in)["bf16"].get<bool>();
  };
  std::string out;
  EXPECT_FALSE(timings_bf16("--fp32", &out));
  EXPECT_EQ(out.find(", bf16)"), std::string::npos) << out;
  EXPECT_TRUE(timings_bf16("--bf16", &out));
  EXPECT_NE(out.find(", bf16)"), std::string::npos) << out;

  const Result both = run("predict -m " + quote((dir / "m").string()) + " " + quote((dir / "brain.nii.gz").string()) +
                          " -o " + quote((dir / "out").string()) + " --bf16 --fp32");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("--fp32"), std::string::npos) << both.err;
}

TEST(PredictCli, BadModelOrInput_ExitTwoWithClearMessage) {
  TempDir dir;
  Geometry g;
  g.size = {40, 36, 1};
  io::write_image(pattern(g, PixelType::UInt8), dir / "a.png");
  Result r = run("predict -m no-such-model " + quote((dir / "a.png").string()) + " -o " + quote((dir / "out").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no-such-model"), std::string::npos) << r.err;

  model::write_untrained_bundle(dir / "two", plans(2, 2), 1);
  r = run("predict -m " + quote((dir / "two").string()) + " " + quote((dir / "a.png").string()) + " -o " +
          quote((dir / "out").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("channel"), std::string::npos) << r.err;

  model::write_untrained_bundle(dir / "m3d", plans(3), 1);
  r = run("predict -m " + quote((dir / "m3d").string()) + " " + quote((dir / "a.png").string()) + " -o " +
          quote((dir / "out").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("2D"), std::string::npos) << r.err;

  r = run("predict -m " + quote((dir / "m3d").string()) + " " + quote((dir / "a.png").string()) + " -o " +
          quote((dir / "out").string()) + " --roi 1,2,3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--roi"), std::string::npos) << r.err;
}

// `tumorlab ensemble` writes a bundle that `predict` runs (the mean of the members is checked in
// tests/unit/model/predictor_test.cpp); refusals exit 2 naming the problem.
TEST(EnsembleCli, TwoBundles_PredictRuns_MismatchAndOneBundleExitTwo) {
  TempDir dir;
  model::write_untrained_bundle(dir / "a", plans(2), 1);
  model::write_untrained_bundle(dir / "b", plans(2), 2);
  Result r = run("ensemble " + quote((dir / "a").string()) + " " + quote((dir / "b").string()) + " -o " +
                 quote((dir / "ab").string()) + " --model-version 7");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const model::BundleMetadata m = model::read_bundle_metadata(dir / "ab");
  EXPECT_EQ(m.version, "7");
  EXPECT_EQ(m.weights.size(), 2u);
  Geometry g;
  g.size = {50, 70, 1};
  io::write_image(pattern(g, PixelType::UInt8), dir / "mip_3.png");
  r = run("predict -m " + quote((dir / "ab").string()) + " " + quote((dir / "mip_3.png").string()) + " -o " +
          quote((dir / "out").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::read_image(dir / "out/mip_3.png").geometry().size, g.size);

  r = run("ensemble " + quote((dir / "a").string()) + " -o " + quote((dir / "one").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("two or more"), std::string::npos) << r.err;
  model::write_untrained_bundle(dir / "m3d", plans(3), 1);
  r = run("ensemble " + quote((dir / "a").string()) + " " + quote((dir / "m3d").string()) + " -o " +
          quote((dir / "mixed").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("differs from"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "mixed"));
}
