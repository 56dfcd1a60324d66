#include "tumorlab/model/preprocess.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "tumorlab/core/error.h"

using namespace tumorlab;
using namespace tumorlab::model;

namespace {

Geometry grid(Size3 size, Vec3 spacing = {1, 1, 1}, Vec3 origin = {0, 0, 0}) {
  Geometry g;
  g.size = size;
  g.spacing_mm = spacing;
  g.origin_lps = origin;
  return g;
}

ChannelPlan channel(const std::string& name, imaging::NormalizationScheme scheme, bool invert = false,
                    const std::string& foreground = "above_zero") {
  ChannelPlan c;
  c.name = name;
  c.normalization.scheme = scheme;
  c.invert = invert;
  c.foreground = foreground;
  return c;
}

Plans plans3d() {
  Plans p;
  p.name = "test-3d";
  p.modality = "MR";
  p.channels = {channel("FLAIR", imaging::NormalizationScheme::ZScore)};
  p.network.dims = 3;
  p.network.features = {8, 16};
  p.network.strides = {{2, 2, 1}};
  p.patch_size = {16, 16, 4};
  p.target_spacing_mm = {1, 1, 3};
  return p;
}

Plans plans2d(imaging::NormalizationScheme scheme = imaging::NormalizationScheme::None, bool invert = false) {
  Plans p;
  p.name = "test-2d";
  p.modality = "PT";
  p.channels = {channel("PET-MIP", scheme, invert)};
  p.network.dims = 2;
  p.network.features = {8, 16};
  p.network.strides = {{2, 2, 1}};
  p.patch_size = {16, 16, 1};
  p.target_spacing_mm = {1, 1, 1};
  return p;
}

template <class T>
Volume image_of(const Geometry& g, const std::vector<T>& values, int channels = 1) {
  Volume v(g, pixel_type_of<T>(), channels);
  EXPECT_EQ(static_cast<int64_t>(values.size()), g.voxel_count() * channels);
  std::copy(values.begin(), values.end(), v.data<T>());
  return v;
}

ErrorCode check_code(const Volume& image, const Plans& plans, std::string* message = nullptr) {
  try {
    check_input(image, plans, "case.nii.gz");
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::Internal;  // "no error"
}

}  // namespace

TEST(Preprocess, TargetGeometry_SameSpacing_KeepsGridExactly) {
  Geometry g = grid({30, 20, 10}, {1, 1, 3}, {-12.25, 7.5, 101.125});
  g.direction = {0, 1, 0, -1, 0, 0, 0, 0, 1};
  const Geometry t = target_geometry(g, plans3d());
  EXPECT_TRUE(t.same_grid(g, 0.0)) << t.difference(g, 0.0);
  EXPECT_EQ(t.origin_lps, g.origin_lps);
}

TEST(Preprocess, TargetGeometry_3D_ResamplesKeepingTheCentre) {
  Plans p = plans3d();
  p.target_spacing_mm = {2, 2, 2};
  const Geometry t = target_geometry(grid({10, 10, 10}), p);
  EXPECT_EQ(t.size, (Size3{5, 5, 5}));
  EXPECT_EQ(t.spacing_mm, (Vec3{2, 2, 2}));
  // centre 4.5 mm stays: origin = 4.5 - 2 * (5 - 1) / 2 = 0.5
  for (int a = 0; a < 3; ++a) EXPECT_DOUBLE_EQ(t.origin_lps[a], 0.5);
}

TEST(Preprocess, TargetGeometry_2DModel_ResamplesOnlyInPlane) {
  Plans p = plans2d();  // target 1 x 1 x 1 mm
  const Geometry g = grid({100, 80, 7}, {0.5, 0.5, 5}, {0, 0, -20});
  const Geometry t = target_geometry(g, p);
  EXPECT_EQ(t.size, (Size3{50, 40, 7}));
  EXPECT_EQ(t.spacing_mm, (Vec3{1, 1, 5}));
  EXPECT_DOUBLE_EQ(t.origin_lps[2], -20);
  EXPECT_DOUBLE_EQ(t.origin_lps[0], 0.25);  // centre 24.75 - 1 * 49 / 2

  const Geometry png = grid({400, 900, 1});
  EXPECT_TRUE(target_geometry(png, p).same_grid(png, 0.0));
}

TEST(Preprocess, CheckInput_WrongChannelCount_IsBadInput) {
  const Plans p = plans3d();
  Volume two(grid({4, 4, 4}), PixelType::UInt8, 2);
  std::string msg;
  EXPECT_EQ(check_code(two, p, &msg), ErrorCode::BadArgument);
  EXPECT_NE(msg.find("case.nii.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expects 1 channel"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 2"), std::string::npos) << msg;
  EXPECT_EQ(error_info(ErrorCode::BadArgument).exit_code, 2);
}

TEST(Preprocess, CheckInput_2DImageFor3DModel_Refused_3DVolumeFor2DModel_Accepted) {
  Volume flat(grid({8, 8, 1}), PixelType::UInt8);
  std::string msg;
  EXPECT_EQ(check_code(flat, plans3d(), &msg), ErrorCode::BadArgument);
  EXPECT_NE(msg.find("3D"), std::string::npos) << msg;
  Volume vol(grid({8, 8, 5}), PixelType::UInt8);
  EXPECT_NO_THROW(check_input(vol, plans2d(), "v"));
  EXPECT_NO_THROW(check_input(flat, plans2d(), "v"));
}

TEST(Preprocess, CheckInput_ModalityMismatch_NamesBoth) {
  Volume v(grid({8, 8, 4}), PixelType::UInt8);
  v.modality = "CT";
  std::string msg;
  EXPECT_EQ(check_code(v, plans3d(), &msg), ErrorCode::BadArgument);
  EXPECT_NE(msg.find("MR"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CT"), std::string::npos) << msg;
  v.modality = "MRI";
  EXPECT_NO_THROW(check_input(v, plans3d(), "v"));
  v.modality = "";
  EXPECT_NO_THROW(check_input(v, plans3d(), "v"));
  v.modality = "PET";
  EXPECT_NO_THROW(check_input(v, plans2d(), "v"));  // plans say "PT"
  v.modality = "pt";
  EXPECT_NO_THROW(check_input(v, plans2d(), "v"));
  Plans any = plans3d();
  any.modality = "";
  v.modality = "CT";
  EXPECT_NO_THROW(check_input(v, any, "v"));
}

TEST(Preprocess, Inversion_Uint8Uses255_FloatUsesChannelMax) {
  const Plans p = plans2d(imaging::NormalizationScheme::None, /*invert=*/true);
  const Volume u8 = image_of<uint8_t>(grid({4, 1, 1}), {0, 10, 200, 255});
  const Volume a = preprocess_image(u8, p);
  ASSERT_EQ(a.pixel_type(), PixelType::Float32);
  const float* v = a.data<float>();
  EXPECT_FLOAT_EQ(v[0], 255);
  EXPECT_FLOAT_EQ(v[1], 245);
  EXPECT_FLOAT_EQ(v[2], 55);
  EXPECT_FLOAT_EQ(v[3], 0);

  const Volume f = image_of<float>(grid({3, 1, 1}), {1, 3, 7});
  const Volume b = preprocess_image(f, p);
  EXPECT_FLOAT_EQ(b.data<float>()[0], 6);
  EXPECT_FLOAT_EQ(b.data<float>()[1], 4);
  EXPECT_FLOAT_EQ(b.data<float>()[2], 0);
}

TEST(Preprocess, CtNormalisation_UsesThePlansNumbers) {
  Plans p = plans3d();
  p.modality = "CT";
  p.channels[0].normalization = {imaging::NormalizationScheme::CT, 0, 100, 50, 25};
  p.target_spacing_mm = {1, 1, 1};
  const Volume img = image_of<int16_t>(grid({4, 1, 2}), {-20, 60, 200, 50, 0, 100, 75, 25});
  const Volume out = preprocess_image(img, p);
  const float* v = out.data<float>();
  const float expected[] = {-2, 0.4f, 2, 0, -2, 2, 1, -1};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(v[i], expected[i]) << i;
}

TEST(Preprocess, ZScore_AboveZeroAndAll_ByHand) {
  Plans p = plans2d(imaging::NormalizationScheme::ZScore);
  const Volume img = image_of<uint8_t>(grid({4, 1, 1}), {0, 0, 2, 4});
  // above_zero: foreground {2, 4}: mean 3, std 1
  Volume out = preprocess_image(img, p);
  const float e1[] = {-3, -3, -1, 1};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out.data<float>()[i], e1[i]) << i;
  // all: mean 1.5, std sqrt((2.25 + 2.25 + 0.25 + 6.25) / 4) = sqrt(2.75)
  p.channels[0].foreground = "all";
  out = preprocess_image(img, p);
  const double s = std::sqrt(2.75);
  const double e2[] = {-1.5 / s, -1.5 / s, 0.5 / s, 2.5 / s};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out.data<float>()[i], e2[i], 1e-6) << i;
}

TEST(Preprocess, InvertThenZScore_MipBackgroundLeftOutOfTheStatistics) {
  // 8-bit MIP: white background 255 becomes 0 and is not "above_zero".
  const Plans p = plans2d(imaging::NormalizationScheme::ZScore, /*invert=*/true);
  const Volume img = image_of<uint8_t>(grid({4, 1, 1}), {255, 255, 253, 251});  // inverted: 0 0 2 4
  const Volume out = preprocess_image(img, p);
  const float e[] = {-3, -3, -1, 1};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out.data<float>()[i], e[i]) << i;
}

TEST(Preprocess, MultiChannel_EachChannelItsOwnScheme_OutputOnTargetGrid) {
  Plans p = plans3d();
  p.channels = {channel("FLAIR", imaging::NormalizationScheme::ZScore, false, "all"),
                channel("T1", imaging::NormalizationScheme::None)};
  p.target_spacing_mm = {2, 2, 2};
  const Geometry g = grid({4, 4, 4});
  Volume img(g, PixelType::Float32, 2);
  for (int64_t i = 0; i < 64; ++i) {
    img.channel_data<float>(0)[i] = 7;  // constant: z-score gives 0 (std floored)
    img.channel_data<float>(1)[i] = 5;
  }
  const Volume out = preprocess_image(img, p);
  EXPECT_TRUE(out.geometry().same_grid(target_geometry(g, p), 0.0));
  EXPECT_EQ(out.geometry().size, (Size3{2, 2, 2}));
  ASSERT_EQ(out.channels(), 2);
  EXPECT_EQ(out.channel_names, (std::vector<std::string>{"FLAIR", "T1"}));
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_FLOAT_EQ(out.channel_data<float>(0)[i], 0);
    EXPECT_FLOAT_EQ(out.channel_data<float>(1)[i], 5);
  }
}

TEST(Preprocess, Label_NearestOntoTarget_AndUnchangedOnSameGrid) {
  const Geometry g = grid({4, 4, 1}, {1, 1, 1});
  LabelMap l(g);
  for (int j = 0; j < 2; ++j)
    for (int i = 0; i < 2; ++i) l.at(i, j, 0) = 1;
  EXPECT_EQ(preprocess_label(l, g).voxels(), l.voxels());
  Plans p = plans2d();
  p.target_spacing_mm = {2, 2, 1};
  const Geometry t = target_geometry(g, p);
  const LabelMap r = preprocess_label(l, t);
  EXPECT_TRUE(r.geometry().same_grid(t, 0.0));
  EXPECT_EQ(r.voxels(), (std::vector<uint8_t>{1, 0, 0, 0}));
}

TEST(Plans, ChannelForeground_RoundTripsAndBadValueRefused) {
  Plans p = plans3d();
  p.channels[0].foreground = "otsu";
  auto j = to_json(p);
  EXPECT_EQ(j["channels"][0]["normalization"]["foreground"], "otsu");
  EXPECT_EQ(plans_from_json(j).channels[0].foreground, "otsu");
  j["channels"][0]["normalization"].erase("foreground");
  EXPECT_EQ(plans_from_json(j).channels[0].foreground, "above_zero");
  j["channels"][0]["normalization"]["foreground"] = "body";
  try {
    plans_from_json(j);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidDataset);
    EXPECT_NE(std::string(e.what()).find("foreground"), std::string::npos) << e.what();
  }
}
