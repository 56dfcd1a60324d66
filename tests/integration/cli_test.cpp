// The real `tumorlab` binary, run as a user would: help, info, convert, evaluate, exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "test_support.h"
#include "tumorlab/io/image_io.h"

using namespace tumorlab;
using tumorlab::testing::shared_data_dir;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using namespace tumorlab::testing::cli;

nlohmann::json info_json(const fs::path& path) {
  const Result r = run("info --json " + quote(path.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

Volume small_volume(int fill_from = 0) {
  Geometry g;
  g.size = {12, 10, 6};
  g.spacing_mm = {0.9, 0.9, 2.5};
  g.origin_lps = {-5, 3, 40};
  Volume v(g, PixelType::UInt8);
  for (int64_t i = fill_from; i < v.voxel_count(); i += 7) v.data<uint8_t>()[i] = 1;
  return v;
}

}  // namespace

TEST(Cli, HelpOnEveryVerb_ExitZero) {
  for (const char* verb : {"", "info ", "convert ", "evaluate ", "train ", "predict "}) {
    const Result r = run(std::string(verb) + "--help");
    EXPECT_EQ(r.exit_code, 0) << verb;
    EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << verb << r.out;
  }
  EXPECT_NE(run("evaluate --help").out.find("--pred"), std::string::npos);
  EXPECT_NE(run("train --help").out.find("--fp32"), std::string::npos);
  EXPECT_NE(run("train --help").out.find("--folds"), std::string::npos);
  EXPECT_EQ(run("--version").exit_code, 0);
}

TEST(Cli, UnknownVerbOrMissingArgument_ExitTwo) {
  EXPECT_EQ(run("frobnicate").exit_code, 2);
  EXPECT_EQ(run("info").exit_code, 2);
  EXPECT_EQ(run("evaluate --pred x").exit_code, 2);
  const Result both = run("train data -p plans.json -o run --bf16 --fp32");
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--fp32"), std::string::npos) << both.err;
  const Result fold_alone = run("train data -p plans.json -o run --fold 1");  // --fold needs --folds
  EXPECT_EQ(fold_alone.exit_code, 2);
  EXPECT_NE(fold_alone.err.find("--folds"), std::string::npos) << fold_alone.err;
  EXPECT_EQ(run("train data -p plans.json -o run --folds 1").exit_code, 2);  // at least 2 folds
}

TEST(Cli, InfoJson_ReportsGeometryOfAFile) {
  TempDir dir;
  io::write_image(small_volume(), dir / "a.nii.gz");
  const auto j = info_json(dir / "a.nii.gz");
  ASSERT_EQ(j["images"].size(), 1u);
  const auto& im = j["images"][0];
  EXPECT_EQ(im["format"], "NIfTI");
  EXPECT_EQ(im["geometry"]["size"], (std::vector<int>{12, 10, 6}));
  EXPECT_NEAR(im["geometry"]["spacing_mm"][2].get<double>(), 2.5, 1e-6);
  EXPECT_NEAR(im["geometry"]["origin_lps"][2].get<double>(), 40, 1e-5);
  EXPECT_EQ(im["intensity_range"][0][1], 1);
  EXPECT_EQ(im["geometry"]["orientation"], "LPS");
}

TEST(Cli, Convert_NiftiToNrrdMhaKeepsGeometry) {
  TempDir dir;
  io::write_image(small_volume(), dir / "a.nii.gz");
  for (const char* out : {"b.nrrd", "b.mha"}) {
    const Result r = run("convert " + quote((dir / "a.nii.gz").string()) + " " + quote((dir / out).string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Volume back = io::read_image(dir / out);
    EXPECT_TRUE(back.geometry().same_grid(small_volume().geometry())) << out;
  }
}

TEST(Cli, Evaluate_PerfectAndShiftedPredictions) {
  TempDir dir;
  fs::create_directories(dir / "ref");
  fs::create_directories(dir / "pred");
  io::write_image(small_volume(), dir / "ref/c1.nii.gz");
  io::write_image(small_volume(), dir / "pred/c1.nii.gz");
  io::write_image(small_volume(0), dir / "ref/c2.nii.gz");
  io::write_image(small_volume(3), dir / "pred/c2.nii.gz");  // disjoint voxels: Dice 0
  const Result r = run("evaluate --pred " + quote((dir / "pred").string()) + " --ref " + quote((dir / "ref").string()) +
                       " --json " + quote((dir / "m.json").string()) + " --csv " + quote((dir / "m.csv").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(dir / "m.json");
  const auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["cases"].size(), 2u);
  EXPECT_EQ(j["cases"][0]["case"], "c1");
  EXPECT_DOUBLE_EQ(j["cases"][0]["metrics"]["dice"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["cases"][1]["metrics"]["dice"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["summary"]["dice"]["mean"].get<double>(), 0.5);
  EXPECT_EQ(j["worst_cases"][0], "c2");
  std::ifstream csv(dir / "m.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("case,dice,iou", 0), 0u) << header;
  EXPECT_NE(r.out.find("worst cases by Dice: c2 c1"), std::string::npos) << r.out;
}

TEST(Cli, Evaluate_RefusesPairsOnDifferentGrids) {
  TempDir dir;
  fs::create_directories(dir / "ref");
  fs::create_directories(dir / "pred");
  io::write_image(small_volume(), dir / "ref/c1.nii.gz");
  Volume moved = small_volume();
  Geometry g = moved.geometry();
  g.origin_lps[0] += 10;
  moved.set_geometry(g);
  io::write_image(moved, dir / "pred/c1.nii.gz");
  const Result r = run("evaluate --pred " + quote((dir / "pred").string()) + " --ref " + quote((dir / "ref").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("c1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("origin"), std::string::npos) << r.err;
}

TEST(Cli, Evaluate_MissingPredictionRefusedUnlessScoredEmpty) {
  TempDir dir;
  fs::create_directories(dir / "ref");
  fs::create_directories(dir / "pred");
  io::write_image(small_volume(), dir / "ref/c1.nii.gz");
  const std::string args = "evaluate --pred " + quote((dir / "pred").string()) + " --ref " + quote((dir / "ref").string());
  const Result r = run(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no prediction for 1 of 1"), std::string::npos) << r.err;
  EXPECT_EQ(run(args + " --missing-as-empty").exit_code, 0);
}

TEST(Cli, BadInput_ExitTwoNamingTheFile) {
  TempDir dir;
  io::write_image(small_volume(), dir / "ok.nii.gz");
  std::ifstream in(dir / "ok.nii.gz", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir / "cut.nii.gz", std::ios::binary).write(bytes.data(), 40);
  fs::create_directories(dir / "empty");
  fs::create_directories(dir / "text");
  std::ofstream(dir / "text/readme.txt") << "not an image";
  std::ofstream(dir / "text/data.bin") << "also not DICOM";
  for (const auto& [path, needle] : std::vector<std::pair<fs::path, std::string>>{
           {dir / "cut.nii.gz", "cut.nii.gz"}, {dir / "empty", "empty"}, {dir / "text", "text"},
           {dir / "missing.nii.gz", "missing.nii.gz"}}) {
    const Result r = run("info " + quote(path.string()));
    EXPECT_EQ(r.exit_code, 2) << path << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
  }
}

// ---- on the real data in ../shared/data ----

TEST(CliShared, InfoJson_DicomFoldersGeometry) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path dicom = shared_data_dir() / "dicom";
  {
    const auto j = info_json(dicom / "mr-brain-20slice");
    ASSERT_EQ(j["images"].size(), 1u);
    EXPECT_EQ(j["images"][0]["geometry"]["size"], (std::vector<int>{256, 256, 20}));
    EXPECT_EQ(j["images"][0]["modality"], "MR");
  }
  {
    const auto j = info_json(dicom / "mr-prostate-study");
    EXPECT_EQ(j["images"].size(), 7u);
  }
  {
    const auto j = info_json(dicom / "ct-3slice-liver-seg");
    int ct = 0, seg = 0;
    for (const auto& im : j["images"]) {
      if (im["modality"] == "CT") {
        ++ct;
        EXPECT_EQ(im["geometry"]["size"], (std::vector<int>{512, 512, 3}));
      }
      seg += im["modality"] == "SEG";
    }
    EXPECT_EQ(ct, 1);
    EXPECT_EQ(seg, 1);
  }
  for (const auto& e : fs::directory_iterator(dicom / "transfer-syntaxes")) {
    if (e.path().extension() != ".dcm") continue;
    const auto j = info_json(e.path());
    ASSERT_EQ(j["images"].size(), 1u) << e.path();
    EXPECT_FALSE(j["images"][0].contains("error")) << e.path() << j.dump();
  }
}

TEST(CliShared, InfoJson_DatasetsOneEntryPerCaseWithChannels) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const auto lgg = info_json(shared_data_dir() / "Dataset002_LGGFLAIR");
  EXPECT_EQ(lgg["kind"], "nnunet-dataset");
  ASSERT_EQ(lgg["images"].size(), 60u);
  for (const auto& im : lgg["images"]) {
    EXPECT_EQ(im["channels"], 2);
    EXPECT_EQ(im["geometry"]["size"][0], 256);
    EXPECT_TRUE(im["has_label"].get<bool>());
  }
  const auto mip = info_json(shared_data_dir() / "Dataset001_MIPPET");
  ASSERT_EQ(mip["images"].size(), 568u);
  EXPECT_EQ(mip["images"][0]["geometry"]["size"][0], 400);
  EXPECT_EQ(mip["images"][0]["geometry"]["size"][2], 1);
}

TEST(CliShared, Convert_DicomSeriesToNiftiKeepsGeometry) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir dir;
  const fs::path series = shared_data_dir() / "dicom" / "mr-brain-20slice";
  const Result r = run("convert " + quote(series.string()) + " " + quote((dir / "brain.nii.gz").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto from_dicom = info_json(series)["images"][0]["geometry"];
  const auto from_nifti = info_json(dir / "brain.nii.gz")["images"][0]["geometry"];
  EXPECT_EQ(from_dicom["size"], from_nifti["size"]);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(from_dicom["spacing_mm"][a].get<double>(), from_nifti["spacing_mm"][a].get<double>(), 1e-4);
    EXPECT_NEAR(from_dicom["origin_lps"][a].get<double>(), from_nifti["origin_lps"][a].get<double>(), 1e-3);
  }
  for (int e = 0; e < 9; ++e) {
    EXPECT_NEAR(from_dicom["direction"][e].get<double>(), from_nifti["direction"][e].get<double>(), 1e-5);
  }
  // Several series into a folder: one NIfTI per image series.
  const Result all = run("convert " + quote((shared_data_dir() / "dicom" / "mr-prostate-study").string()) + " " +
                         quote((dir / "prostate").string() + "/"));
  ASSERT_EQ(all.exit_code, 0) << all.err;
  int written = 0;
  for (const auto& e : fs::directory_iterator(dir / "prostate")) written += e.path().string().size() > 7;
  EXPECT_GE(written, 6);
}

TEST(CliShared, Convert_DicomSegToNiftiMatchesReferenceNrrd) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir dir;
  const fs::path folder = shared_data_dir() / "dicom" / "ct-3slice-liver-seg";
  const Result r = run("convert " + quote((folder / "liver-seg.dcm").string()) + " " +
                       quote((dir / "liver.nii.gz").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const LabelMap ref = io::read_label(folder / "liver-seg.nrrd");
  const LabelMap seg = io::read_label(dir / "liver.nii.gz", &ref.geometry());
  EXPECT_EQ(seg.voxels(), ref.voxels());
  EXPECT_GT(seg.count_nonzero(), 100000);
}

TEST(CliShared, Evaluate_DatasetLabelsAgainstThemselves_DiceOne) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  for (const char* ds : {"Dataset001_MIPPET", "Dataset002_LGGFLAIR"}) {
    TempDir dir;
    const fs::path labels = shared_data_dir() / ds / "labelsTr";
    const Result r = run("evaluate -q --pred " + quote(labels.string()) + " --ref " + quote(labels.string()) +
                         " --json " + quote((dir / "m.json").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(dir / "m.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_DOUBLE_EQ(j["summary"]["dice"]["mean"].get<double>(), 1.0) << ds;
    EXPECT_DOUBLE_EQ(j["summary"]["dice"]["min"].get<double>(), 1.0) << ds;
    EXPECT_DOUBLE_EQ(j["summary"]["hd95_mm"]["max"].get<double>(), 0.0) << ds;
    EXPECT_DOUBLE_EQ(j["summary"]["lesion_f1"]["min"].get<double>(), 1.0) << ds;
  }
}
