// `tumorlab demo-data`: the real binary writes two nnU-Net datasets; same seed -> same bytes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"

namespace {

namespace fs = std::filesystem;
using tumorlab::testing::TempDir;

int run(const std::string& args) {
  const std::string cmd = std::string(TUMORLAB_CLI) + " demo-data " + args + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(DemoDataCli, WritesTwoDatasetsDeterministically) {
  TempDir tmp;
  ASSERT_EQ(run("'" + (tmp / "a").string() + "' --seed 5 --brain-cases 1 --pet-cases 2"), 0);
  ASSERT_EQ(run("'" + (tmp / "b").string() + "' --seed 5 --brain-cases 1 --pet-cases 2"), 0);
  ASSERT_EQ(run("'" + (tmp / "c").string() + "' --seed 6 --brain-cases 1 --pet-cases 0"), 0);
  const fs::path brain = tmp / "a" / "Dataset901_DEMO_BrainMR";
  const fs::path pet = tmp / "a" / "Dataset902_DEMO_PetMip";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(tmp / "a")) {
    if (!e.is_regular_file()) continue;
    ++files;
    const fs::path other = tmp / "b" / fs::relative(e.path(), tmp / "a");
    EXPECT_EQ(bytes(e.path()), bytes(other)) << e.path().filename();
  }
  EXPECT_EQ(files, 3 + 1 + 4 + 1);
  EXPECT_NE(bytes(brain / "imagesTr" / "DEMO-brain-5_0000.nii.gz"),
            bytes(tmp / "c" / "Dataset901_DEMO_BrainMR" / "imagesTr" / "DEMO-brain-6_0000.nii.gz"));
  EXPECT_FALSE(fs::exists(tmp / "c" / "Dataset902_DEMO_PetMip"));

  const auto j = nlohmann::json::parse(bytes(brain / "dataset.json"));
  EXPECT_TRUE(j["synthetic"].get<bool>());
  EXPECT_NE(j["description"].get<std::string>().find("SYNTHETIC"), std::string::npos);
  EXPECT_EQ(j["channel_names"]["0"], "FLAIR");
  EXPECT_EQ(j["channel_names"]["1"], "T1 post-contrast");

  // Read back through our readers: geometry as Dataset002 (LPS identity, 1 mm), labels on the grid.
  const tumorlab::Volume flair = tumorlab::io::read_image(brain / "imagesTr" / "DEMO-brain-5_0000.nii.gz");
  EXPECT_EQ(flair.geometry().size, (tumorlab::Size3{256, 256, 28}));
  EXPECT_EQ(flair.geometry().direction, (tumorlab::Matrix3{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(flair.pixel_type(), tumorlab::PixelType::UInt8);
  const tumorlab::LabelMap label =
      tumorlab::io::read_label(brain / "labelsTr" / "DEMO-brain-5.nii.gz", &flair.geometry());
  EXPECT_GT(label.count(1), 0);
  const tumorlab::Volume mip = tumorlab::io::read_image(pet / "imagesTr" / "DEMO-pet-6_0000.png");
  EXPECT_EQ(mip.geometry().size, (tumorlab::Size3{400, 900, 1}));
  EXPECT_GT(tumorlab::io::read_label(pet / "labelsTr" / "DEMO-pet-6.png", &mip.geometry()).count(1), 0);

  // Both are valid nnU-Net raw datasets for our reader.
  EXPECT_NO_THROW(tumorlab::io::read_nnunet_dataset(brain));
  EXPECT_NO_THROW(tumorlab::io::read_nnunet_dataset(pet));
  EXPECT_EQ(run("'" + (tmp / "d").string() + "' --brain-cases 50"), 2);
}

}  // namespace
