#pragma once
// INTERNAL to src/model: segmentation losses (includes torch).
//
// soft Dice: "batch Dice" as in nnU-Net: per foreground class c, over the whole batch,
//   dice_c = (2 TP_c + smooth) / (2 TP_c + FP_c + FN_c + smooth), with soft TP/FP/FN from the
//   softmax and smooth = 1e-5; dice loss = 1 - mean_c dice_c (0 for a perfect prediction).
// dice_ce:    dice loss + cross-entropy (mean over voxels).
// dice_focal: dice loss + focal loss (gamma = 2, mean over voxels).
// Everything is computed in float32 (logits are cast up when they come from bf16 autocast).
// Deep supervision: outputs[k] is compared with the target downsampled by nearest neighbour to
// its size; weights 1, 1/2, 1/4, ... normalised to sum 1.

#include <torch/torch.h>

#include <string>
#include <vector>

namespace tumorlab::model {

struct LossOptions {
  std::string kind = "dice_ce";  // "dice_ce" or "dice_focal"
  double smooth = 1e-5;
  double focal_gamma = 2.0;
};

// logits (N, C, spatial...), target (N, spatial...) integer labels.
torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& target, double smooth = 1e-5);
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& options);
torch::Tensor deep_supervision_loss(const std::vector<torch::Tensor>& outputs, const torch::Tensor& target,
                                    const LossOptions& options);

// Global ("pseudo") Dice counts over foreground classes from argmax predictions: adds TP, FP, FN
// per class (index c-1 for class c) to the accumulators.
void accumulate_dice_counts(const torch::Tensor& logits, const torch::Tensor& target, std::vector<double>& tp,
                            std::vector<double>& fp, std::vector<double>& fn);

}  // namespace tumorlab::model
