// `tumorlab plan` run as a user would: a tiny synthetic nnU-Net dataset -> fingerprint.json and
// plans.json that load as valid plans; bad options exit 2; a saved fingerprint is reused.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "test_support.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/plans.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using namespace tumorlab::testing::cli;

// Three 2D cases 40 x 60 (uint8 PNG, white background, a dark "lesion" in two of them).
void write_png_dataset(const fs::path& root) {
  fs::create_directories(root / "imagesTr");
  fs::create_directories(root / "labelsTr");
  std::ofstream(root / "dataset.json") << R"({"channel_names": {"0": "PET-MIP"},
    "labels": {"background": 0, "tumor": 1}, "numTraining": 3, "file_ending": ".png"})";
  Geometry g;
  g.size = {40, 60, 1};
  for (int c = 0; c < 3; ++c) {
    Volume img(g, PixelType::UInt8);
    LabelMap label(g);
    for (int64_t i = 0; i < img.voxel_count(); ++i) img.data<uint8_t>()[i] = 255;
    for (int j = 20; j < 40; ++j)
      for (int i = 10; i < 30; ++i) img.data<uint8_t>()[img.linear_index(i, j, 0)] = 180;  // body
    if (c > 0) {
      for (int j = 25; j < 28; ++j)
        for (int i = 15; i < 18; ++i) {
          img.data<uint8_t>()[img.linear_index(i, j, 0)] = 20;
          label.at(i, j, 0) = 1;
        }
    }
    const std::string id = "case_" + std::to_string(c);
    io::write_image(img, root / "imagesTr" / (id + "_0000.png"));
    io::write_label(label, root / "labelsTr" / (id + ".png"));
  }
}

}  // namespace

TEST(PlanCli, PngDataset_WritesValidPlansAndFingerprint) {
  TempDir dir;
  write_png_dataset(dir / "Dataset100_Tiny");
  const fs::path out = dir / "model" / "plans.json";
  const Result r = run("plan " + quote((dir / "Dataset100_Tiny").string()) + " -o " + quote(out.string()) +
                       " --name tiny --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2D"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("3/3 cases"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(dir / "model" / "fingerprint.json"));
  const model::Plans p = model::load_plans(out);
  EXPECT_EQ(p.name, "tiny");
  EXPECT_EQ(p.dims(), 2);
  EXPECT_EQ(p.modality, "PT");
  EXPECT_EQ(p.file_ending, ".png");
  ASSERT_EQ(p.channels.size(), 1u);
  EXPECT_TRUE(p.channels[0].invert);
  EXPECT_EQ(p.patch_size[2], 1);

  std::ifstream in(dir / "model" / "fingerprint.json");
  const auto f = nlohmann::json::parse(in);
  EXPECT_EQ(f["num_cases"], 3);
  EXPECT_EQ(f["lesions"]["count"], 2);
  EXPECT_EQ(f["foreground"]["cases_with_foreground"], 2);

  // Reusing the fingerprint (no image is read): same plans.
  const fs::path out2 = dir / "again" / "plans.json";
  const Result r2 = run("plan -q " + quote((dir / "Dataset100_Tiny").string()) + " -o " + quote(out2.string()) +
                        " --name tiny --fingerprint " + quote((dir / "model" / "fingerprint.json").string()));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, "");
  EXPECT_EQ(model::to_json(model::load_plans(out2)), model::to_json(p));
}

TEST(PlanCli, BadInput_ExitCode2) {
  TempDir dir;
  write_png_dataset(dir / "ds");
  Result r = run("plan " + quote((dir / "ds").string()) + " -o " + quote((dir / "p.json").string()) + " --dims 3d");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("2D"), std::string::npos) << r.err;
  r = run("plan " + quote((dir / "missing").string()) + " -o " + quote((dir / "p.json").string()));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run("plan " + quote((dir / "ds").string()) + " -o " + quote((dir / "p.json").string()) + " --dims 4d");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(fs::exists(dir / "p.json"));
}

TEST(PlanCli, HelpDescribesTheVerb) {
  const Result r = run("plan --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--fingerprint"), std::string::npos);
  EXPECT_NE(r.out.find("docs/planning.md"), std::string::npos);
}
