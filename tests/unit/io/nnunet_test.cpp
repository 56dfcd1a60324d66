#include "tumorlab/io/nnunet.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {
void make_dataset(const fs::path& root, int cases, int channels, bool with_labels = true) {
  fs::create_directories(root / "imagesTr");
  fs::create_directories(root / "labelsTr");
  std::ofstream(root / "dataset.json") << R"({"channel_names": {"0": "FLAIR", "1": "T1c"},
    "labels": {"background": 0, "tumor": 1}, "numTraining": )" << cases << R"(, "file_ending": ".nii.gz",
    "name": "Tiny"})";
  Geometry g;
  g.size = {4, 4, 2};
  for (int c = 0; c < cases; ++c) {
    const std::string id = "case_" + std::to_string(c);
    for (int ch = 0; ch < channels; ++ch) {
      char suffix[8];
      std::snprintf(suffix, sizeof suffix, "_%04d", ch);
      io::write_image(Volume(g, PixelType::UInt8), root / "imagesTr" / (id + suffix + ".nii.gz"));
    }
    if (with_labels) io::write_label(LabelMap(g), root / "labelsTr" / (id + ".nii.gz"));
  }
}
ErrorCode code_of(const fs::path& root) {
  try {
    io::read_nnunet_dataset(root);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;
}
}  // namespace

TEST(Nnunet, ReadsSyntheticDataset_GroupsChannels) {
  TempDir dir;
  make_dataset(dir.path(), 3, 2);
  const auto d = io::read_nnunet_dataset(dir.path());
  EXPECT_EQ(d.name, "Tiny");
  EXPECT_EQ(d.channel_names, (std::vector<std::string>{"FLAIR", "T1c"}));
  EXPECT_EQ(d.labels.at("tumor"), 1);
  ASSERT_EQ(d.training.size(), 3u);
  EXPECT_EQ(d.training[1].id, "case_1");
  ASSERT_EQ(d.training[1].channels.size(), 2u);
  EXPECT_EQ(d.training[1].channels[0].filename(), "case_1_0000.nii.gz");
  EXPECT_EQ(d.training[1].channels[1].filename(), "case_1_0001.nii.gz");
  EXPECT_EQ(d.training[1].label.filename(), "case_1.nii.gz");
}

TEST(Nnunet, BadInput_MissingChannelLabelOrJson) {
  TempDir dir;
  make_dataset(dir.path(), 2, 2);
  fs::remove(dir / "imagesTr/case_1_0001.nii.gz");
  EXPECT_EQ(code_of(dir.path()), ErrorCode::InvalidDataset);

  TempDir dir2;
  make_dataset(dir2.path(), 2, 2);
  fs::remove(dir2 / "labelsTr/case_0.nii.gz");
  EXPECT_EQ(code_of(dir2.path()), ErrorCode::InvalidDataset);

  TempDir dir3;
  make_dataset(dir3.path(), 2, 2);
  std::ofstream(dir3 / "dataset.json") << "{ not json";
  EXPECT_EQ(code_of(dir3.path()), ErrorCode::InvalidDataset);

  TempDir dir4;
  EXPECT_EQ(code_of(dir4.path()), ErrorCode::InvalidDataset);
  EXPECT_EQ(code_of(dir4 / "absent"), ErrorCode::FileNotFound);
}

TEST(Nnunet, SharedMipPet_568CasesOneChannel) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto d = io::read_nnunet_dataset(tumorlab::testing::shared_data_dir() / "Dataset001_MIPPET");
  EXPECT_EQ(d.file_ending, ".png");
  EXPECT_EQ(d.channel_names, (std::vector<std::string>{"PET-MIP"}));
  EXPECT_EQ(d.training.size(), 568u);
  int patients = 0;
  for (const auto& c : d.training) {
    ASSERT_EQ(c.channels.size(), 1u);
    ASSERT_FALSE(c.label.empty());
    patients += c.id.rfind("patient_", 0) == 0;
  }
  EXPECT_EQ(patients, 142);
  // One case end to end: the label is on the image's grid.
  const Volume img = io::read_image(d.training.front().channels[0]);
  EXPECT_EQ(img.geometry().size[0], 400);
  EXPECT_EQ(img.geometry().size[2], 1);
  EXPECT_NO_THROW(io::read_label(d.training.front().label, &img.geometry()));
}

TEST(Nnunet, SharedLggFlair_60CasesTwoChannelsOnOneGrid) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto d = io::read_nnunet_dataset(tumorlab::testing::shared_data_dir() / "Dataset002_LGGFLAIR");
  EXPECT_EQ(d.channel_names, (std::vector<std::string>{"FLAIR", "T1 post-contrast"}));
  ASSERT_EQ(d.training.size(), 60u);
  for (const auto& c : {d.training.front(), d.training.back()}) {
    ASSERT_EQ(c.channels.size(), 2u);
    const Volume flair = io::read_image(c.channels[0]);
    const Volume t1c = io::read_image(c.channels[1]);
    EXPECT_EQ(flair.geometry().size[0], 256);
    EXPECT_EQ(flair.geometry().size[1], 256);
    EXPECT_GE(flair.geometry().size[2], 20);
    EXPECT_LE(flair.geometry().size[2], 88);
    EXPECT_TRUE(flair.geometry().same_grid(t1c.geometry()));
    const LabelMap label = io::read_label(c.label, &flair.geometry());
    EXPECT_GT(label.count_nonzero(), 0) << c.id;
  }
}
