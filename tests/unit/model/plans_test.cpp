#include "tumorlab/model/plans.h"

#include <gtest/gtest.h>

#include "test_support.h"
#include "tumorlab/core/error.h"

using namespace tumorlab;
using namespace tumorlab::model;

namespace {
Plans example() {
  Plans p;
  p.name = "test-3d";
  p.modality = "MR";
  ChannelPlan flair;
  flair.name = "FLAIR";
  flair.normalization.scheme = imaging::NormalizationScheme::ZScore;
  p.channels = {flair};
  p.network.dims = 3;
  p.network.features = {8, 16, 32};
  p.network.strides = {{2, 2, 1}, {2, 2, 2}};
  p.patch_size = {64, 64, 16};
  p.target_spacing_mm = {1, 1, 3};
  p.inference.min_lesion_ml = 0.1;
  p.inference.min_fraction_of_largest = 0.25;
  p.inference.bf16 = true;
  p.training.average_epochs = 5;
  return p;
}
ErrorCode code_of(const nlohmann::json& j) {
  try {
    plans_from_json(j);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;
}
}  // namespace

TEST(Plans, JsonRoundTrip_KeepsEveryField) {
  const Plans p = example();
  tumorlab::testing::TempDir dir;
  save_plans(p, dir / "plans.json");
  const Plans q = load_plans(dir / "plans.json");
  EXPECT_EQ(to_json(p), to_json(q));
  EXPECT_EQ(q.network.strides[0], (std::array<int, 3>{2, 2, 1}));
  EXPECT_EQ(q.channels[0].normalization.scheme, imaging::NormalizationScheme::ZScore);
  EXPECT_DOUBLE_EQ(q.inference.min_lesion_ml, 0.1);
  EXPECT_DOUBLE_EQ(q.inference.min_fraction_of_largest, 0.25);
  EXPECT_TRUE(q.inference.bf16);
  EXPECT_EQ(q.training.average_epochs, 5);
  // Plans written before a field existed still load, with its default.
  auto old = to_json(p);
  old["training"].erase("average_epochs");
  EXPECT_EQ(plans_from_json(old).training.average_epochs, 0);
  old["network"].erase("context_slices");
  EXPECT_EQ(plans_from_json(old).network.context_slices, 0);
}

TEST(Plans, ContextSlices_2DOnly_WidenTheInput) {
  Plans p = example();
  EXPECT_EQ(p.input_channels(), 1);
  auto j = to_json(p);
  j["network"]["context_slices"] = 1;  // a 3D network sees its neighbours already
  try {
    plans_from_json(j);
    FAIL() << "context_slices accepted for a 3D network";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("network.context_slices"), std::string::npos) << e.what();
  }
  j["network"]["dims"] = 2;
  j["network"]["strides"] = {{2, 2, 1}, {2, 2, 1}};
  j["patch_size"] = {64, 64, 1};
  j["channels"].push_back(j["channels"][0]);
  j["channels"][1]["name"] = "T1c";
  const Plans q = plans_from_json(j);
  EXPECT_EQ(q.network.context_slices, 1);
  EXPECT_EQ(q.input_channels(), 6);  // 2 channels x 3 slices
  EXPECT_EQ(to_json(q)["network"]["context_slices"], 1);
  j["network"]["context_slices"] = -1;
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
  j["network"]["context_slices"] = 9;
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
}

TEST(Plans, ResolveBf16_ExplicitChoiceWinsElsePlannedOnNativeCpus) {
  EXPECT_TRUE(resolve_bf16(true, false));
  EXPECT_FALSE(resolve_bf16(false, true));
  EXPECT_FALSE(resolve_bf16(std::nullopt, false));
  EXPECT_EQ(resolve_bf16(std::nullopt, true), cpu_has_native_bf16());
}

TEST(Plans, BadFieldsRefusedNamingTheField) {
  auto j = to_json(example());
  j["patch_size"] = {62, 64, 16};  // not divisible by the strides' product (4)
  try {
    plans_from_json(j);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidDataset);
    EXPECT_NE(std::string(e.what()).find("patch_size"), std::string::npos) << e.what();
  }
  j = to_json(example());
  j["training"]["average_epochs"] = -1;
  try {
    plans_from_json(j);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training.average_epochs"), std::string::npos) << e.what();
  }
  j = to_json(example());
  j["network"]["dims"] = 4;
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
  j = to_json(example());
  j["version"] = 99;
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
  j = to_json(example());
  j["channels"] = nlohmann::json::array();
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
  j = to_json(example());
  j["network"]["strides"] = {{2, 2, 1}};
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
  j = to_json(example());
  j["inference"]["min_fraction_of_largest"] = 1.5;
  EXPECT_EQ(code_of(j), ErrorCode::InvalidDataset);
}
