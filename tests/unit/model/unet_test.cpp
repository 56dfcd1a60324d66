#include "tumorlab/model/unet.h"

#include <gtest/gtest.h>

#include "tumorlab/model/plans.h"

using namespace tumorlab::model;

TEST(UNet, Forward2D_ShapesAndDeepSupervision) {
  torch::manual_seed(1);
  UNetConfig c;
  c.dims = 2;
  c.in_channels = 2;
  c.num_classes = 3;
  c.features = {4, 8, 16, 32};
  c.deep_supervision = true;
  UNet net(c);
  net->train();
  auto outs = net->forward(torch::randn({2, 2, 64, 48}));
  ASSERT_EQ(outs.size(), 3u);  // one per decoder stage: full, 1/2, 1/4
  EXPECT_EQ(outs[0].sizes(), (std::vector<int64_t>{2, 3, 64, 48}));
  EXPECT_EQ(outs[1].sizes(), (std::vector<int64_t>{2, 3, 32, 24}));
  EXPECT_EQ(outs[2].sizes(), (std::vector<int64_t>{2, 3, 16, 12}));
  net->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->forward(torch::randn({1, 2, 64, 48})).size(), 1u);
}

TEST(UNet, Forward3D_AnisotropicStridesResidualAttention) {
  torch::manual_seed(1);
  UNetConfig c;
  c.dims = 3;
  c.in_channels = 1;
  c.num_classes = 2;
  c.features = {4, 8, 16};
  c.strides = {{2, 2, 1}, {2, 2, 2}};  // keep z at the first downsampling
  c.residual_encoder = true;
  c.attention_gates = true;
  c.dropout = 0.2;
  UNet net(c);
  net->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 1, 8, 32, 32});  // N, C, Z, Y, X
  auto a = net->forward(x)[0];
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 2, 8, 32, 32}));
  // Deterministic in eval mode; MC-dropout makes passes differ.
  EXPECT_TRUE(torch::allclose(a, net->forward(x)[0]));
  net->set_mc_dropout(true);
  EXPECT_FALSE(torch::allclose(net->forward(x)[0], net->forward(x)[0]));
}

TEST(UNet, ConfigFromPlans) {
  Plans p;
  p.channels = {{"FLAIR", {}, false}, {"T1c", {}, false}};
  p.labels = {{"background", 0}, {"tumor", 1}, {"edema", 2}};
  p.network.dims = 3;
  p.network.features = {8, 16};
  p.network.strides = {{2, 2, 1}};
  const UNetConfig c = unet_config_from_plans(p);
  EXPECT_EQ(c.in_channels, 2);
  EXPECT_EQ(c.num_classes, 3);
  EXPECT_EQ(c.dims, 3);
}
