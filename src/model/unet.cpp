#include "tumorlab/model/unet.h"

#include "tumorlab/core/error.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {
namespace {

torch::ExpandingArray<2> arr2(std::array<int, 3> v) { return torch::ExpandingArray<2>({v[1], v[0]}); }
torch::ExpandingArray<3> arr3(std::array<int, 3> v) { return torch::ExpandingArray<3>({v[2], v[1], v[0]}); }
// Tensors are laid out (N, C, [Z,] Y, X): the spatial order is reversed from our (x, y, z).

torch::nn::AnyModule conv(int dims, int in, int out, int kernel, std::array<int, 3> stride, bool bias) {
  if (dims == 2) {
    return torch::nn::AnyModule(torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).stride(arr2(stride)).padding(kernel / 2).bias(bias)));
  }
  return torch::nn::AnyModule(torch::nn::Conv3d(
      torch::nn::Conv3dOptions(in, out, kernel).stride(arr3(stride)).padding(kernel / 2).bias(bias)));
}

torch::nn::AnyModule norm(int dims, int channels) {
  if (dims == 2) {
    return torch::nn::AnyModule(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(channels).affine(true)));
  }
  return torch::nn::AnyModule(torch::nn::InstanceNorm3d(torch::nn::InstanceNorm3dOptions(channels).affine(true)));
}

torch::nn::AnyModule upconv(int dims, int in, int out, std::array<int, 3> stride) {
  if (dims == 2) {
    return torch::nn::AnyModule(
        torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, arr2(stride)).stride(arr2(stride))));
  }
  return torch::nn::AnyModule(
      torch::nn::ConvTranspose3d(torch::nn::ConvTranspose3dOptions(in, out, arr3(stride)).stride(arr3(stride))));
}

torch::nn::AnyModule dropout(int dims, double p) {
  if (dims == 2) return torch::nn::AnyModule(torch::nn::Dropout2d(p));
  return torch::nn::AnyModule(torch::nn::Dropout3d(p));
}

bool unit(std::array<int, 3> s) { return s[0] == 1 && s[1] == 1 && s[2] == 1; }

}  // namespace

ConvNormActImpl::ConvNormActImpl(int dims, int in, int out, std::array<int, 3> stride, bool act)
    : conv_(conv(dims, in, out, 3, stride, true)), norm_(norm(dims, out)), act_(act) {
  register_module("conv", conv_.ptr());
  register_module("norm", norm_.ptr());
}

torch::Tensor ConvNormActImpl::forward(torch::Tensor x) {
  x = norm_.forward(conv_.forward(x));
  return act_ ? torch::leaky_relu(x, 0.01) : x;
}

StageImpl::StageImpl(int dims, int in, int out, std::array<int, 3> stride, int convs, bool residual, double p)
    : residual_(residual) {
  convs_ = register_module("convs", torch::nn::ModuleList());
  for (int c = 0; c < convs; ++c) {
    // In a residual block the last activation comes after the addition.
    const bool act = !(residual && c == convs - 1);
    convs_->push_back(ConvNormAct(dims, c == 0 ? in : out, out, c == 0 ? stride : std::array<int, 3>{1, 1, 1}, act));
  }
  if (residual && (in != out || !unit(stride))) {
    projection_ = conv(dims, in, out, 1, stride, false);
    register_module("projection", projection_.ptr());
    has_projection_ = true;
  }
  if (p > 0) {
    dropout_ = dropout(dims, p);
    register_module("dropout", dropout_.ptr());
    has_dropout_ = true;
  }
}

torch::Tensor StageImpl::forward(torch::Tensor x) {
  torch::Tensor identity = x;
  for (std::size_t c = 0; c < convs_->size(); ++c) {
    if (c == 1 && has_dropout_) x = dropout_.forward(x);
    x = convs_[c]->as<ConvNormAct>()->forward(x);
  }
  if (residual_) {
    x = x + (has_projection_ ? projection_.forward(identity) : identity);
    x = torch::leaky_relu(x, 0.01);
  }
  return x;
}

AttentionGateImpl::AttentionGateImpl(int dims, int channels) {
  const int inter = std::max(1, channels / 2);
  wx_ = conv(dims, channels, inter, 1, {1, 1, 1}, false);
  wg_ = conv(dims, channels, inter, 1, {1, 1, 1}, true);
  psi_ = conv(dims, inter, 1, 1, {1, 1, 1}, true);
  register_module("wx", wx_.ptr());
  register_module("wg", wg_.ptr());
  register_module("psi", psi_.ptr());
}

torch::Tensor AttentionGateImpl::forward(torch::Tensor skip, torch::Tensor gate) {
  torch::Tensor a = torch::relu(wx_.forward(skip) + wg_.forward(gate));
  return skip * torch::sigmoid(psi_.forward(a));
}

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  const auto& f = config.features;
  const int stages = static_cast<int>(f.size());
  if (config.dims != 2 && config.dims != 3) throw Error(ErrorCode::BadArgument, "UNet: dims must be 2 or 3");
  if (stages < 2) throw Error(ErrorCode::BadArgument, "UNet: at least 2 stages (features) are needed");
  if (config_.strides.empty()) {
    for (int s = 1; s < stages; ++s) config_.strides.push_back({2, 2, config.dims == 3 ? 2 : 1});
  }
  if (static_cast<int>(config_.strides.size()) != stages - 1) {
    throw Error(ErrorCode::BadArgument, "UNet: " + std::to_string(stages - 1) + " strides expected, got " +
                                            std::to_string(config_.strides.size()));
  }
  encoder_ = register_module("encoder", torch::nn::ModuleList());
  upsample_ = register_module("upsample", torch::nn::ModuleList());
  decoder_ = register_module("decoder", torch::nn::ModuleList());
  gates_ = register_module("gates", torch::nn::ModuleList());
  heads_ = register_module("heads", torch::nn::ModuleList());
  for (int s = 0; s < stages; ++s) {
    const auto stride = s == 0 ? std::array<int, 3>{1, 1, 1} : config_.strides[s - 1];
    encoder_->push_back(Stage(config.dims, s == 0 ? config.in_channels : f[s - 1], f[s], stride,
                              config.convs_per_stage, config.residual_encoder, 0.0));
  }
  // Decoder stage d (0 = finest) upsamples from stage d+1 to stage d.
  for (int d = 0; d < stages - 1; ++d) {
    upsample_->push_back(upconv(config.dims, f[d + 1], f[d], config_.strides[d]).ptr());
    decoder_->push_back(Stage(config.dims, 2 * f[d], f[d], std::array<int, 3>{1, 1, 1}, config.convs_per_stage, false,
                              config.dropout));
    if (config.attention_gates) gates_->push_back(AttentionGate(config.dims, f[d]));
    heads_->push_back(conv(config.dims, f[d], config.num_classes, 1, {1, 1, 1}, true).ptr());
  }
}

void UNetImpl::set_mc_dropout(bool on) {
  for (auto& m : modules(false)) {
    if (auto* d2 = m->as<torch::nn::Dropout2d>()) d2->train(on);
    if (auto* d3 = m->as<torch::nn::Dropout3d>()) d3->train(on);
  }
}

std::vector<torch::Tensor> UNetImpl::forward(torch::Tensor x) {
  const int stages = static_cast<int>(config_.features.size());
  std::vector<torch::Tensor> skips;
  for (int s = 0; s < stages; ++s) {
    x = encoder_[s]->as<Stage>()->forward(x);
    if (s < stages - 1) skips.push_back(x);
  }
  std::vector<torch::Tensor> outputs;  // coarse to fine while decoding
  const bool supervise = config_.deep_supervision && is_training();
  for (int d = stages - 2; d >= 0; --d) {
    torch::Tensor up;
    if (config_.dims == 2) up = upsample_[d]->as<torch::nn::ConvTranspose2d>()->forward(x);
    else up = upsample_[d]->as<torch::nn::ConvTranspose3d>()->forward(x);
    torch::Tensor skip = skips[d];
    if (config_.attention_gates) skip = gates_[d]->as<AttentionGate>()->forward(skip, up);
    x = decoder_[d]->as<Stage>()->forward(torch::cat({up, skip}, 1));
    if (d == 0 || supervise) {
      torch::Tensor logits = config_.dims == 2 ? heads_[d]->as<torch::nn::Conv2d>()->forward(x)
                                               : heads_[d]->as<torch::nn::Conv3d>()->forward(x);
      outputs.push_back(logits);
    }
  }
  std::reverse(outputs.begin(), outputs.end());
  return outputs;
}

void average_into(UNet& average, UNet& net, std::size_t n) {
  torch::NoGradGuard no_grad;
  auto a = average->named_parameters(true), ab = average->named_buffers(true);
  const double k = static_cast<double>(n) / static_cast<double>(n + 1);
  auto update = [&](torch::Tensor& dst, const torch::Tensor& src) {
    if (n == 0 || !dst.is_floating_point()) dst.copy_(src);
    else dst.mul_(k).add_(src, 1.0 - k);
  };
  for (const auto& p : net->named_parameters(true)) update(a[p.key()], p.value());
  for (const auto& b : net->named_buffers(true)) update(ab[b.key()], b.value());
}

UNetConfig unet_config_from_plans(const Plans& plans) {
  UNetConfig c;
  c.dims = plans.network.dims;
  c.in_channels = plans.input_channels();
  c.num_classes = plans.num_classes();
  c.features = plans.network.features;
  c.strides = plans.network.strides;
  c.convs_per_stage = plans.network.convs_per_stage;
  c.residual_encoder = plans.network.residual_encoder;
  c.attention_gates = plans.network.attention_gates;
  c.deep_supervision = plans.network.deep_supervision;
  c.dropout = plans.network.dropout;
  return c;
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace tumorlab::model
