#include "tumorlab/model/loss.h"

namespace tumorlab::model {
namespace F = torch::nn::functional;

namespace {
torch::Tensor one_hot_channels(const torch::Tensor& target, int64_t classes) {
  // (N, spatial...) -> (N, C, spatial...) float
  return torch::one_hot(target.to(torch::kLong), classes).movedim(-1, 1).to(torch::kFloat);
}
}  // namespace

torch::Tensor dice_loss(const torch::Tensor& logits_in, const torch::Tensor& target, double smooth) {
  const torch::Tensor logits = logits_in.to(torch::kFloat);
  const int64_t C = logits.size(1);
  const torch::Tensor probs = torch::softmax(logits, 1);
  const torch::Tensor onehot = one_hot_channels(target, C);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < logits.dim(); ++d) dims.push_back(d);
  const torch::Tensor tp = (probs * onehot).sum(dims);
  const torch::Tensor fp = (probs * (1 - onehot)).sum(dims);
  const torch::Tensor fn = ((1 - probs) * onehot).sum(dims);
  const torch::Tensor dice = (2 * tp + smooth) / torch::clamp(2 * tp + fp + fn + smooth, 1e-8);
  return 1 - dice.slice(0, 1).mean();  // foreground classes only
}

torch::Tensor segmentation_loss(const torch::Tensor& logits_in, const torch::Tensor& target,
                                const LossOptions& options) {
  const torch::Tensor logits = logits_in.to(torch::kFloat);
  const torch::Tensor t = target.to(torch::kLong);
  torch::Tensor second;
  if (options.kind == "dice_focal") {
    const torch::Tensor logp = torch::log_softmax(logits, 1).gather(1, t.unsqueeze(1)).squeeze(1);
    const torch::Tensor p = logp.exp();
    second = (-torch::pow(1 - p, options.focal_gamma) * logp).mean();
  } else {
    second = F::cross_entropy(logits, t);
  }
  return dice_loss(logits, t, options.smooth) + second;
}

torch::Tensor deep_supervision_loss(const std::vector<torch::Tensor>& outputs, const torch::Tensor& target,
                                    const LossOptions& options) {
  double total_weight = 0;
  for (std::size_t k = 0; k < outputs.size(); ++k) total_weight += 1.0 / static_cast<double>(1 << k);
  torch::Tensor loss;
  const torch::Tensor tf = target.unsqueeze(1).to(torch::kFloat);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    torch::Tensor t = target;
    const auto out_sizes = outputs[k].sizes().slice(2).vec();
    const auto t_sizes = target.sizes().slice(1).vec();
    if (out_sizes != t_sizes) {
      t = F::interpolate(tf, F::InterpolateFuncOptions().size(out_sizes).mode(torch::kNearest)).squeeze(1).to(torch::kLong);
    }
    const double w = (1.0 / static_cast<double>(1 << k)) / total_weight;
    torch::Tensor l = segmentation_loss(outputs[k], t, options) * w;
    loss = k == 0 ? l : loss + l;
  }
  return loss;
}

void accumulate_dice_counts(const torch::Tensor& logits, const torch::Tensor& target, std::vector<double>& tp,
                            std::vector<double>& fp, std::vector<double>& fn) {
  const int64_t C = logits.size(1);
  tp.resize(static_cast<std::size_t>(C - 1), 0.0);
  fp.resize(static_cast<std::size_t>(C - 1), 0.0);
  fn.resize(static_cast<std::size_t>(C - 1), 0.0);
  const torch::Tensor pred = logits.argmax(1);
  const torch::Tensor t = target.to(torch::kLong);
  for (int64_t c = 1; c < C; ++c) {
    const torch::Tensor p = pred == c, r = t == c;
    const auto i = static_cast<std::size_t>(c - 1);
    tp[i] += static_cast<double>((p & r).sum().item<int64_t>());
    fp[i] += static_cast<double>((p & ~r).sum().item<int64_t>());
    fn[i] += static_cast<double>((~p & r).sum().item<int64_t>());
  }
}

}  // namespace tumorlab::model
