#pragma once
// INTERNAL to src/model: the U-Net family in LibTorch. Includes <torch/torch.h>; only model/*.cpp
// include this header. Everything outside src/model sees plans.h / predictor.h / trainer.h.
//
// Topology (nnU-Net style): stage s has `convs_per_stage` 3x3(x3) convolutions with instance norm
// and leaky ReLU; the first convolution of every stage after the first is strided (the stride of
// that stage, per axis, so anisotropic data can keep its thin axis). The decoder upsamples with a
// transposed convolution (kernel = stride), optionally gates the skip connection with an additive
// attention gate (Oktay et al. 2018), concatenates, and applies the same conv block. A 1x1 head
// gives logits at full resolution, and with deep supervision at the coarser decoder stages too.
// Residual encoder: each encoder stage is a residual block (1x1 projection when shape changes).
// Dropout (for MC-dropout uncertainty) sits before the second conv of each decoder stage.

#include <torch/torch.h>

#include <array>
#include <vector>

namespace tumorlab::model {

struct UNetConfig {
  int dims = 2;                                 // 2 or 3
  int in_channels = 1;
  int num_classes = 2;                          // including background
  std::vector<int> features{16, 32, 64, 128, 256};
  std::vector<std::array<int, 3>> strides;      // one per stage after the first (x, y, z); default 2
  int convs_per_stage = 2;
  bool residual_encoder = false;
  bool attention_gates = false;
  bool deep_supervision = false;
  double dropout = 0.0;
};

class ConvNormActImpl : public torch::nn::Module {
 public:
  ConvNormActImpl(int dims, int in, int out, std::array<int, 3> stride, bool act = true);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::AnyModule conv_, norm_;
  bool act_;
};
TORCH_MODULE(ConvNormAct);

class StageImpl : public torch::nn::Module {
 public:
  StageImpl(int dims, int in, int out, std::array<int, 3> stride, int convs, bool residual, double dropout);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::ModuleList convs_;
  torch::nn::AnyModule projection_;  // residual only, when shapes differ
  torch::nn::AnyModule dropout_;
  bool residual_, has_projection_ = false, has_dropout_ = false;
};
TORCH_MODULE(Stage);

class AttentionGateImpl : public torch::nn::Module {
 public:
  AttentionGateImpl(int dims, int channels);
  torch::Tensor forward(torch::Tensor skip, torch::Tensor gate);

 private:
  torch::nn::AnyModule wx_, wg_, psi_;
};
TORCH_MODULE(AttentionGate);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);
  // Logits, full resolution first; with deep supervision and in training mode also the coarser
  // decoder outputs (each at its own resolution).
  std::vector<torch::Tensor> forward(torch::Tensor x);
  const UNetConfig& config() const { return config_; }
  // Keeps dropout active in eval mode (MC-dropout sampling).
  void set_mc_dropout(bool on);

 private:
  UNetConfig config_;
  torch::nn::ModuleList encoder_, upsample_, decoder_, gates_, heads_;
};
TORCH_MODULE(UNet);

struct Plans;
// The network a plans.json describes (channels and classes from the plans too).
UNetConfig unet_config_from_plans(const Plans& plans);

// Running mean of weights: average <- (average * n + net) / (n + 1) over every floating-point
// parameter and buffer (n = 0 copies `net`); other buffers are copied. Both from the same config.
void average_into(UNet& average, UNet& net, std::size_t n);

// Total number of trainable parameters.
int64_t parameter_count(torch::nn::Module& module);

}  // namespace tumorlab::model
