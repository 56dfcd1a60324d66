#include "tumorlab/model/predictor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/preprocess.h"
#include "tumorlab/model/sliding_window.h"

using namespace tumorlab;
using namespace tumorlab::model;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

Plans plans_3d() {
  Plans p;
  p.name = "test-3d";
  ChannelPlan c;
  c.name = "FLAIR";
  c.normalization.scheme = imaging::NormalizationScheme::ZScore;
  c.foreground = "all";
  p.channels = {c};
  p.network.dims = 3;
  p.network.features = {4, 8};
  p.network.strides = {{2, 2, 2}};
  p.network.deep_supervision = false;
  p.patch_size = {16, 16, 8};
  p.target_spacing_mm = {1, 1, 2};
  p.inference.window_batch = 3;
  p.inference.tta_mirror_axes = {0, 1};
  return p;
}

Plans plans_2d() {
  Plans p;
  p.name = "test-2d";
  ChannelPlan c;
  c.name = "PET-MIP";
  c.normalization.scheme = imaging::NormalizationScheme::ZScore;
  c.foreground = "all";
  p.channels = {c};
  p.network.dims = 2;
  p.network.features = {4, 8, 16};
  p.network.strides = {{2, 2, 1}, {2, 2, 1}};
  p.network.deep_supervision = false;
  p.patch_size = {32, 32, 1};
  p.target_spacing_mm = {1, 1, 1};
  p.inference.window_batch = 4;
  p.inference.tta_mirror_axes = {0};
  return p;
}

// A bundle with random weights (seeded); `tweak` may change the network before saving.
fs::path make_bundle(const TempDir& dir, const Plans& plans, const std::string& name = "model",
                     const std::function<void(UNet&)>& tweak = {}) {
  torch::manual_seed(7);
  UNet net(unet_config_from_plans(plans));
  if (tweak) {
    torch::NoGradGuard no_grad;
    tweak(net);
  }
  const fs::path folder = dir / name;
  save_bundle(folder, plans, net, make_bundle_metadata(plans, "test"));
  return folder;
}

// Makes the network's output constant: head weights 0, head bias `bias` (one per class).
std::function<void(UNet&)> constant_logits(std::vector<float> bias) {
  return [bias](UNet& net) {
    auto params = net->named_parameters();
    params["heads.0.weight"].zero_();
    params["heads.0.bias"].copy_(torch::tensor(bias));
  };
}

Matrix3 oblique_direction() {
  const double a = 0.5, b = 0.35;  // rotation about z by a, then about x by b
  const double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
  // R = Rx(b) * Rz(a), row-major
  return {ca, -sa, 0, cb * sa, cb * ca, -sb, sb * sa, sb * ca, cb};
}

Volume random_volume(const Geometry& g, PixelType type, int channels = 1, uint64_t seed = 3) {
  Volume v(g, PixelType::Float32, channels);
  uint64_t s = seed;
  float* d = v.data<float>();
  for (int64_t i = 0; i < v.voxel_count() * channels; ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    d[i] = static_cast<float>((s >> 40) % 200);
  }
  return type == PixelType::Float32 ? v : v.as_type(type);
}

Geometry oblique_geometry() {
  Geometry g;
  g.size = {37, 29, 11};
  g.spacing_mm = {0.9, 1.1, 2.5};
  g.origin_lps = {-12.3, 45.6, 7.8};
  g.direction = oblique_direction();
  return g;
}

void expect_same_grid_exactly(const Geometry& a, const Geometry& b) {
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.spacing_mm, b.spacing_mm);
  EXPECT_EQ(a.origin_lps, b.origin_lps);
  EXPECT_EQ(a.direction, b.direction);
}

torch::Tensor as_tensor(const Volume& v) {
  const auto& s = v.geometry().size;
  return torch::from_blob(const_cast<float*>(v.data<float>()), {v.channels(), s[2], s[1], s[0]}, torch::kFloat32)
      .clone();
}

template <class F> ErrorCode error_of(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::Internal;
}

}  // namespace

TEST(Predictor, WindowStarts_EvenlySpacedCoveringTheImage) {
  EXPECT_EQ(window_starts(32, 32, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(window_starts(20, 32, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(window_starts(64, 32, 0.5), (std::vector<int64_t>{0, 16, 32}));
  const auto s = window_starts(100, 32, 0.5);  // ceil(68 / 16) + 1 = 6 windows
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s.front(), 0);
  EXPECT_EQ(s.back(), 68);
  EXPECT_EQ(window_starts(5, 1, 0.5), (std::vector<int64_t>{0, 1, 2, 3, 4}));  // 2D models along z
  EXPECT_EQ(window_starts(64, 32, 0.0), (std::vector<int64_t>{0, 32}));
}

TEST(Predictor, GaussianImportance_CentredMaxOneSymmetric) {
  const auto g = gaussian_importance({16, 12, 1});
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{1, 12, 16}));
  EXPECT_FLOAT_EQ(g.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::allclose(g, g.flip({1, 2})));
  EXPECT_GT(g.min().item<float>(), 0.0f);
}

TEST(Predictor, Geometry3D_ObliqueVolume_LabelExactlyOnInputGrid) {
  TempDir dir;
  const Predictor predictor = Predictor::load(make_bundle(dir, plans_3d()));
  const Geometry g = oblique_geometry();
  const Volume image = random_volume(g, PixelType::Int16);
  const Prediction p = predictor.predict(image);
  expect_same_grid_exactly(p.label.geometry(), g);
  expect_same_grid_exactly(p.probability.geometry(), g);
  EXPECT_TRUE(p.uncertainty.empty());
  // Overlap and TTA do not change the geometry either.
  PredictOptions o;
  o.overlap = 0.75;
  o.tta = true;
  const Prediction q = predictor.predict(image, o);
  expect_same_grid_exactly(q.label.geometry(), g);
  EXPECT_EQ(q.foreground_voxels, q.label.count_nonzero());
}

TEST(Predictor, Geometry2D_PngLikeImage_LabelExactlyOnInputGridValuesZeroOne) {
  TempDir dir;
  const Predictor predictor = Predictor::load(make_bundle(dir, plans_2d()));
  Geometry g;
  g.size = {70, 45, 1};
  g.spacing_mm = {1, 1, 1};
  const Volume image = random_volume(g, PixelType::UInt8);
  PredictOptions o;
  o.tta = true;
  const Prediction p = predictor.predict(image, o);
  expect_same_grid_exactly(p.label.geometry(), g);
  EXPECT_LE(p.label.max_label(), 1);
  // Another spacing: resampled to 1 mm and back, still exactly on the input grid.
  g.spacing_mm = {0.7, 1.3, 1};
  g.origin_lps = {3, -4, 0};
  Volume image2 = image;
  image2.set_geometry(g);
  expect_same_grid_exactly(predictor.predict(image2).label.geometry(), g);
}

TEST(Predictor, OnePatchImage_EqualsSoftmaxOfDirectForwardPass) {
  TempDir dir;
  const Plans plans = plans_3d();
  const fs::path bundle = make_bundle(dir, plans);
  Geometry g;
  g.size = {16, 16, 8};
  g.spacing_mm = {1, 1, 2};  // the target spacing: no resampling
  const Volume image = random_volume(g, PixelType::Float32);
  const Prediction p = Predictor::load(bundle).predict(image);

  UNet net = load_bundle_network(bundle, plans);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = as_tensor(preprocess_image(image, plans));
  const torch::Tensor direct = torch::softmax(net->forward(x.unsqueeze(0))[0], 1)[0];  // (K, Z, Y, X)
  const torch::Tensor fg = 1 - direct[0];
  const torch::Tensor got = as_tensor(p.probability)[0];
  EXPECT_TRUE(torch::allclose(got, fg, 1e-5, 1e-5)) << (got - fg).abs().max().item<float>();

  // The sliding window alone, on the preprocessed tensor.
  WindowOptions w;
  w.patch = plans.patch_size;
  const torch::Tensor sw = sliding_window(net, x, w);
  EXPECT_TRUE(torch::allclose(sw, direct, 1e-5, 1e-6));
}

TEST(Predictor, Bf16_PlansDefaultOnNativeCpusOptionOverrides_CloseToFloat32) {
  TempDir dir;
  Plans plans = plans_3d();
  const fs::path fp32_bundle = make_bundle(dir, plans, "fp32");
  plans.inference.bf16 = true;
  const fs::path bf16_bundle = make_bundle(dir, plans, "bf16");
  Geometry g;
  g.size = {24, 20, 10};
  g.spacing_mm = {1, 1, 2};
  const Volume image = random_volume(g, PixelType::Int16);

  const Predictor fp32 = Predictor::load(fp32_bundle);
  const Predictor bf16 = Predictor::load(bf16_bundle);
  const Prediction a = fp32.predict(image);
  EXPECT_FALSE(a.bf16);  // plans without inference.bf16: float32
  const Prediction b = bf16.predict(image);
  EXPECT_EQ(b.bf16, cpu_has_native_bf16());  // the plans' default only where bf16 is native
  PredictOptions off;
  off.bf16 = false;
  const Prediction c = bf16.predict(image, off);
  EXPECT_FALSE(c.bf16);
  PredictOptions on;
  on.bf16 = true;
  const Prediction d = fp32.predict(image, on);
  EXPECT_TRUE(d.bf16);

  // Same weights: forced float32 equals the float32 model exactly; bf16 is close but not equal.
  const torch::Tensor pa = as_tensor(a.probability), pc = as_tensor(c.probability), pd = as_tensor(d.probability);
  EXPECT_TRUE(torch::equal(pa, pc));
  const float bf16_diff = (pd - pa).abs().max().item<float>();
  EXPECT_GT(bf16_diff, 0.0f);
  EXPECT_LT(bf16_diff, 0.05f);
}

TEST(Predictor, Tta_EqualsAverageOfExplicitFlippedPasses) {
  TempDir dir;
  const Plans plans = plans_3d();
  const fs::path bundle = make_bundle(dir, plans);
  UNet net = load_bundle_network(bundle, plans);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({1, 8, 16, 16});  // exactly one patch
  WindowOptions w;
  w.patch = plans.patch_size;
  w.mirror_axes = {0, 1, 2};
  const torch::Tensor tta = sliding_window(net, x, w);
  torch::Tensor expected = torch::zeros_like(tta);
  int variants = 0;
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{
           {}, {4}, {3}, {2}, {4, 3}, {4, 2}, {3, 2}, {4, 3, 2}}) {
    torch::Tensor in = x.unsqueeze(0);
    if (!dims.empty()) in = in.flip(dims);
    torch::Tensor out = torch::softmax(net->forward(in)[0], 1);
    if (!dims.empty()) out = out.flip(dims);
    expected += out[0];
    ++variants;
  }
  expected /= variants;
  EXPECT_EQ(mirror_variants(w.mirror_axes, w.patch).size(), 8u);
  EXPECT_TRUE(torch::allclose(tta, expected, 1e-5, 1e-6)) << (tta - expected).abs().max().item<float>();
  // A 2D patch has no z axis to mirror.
  EXPECT_EQ(mirror_variants({0, 1, 2}, {32, 32, 1}).size(), 4u);
}

TEST(Predictor, Uncertainty_InUnitRange_ZeroWhereOneHot_OneWhereUniform) {
  TempDir dir;
  Geometry g = oblique_geometry();
  const Volume image = random_volume(g, PixelType::Float32);
  PredictOptions o;
  o.uncertainty = true;
  o.tta = true;
  {
    const Prediction p = Predictor::load(make_bundle(dir, plans_3d(), "random")).predict(image, o);
    expect_same_grid_exactly(p.uncertainty.geometry(), g);
    const auto range = p.uncertainty.intensity_range();
    EXPECT_GE(range.first, 0.0);
    EXPECT_LE(range.second, 1.0);
    EXPECT_GE(p.case_score, 0.0);
    EXPECT_LE(p.case_score, 1.0);
  }
  {
    const Prediction p =
        Predictor::load(make_bundle(dir, plans_3d(), "onehot", constant_logits({60.f, -60.f}))).predict(image, o);
    const auto range = p.uncertainty.intensity_range();
    EXPECT_NEAR(range.first, 0.0, 1e-6);
    EXPECT_NEAR(range.second, 0.0, 1e-6);
    EXPECT_EQ(p.label.count_nonzero(), 0);
    EXPECT_NEAR(p.case_score, 0.0, 1e-6);
  }
  {
    const Prediction p =
        Predictor::load(make_bundle(dir, plans_3d(), "uniform", constant_logits({0.f, 0.f}))).predict(image, o);
    const auto range = p.uncertainty.intensity_range();
    EXPECT_NEAR(range.first, 1.0, 1e-5);
    EXPECT_NEAR(p.case_score, 1.0, 1e-5);
  }
}

TEST(Predictor, McDropout_RunsAndStaysInRange) {
  TempDir dir;
  Plans plans = plans_3d();
  plans.network.dropout = 0.3;
  plans.inference.mc_dropout_samples = 3;
  const Predictor predictor = Predictor::load(make_bundle(dir, plans));
  PredictOptions o;
  o.uncertainty = true;
  const Prediction p = predictor.predict(random_volume(oblique_geometry(), PixelType::Float32), o);
  const auto range = p.uncertainty.intensity_range();
  EXPECT_GE(range.first, 0.0);
  EXPECT_LE(range.second, 1.0);
  EXPECT_GT(range.second, 0.0);
}

TEST(Predictor, MinLesionSize_RemovesSmallComponents) {
  TempDir dir;
  Plans plans = plans_2d();
  Geometry g;
  g.size = {40, 30, 1};
  const Volume image = random_volume(g, PixelType::UInt8);
  // Foreground everywhere: one component of 1200 voxels.
  EXPECT_EQ(Predictor::load(make_bundle(dir, plans, "all", constant_logits({-30.f, 30.f}))).predict(image)
                .foreground_voxels,
            1200);
  plans.inference.min_lesion_voxels = 1201;
  EXPECT_EQ(Predictor::load(make_bundle(dir, plans, "small", constant_logits({-30.f, 30.f}))).predict(image)
                .foreground_voxels,
            0);
  plans.inference.min_lesion_voxels = 0;
  plans.inference.min_lesion_ml = 1.3;  // 1200 voxels of 1 mm^3 = 1.2 mL
  EXPECT_EQ(Predictor::load(make_bundle(dir, plans, "ml", constant_logits({-30.f, 30.f}))).predict(image)
                .foreground_voxels,
            0);
}

TEST(Predictor, Roi_OutsideIsZero_InsideMatchesFullPrediction) {
  TempDir dir;
  const Predictor predictor = Predictor::load(make_bundle(dir, plans_2d()));
  Geometry g;
  g.size = {120, 100, 1};
  g.spacing_mm = {0.8, 0.8, 1};
  const Volume image = random_volume(g, PixelType::UInt8);
  PredictOptions o;
  o.uncertainty = true;
  const Prediction full = predictor.predict(image, o);
  o.roi = imaging::Box{{40, 30, 0}, {80, 70, 1}};
  const Prediction roi = predictor.predict(image, o);
  expect_same_grid_exactly(roi.label.geometry(), g);
  double diff = 0;
  int64_t inside = 0;
  for (int64_t k = 0; k < 1; ++k)
    for (int64_t j = 0; j < g.size[1]; ++j)
      for (int64_t i = 0; i < g.size[0]; ++i) {
        const int64_t v = roi.label.index(i, j, k);
        if (o.roi->contains(i, j, k)) {
          diff += std::abs(roi.probability.data<float>()[v] - full.probability.data<float>()[v]);
          ++inside;
        } else {
          ASSERT_EQ(roi.label.data()[v], 0);
          ASSERT_EQ(roi.probability.data<float>()[v], 0.0f);
          ASSERT_EQ(roi.uncertainty.data<float>()[v], 0.0f);
        }
      }
  // Windows sit elsewhere (and instance norm sees other context), so allow a small difference.
  EXPECT_LT(diff / static_cast<double>(inside), 0.05) << "mean |p_roi - p_full| inside the ROI";
  // A ROI outside the image is refused.
  o.roi = imaging::Box{{200, 200, 0}, {210, 210, 1}};
  EXPECT_EQ(error_of([&] { predictor.predict(image, o); }), ErrorCode::BadArgument);
}

TEST(Predictor, WithContextSlices_ChannelOrderAndClampedEnds) {
  const torch::Tensor image = torch::arange(2 * 4 * 2 * 3, torch::kFloat32).reshape({2, 4, 2, 3});
  EXPECT_TRUE(with_context_slices(image, 0).equal(image));
  const torch::Tensor x = with_context_slices(image, 1);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{6, 4, 2, 3}));
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t dz = -1; dz <= 1; ++dz)
      for (int64_t z = 0; z < 4; ++z)
        EXPECT_TRUE(x[c * 3 + dz + 1][z].equal(image[c][std::clamp<int64_t>(z + dz, 0, 3)])) << c << " " << dz << " " << z;
}

// Widening a network to see neighbouring slices keeps its function exactly (the new input
// weights are zero), also through a residual encoder's first projection; other shapes refused.
TEST(Predictor, TransferWeights_IntoContextNetwork_SameOutputs) {
  for (bool residual : {false, true}) {
    Plans p = plans_2d();
    p.channels.push_back(p.channels[0]);
    p.channels[1].name = "second";
    p.network.residual_encoder = residual;
    Plans q = p;
    q.network.context_slices = 2;
    torch::manual_seed(5);
    UNet from(unet_config_from_plans(p)), to(unet_config_from_plans(q));
    transfer_weights(from, 0, to, 2, "test");
    from->eval();
    to->eval();
    const torch::Tensor x = torch::randn({3, 10, 32, 32});  // 2 channels x 5 slices
    const torch::Tensor centre = torch::cat({x.narrow(1, 2, 1), x.narrow(1, 7, 1)}, 1);
    torch::NoGradGuard no_grad;
    const torch::Tensor a = from->forward(centre)[0], b = to->forward(x)[0];
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << "residual " << residual;
    // A wider network from a narrower one: the bundle's slices stay centred.
    Plans r = p;
    r.network.context_slices = 3;
    UNet wider(unet_config_from_plans(r));
    transfer_weights(to, 2, wider, 3, "test");
    wider->eval();
    const torch::Tensor x7 = torch::randn({1, 14, 32, 32});
    const torch::Tensor x5 = torch::cat({x7.narrow(1, 1, 5), x7.narrow(1, 8, 5)}, 1);
    EXPECT_LT((to->forward(x5)[0] - wider->forward(x7)[0]).abs().max().item<double>(), 1e-4);
    std::string message;
    EXPECT_EQ(error_of([&] { transfer_weights(wider, 3, to, 2, "bundle X"); }, &message), ErrorCode::BadArgument);
    EXPECT_NE(message.find("bundle X"), std::string::npos) << message;
  }
  Plans p = plans_2d(), other = plans_2d();
  other.network.features = {4, 8, 32};
  UNet a(unet_config_from_plans(p)), b(unet_config_from_plans(other));
  std::string message;
  EXPECT_EQ(error_of([&] { transfer_weights(a, 0, b, 0, "bundle Y"); }, &message), ErrorCode::BadArgument);
  EXPECT_NE(message.find("shape"), std::string::npos) << message;
}

// A 2D network with context slices segments each slice of a volume from that slice and its
// neighbours; a region of interest crops with the neighbours it needs, so it matches exactly.
TEST(Predictor, ContextSlices_VolumeSliceBySlice_RoiMatchesExactly) {
  TempDir dir;
  Plans p = plans_2d();
  p.network.context_slices = 1;
  const Predictor predictor = Predictor::load(make_bundle(dir, p));
  Geometry g;
  g.size = {32, 32, 6};
  const Volume image = random_volume(g, PixelType::Float32);
  PredictOptions o;
  o.bf16 = false;
  const Prediction full = predictor.predict(image, o);
  // The same by hand: preprocess, stack the neighbours, one forward pass per slice.
  torch::manual_seed(7);
  UNet net(unet_config_from_plans(p));
  net->eval();
  const torch::Tensor x = with_context_slices(as_tensor(preprocess_image(image, p)), 1);  // (3, 6, 32, 32)
  torch::NoGradGuard no_grad;
  const torch::Tensor probs = torch::softmax(net->forward(x.permute({1, 0, 2, 3}))[0], 1);  // (6, 2, 32, 32)
  const torch::Tensor got = as_tensor(full.probability);                                   // (1, 6, 32, 32)
  EXPECT_LT((probs.select(1, 1) - got[0]).abs().max().item<double>(), 1e-4);
  // Slices 2-3 only: their neighbours 1 and 4 come from the image, not from clamping.
  o.roi = imaging::Box{{0, 0, 2}, {32, 32, 4}};
  const Prediction roi = predictor.predict(image, o);
  const torch::Tensor r = as_tensor(roi.probability);
  EXPECT_LT((r[0].narrow(0, 2, 2) - got[0].narrow(0, 2, 2)).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(r[0].narrow(0, 0, 2).abs().max().item<double>(), 0.0);
}

TEST(Predictor, BadInputs_RefusedWithClearErrors) {
  TempDir dir;
  const fs::path bundle3d = make_bundle(dir, plans_3d(), "m3d");
  const Predictor predictor = Predictor::load(bundle3d);
  std::string msg;
  // Wrong channel count.
  EXPECT_EQ(error_of([&] { predictor.predict(random_volume(oblique_geometry(), PixelType::Float32, 2)); }, &msg),
            ErrorCode::BadArgument);
  EXPECT_NE(msg.find("channel"), std::string::npos) << msg;
  // A 2D image for a 3D model.
  Geometry g2;
  g2.size = {40, 40, 1};
  EXPECT_EQ(error_of([&] { predictor.predict(random_volume(g2, PixelType::UInt8)); }, &msg), ErrorCode::BadArgument);
  EXPECT_NE(msg.find("2D"), std::string::npos) << msg;

  // Bundle format_version from the future.
  auto edit_bundle_json = [](const fs::path& folder, const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json j;
    std::ifstream(folder / "bundle.json") >> j;
    f(j);
    std::ofstream(folder / "bundle.json") << j.dump(2);
  };
  const fs::path future = make_bundle(dir, plans_3d(), "future");
  edit_bundle_json(future, [](nlohmann::json& j) { j["format_version"] = 2; });
  EXPECT_EQ(error_of([&] { Predictor::load(future); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("format_version"), std::string::npos) << msg;
  // Not a bundle at all.
  const fs::path other = make_bundle(dir, plans_3d(), "other");
  edit_bundle_json(other, [](nlohmann::json& j) { j["format"] = "something-else"; });
  EXPECT_EQ(error_of([&] { Predictor::load(other); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("format"), std::string::npos) << msg;
  // Channel names in bundle.json differ from plans.json.
  const fs::path renamed = make_bundle(dir, plans_3d(), "renamed");
  edit_bundle_json(renamed, [](nlohmann::json& j) { j["channels"] = {"T2"}; });
  EXPECT_EQ(error_of([&] { Predictor::load(renamed); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("T2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FLAIR"), std::string::npos) << msg;
  // Missing weights.
  const fs::path noweights = make_bundle(dir, plans_3d(), "noweights");
  fs::remove(noweights / "model.pt");
  EXPECT_EQ(error_of([&] { Predictor::load(noweights); }, &msg), ErrorCode::FileNotFound);
  EXPECT_NE(msg.find("model.pt"), std::string::npos) << msg;
  // Weights of another network (wider features).
  Plans wider = plans_3d();
  wider.network.features = {8, 16};
  const fs::path mismatched = make_bundle(dir, wider, "mismatched");
  save_plans(plans_3d(), mismatched / "plans.json");
  EXPECT_EQ(error_of([&] { Predictor::load(mismatched); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("model.pt"), std::string::npos) << msg;
  // Corrupt weights.
  const fs::path corrupt = make_bundle(dir, plans_3d(), "corrupt");
  std::ofstream(corrupt / "model.pt") << "not a zip";
  EXPECT_EQ(error_of([&] { Predictor::load(corrupt); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("model.pt"), std::string::npos) << msg;
  // No bundle.
  EXPECT_EQ(error_of([&] { Predictor::load(dir / "nothing"); }), ErrorCode::FileNotFound);
}

TEST(Bundle, Metadata_RoundTripAndVersions) {
  TempDir dir;
  const Plans plans = plans_3d();
  BundleMetadata m = make_bundle_metadata(plans, "2", {{"epochs", 5}});
  write_bundle_metadata(m, dir / "b");
  const BundleMetadata r = read_bundle_metadata(dir / "b");
  EXPECT_EQ(to_json(m), to_json(r));
  EXPECT_EQ(r.channels, std::vector<std::string>{"FLAIR"});
  EXPECT_FALSE(r.torch_version.empty());
  EXPECT_FALSE(r.created.empty());
  EXPECT_NO_THROW(check_bundle_consistency(r, plans, dir / "b"));
  EXPECT_TRUE(r.evaluation.is_null());
  EXPECT_FALSE(to_json(r).contains("evaluation"));  // no held-out figures: no field
}

TEST(Bundle, Metadata_HeldOutEvaluationRoundTripsAndIsChecked) {
  TempDir dir;
  BundleMetadata m = make_bundle_metadata(plans_3d(), "1");
  m.evaluation = {{"cases", 12}, {"patients_mean_dice", 0.69}};
  write_bundle_metadata(m, dir / "b");
  const BundleMetadata r = read_bundle_metadata(dir / "b");
  EXPECT_DOUBLE_EQ(r.evaluation.at("patients_mean_dice").get<double>(), 0.69);
  EXPECT_EQ(r.evaluation.at("cases").get<int>(), 12);
  nlohmann::json bad = to_json(m);
  bad["evaluation"] = "0.69";
  std::string msg;
  EXPECT_EQ(error_of([&] { bundle_metadata_from_json(bad, "x/bundle.json"); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("x/bundle.json.evaluation"), std::string::npos) << msg;
}

// ---- Ensembles ------------------------------------------------------------------------------

namespace {

// Member "b": the same network as make_bundle's, every weight moved by seeded noise.
void perturb(UNet& net) {
  torch::manual_seed(8);
  for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.2);
}

}  // namespace

TEST(Ensemble, Bundle_PredictsTheMeanOfItsMembers_EnsemblesFlatten) {
  TempDir dir;
  const Plans plans = plans_3d();
  const fs::path a = make_bundle(dir, plans, "a");
  const fs::path b = make_bundle(dir, plans, "b", perturb);
  write_ensemble_bundle({a, b}, dir / "ab", "3");
  const BundleMetadata m = read_bundle_metadata(dir / "ab");
  EXPECT_EQ(m.version, "3");
  EXPECT_EQ(m.weights, (std::vector<std::string>{"model.pt", "model_2.pt"}));
  EXPECT_EQ(weight_files(m), m.weights);
  ASSERT_EQ(m.training.at("ensemble_of").size(), 2u);
  EXPECT_EQ(m.training.at("ensemble_of")[1].at("name"), "test-3d");
  EXPECT_EQ(m.training.at("networks"), 2);
  // Built in a staging folder beside the output and renamed into place: nothing else is left.
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string().find(".ab.tmp"), std::string::npos) << entry.path();

  Geometry g;
  g.size = {24, 20, 10};
  g.spacing_mm = {1, 1, 2};
  const Volume image = random_volume(g, PixelType::Float32);
  PredictOptions o;
  o.bf16 = false;
  const torch::Tensor pa = as_tensor(Predictor::load(a).predict(image, o).probability);
  const torch::Tensor pb = as_tensor(Predictor::load(b).predict(image, o).probability);
  const torch::Tensor pab = as_tensor(Predictor::load(dir / "ab").predict(image, o).probability);
  EXPECT_GT((pa - pb).abs().max().item<float>(), 0.01f) << "the members must differ for the test to mean anything";
  EXPECT_TRUE(torch::allclose(pab, (pa + pb) / 2, 1e-5, 1e-5)) << (pab - (pa + pb) / 2).abs().max().item<float>();

  // An ensemble as a member contributes all its networks: (a, b) + a = a counted twice.
  write_ensemble_bundle({dir / "ab", a}, dir / "aba", "4");
  EXPECT_EQ(read_bundle_metadata(dir / "aba").weights,
            (std::vector<std::string>{"model.pt", "model_2.pt", "model_3.pt"}));
  const torch::Tensor paba = as_tensor(Predictor::load(dir / "aba").predict(image, o).probability);
  EXPECT_TRUE(torch::allclose(paba, (2 * pa + pb) / 3, 1e-5, 1e-5));
  // A single bundle's bundle.json keeps its old form (no "weights").
  EXPECT_FALSE(to_json(read_bundle_metadata(a)).contains("weights"));
}

TEST(Ensemble, Refused_TooFewDifferentPlansOrChannels_OutputNotEmpty_BadWeightsList) {
  TempDir dir;
  const Plans plans = plans_3d();
  const fs::path a = make_bundle(dir, plans, "a");
  std::string msg;
  EXPECT_EQ(error_of([&] { write_ensemble_bundle({a}, dir / "out1", "1"); }, &msg), ErrorCode::BadArgument);
  EXPECT_NE(msg.find("two or more"), std::string::npos) << msg;

  Plans wider = plans;
  wider.network.features = {4, 16};
  const fs::path w = make_bundle(dir, wider, "wider");
  EXPECT_EQ(error_of([&] { write_ensemble_bundle({a, w}, dir / "out2", "1"); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("in network"), std::string::npos) << msg;
  EXPECT_NE(msg.find((w / "plans.json").string()), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir / "out2")) << "nothing written for a refused ensemble";

  Plans other_training = plans;
  other_training.training.learning_rate = 0.001;  // training settings may differ
  other_training.name = "renamed";
  const fs::path t = make_bundle(dir, other_training, "t");
  EXPECT_NO_THROW(write_ensemble_bundle({a, t}, dir / "out3", "1"));

  Plans renamed_channel = plans;
  renamed_channel.channels[0].name = "T2";
  const fs::path c = make_bundle(dir, renamed_channel, "c");
  EXPECT_EQ(error_of([&] { write_ensemble_bundle({a, c}, dir / "out4", "1"); }, &msg), ErrorCode::InvalidDataset);
  EXPECT_NE(msg.find("channels"), std::string::npos) << msg;

  // An existing empty folder is a valid output (it is replaced by the finished bundle).
  fs::create_directories(dir / "empty");
  EXPECT_NO_THROW(write_ensemble_bundle({a, t}, dir / "empty", "1"));
  EXPECT_EQ(read_bundle_metadata(dir / "empty").weights, (std::vector<std::string>{"model.pt", "model_2.pt"}));
  // "DIR/" (as a shell completes it) names DIR.
  EXPECT_NO_THROW(write_ensemble_bundle({a, t}, (dir / "slash").string() + "/", "1"));
  EXPECT_EQ(read_bundle_metadata(dir / "slash").weights, (std::vector<std::string>{"model.pt", "model_2.pt"}));

  fs::create_directories(dir / "full");
  std::ofstream(dir / "full" / "x.txt") << "x";
  EXPECT_EQ(error_of([&] { write_ensemble_bundle({a, t}, dir / "full", "1"); }, &msg), ErrorCode::BadArgument);

  // bundle.json "weights" entries are plain .pt names, listed once, each present.
  nlohmann::json j = to_json(read_bundle_metadata(a));
  for (const nlohmann::json& bad : {nlohmann::json::array({"../model.pt"}), nlohmann::json::array({"model.bin"}),
                                    nlohmann::json::array(), nlohmann::json::array({"model.pt", "model.pt"})}) {
    j["weights"] = bad;
    EXPECT_EQ(error_of([&] { bundle_metadata_from_json(j, "a/bundle.json"); }, &msg), ErrorCode::InvalidDataset)
        << bad.dump();
    EXPECT_NE(msg.find("a/bundle.json.weights"), std::string::npos) << msg;
  }
  BundleMetadata missing = read_bundle_metadata(a);
  missing.weights = {"model.pt", "model_2.pt"};
  write_bundle_metadata(missing, a);
  EXPECT_EQ(error_of([&] { Predictor::load(a); }, &msg), ErrorCode::FileNotFound);
  EXPECT_NE(msg.find("model_2.pt"), std::string::npos) << msg;
}
