#pragma once
// INTERNAL to src/model (includes torch through unet.h): sliding-window inference and writing
// model bundles with weights. Everything outside src/model uses predictor.h and bundle.h.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"
#include "tumorlab/model/unet.h"

namespace tumorlab::model {

struct WindowOptions {
  std::array<int, 3> patch{64, 64, 1};  // voxels (x, y, z); z = 1 runs a 2D network slice by slice
  double overlap = 0.5;                 // fraction of the patch shared by neighbouring windows
  int batch = 4;                        // windows per forward pass
  std::vector<int> mirror_axes;         // TTA: every combination of flips along these (x=0, y=1, z=2)
  int mc_samples = 0;                   // > 0: that many passes per variant with dropout active
  bool bf16 = false;                    // bfloat16 autocast
};

// Start positions of windows of `patch` voxels over `size` voxels (size >= patch), as nnU-Net:
// ceil((size - patch) / (patch * (1 - overlap))) + 1 windows spread evenly, first at 0, last at
// size - patch.
std::vector<int64_t> window_starts(int64_t size, int64_t patch, double overlap);

// Gaussian importance map (Z, Y, X) = patch reversed: sigma = patch / 8 per axis, centred, max 1
// (nnU-Net). An axis of size 1 has weight 1.
torch::Tensor gaussian_importance(const std::array<int, 3>& patch);

// Mean softmax over windows (Gaussian weighted), flips and MC-dropout samples.
// `image`: (C, Z, Y, X) float32. Returns (K, Z, Y, X) float32 class probabilities summing to 1.
// Images smaller than the patch are zero-padded (centred) and the result cropped back.
// The network must be in eval mode; runs under InferenceMode.
torch::Tensor sliding_window(UNet& net, const torch::Tensor& image, const WindowOptions& options);
// The same for an ensemble: the mean over the networks too (each window batch goes through every
// network in turn, so memory stays that of one network's pass).
torch::Tensor sliding_window(std::vector<UNet>& nets, const torch::Tensor& image, const WindowOptions& options);

// The mirror variants: every subset of `axes` (axes whose patch extent is 1 are left out),
// as tensor dims of a (N, C, Z, Y, X) tensor. The first variant is the identity (empty).
std::vector<std::vector<int64_t>> mirror_variants(const std::vector<int>& axes, const std::array<int, 3>& patch);

// Writes a complete bundle: model.pt (torch::save of `net`), plans.json, bundle.json.
// Used by tests and by the trainer's export. Error(IoFailure) when a file cannot be written.
void save_bundle(const std::filesystem::path& folder, const Plans& plans, UNet& net, const BundleMetadata& metadata);

// The network's input for plans.network.context_slices = `context` (2D networks): (C, Z, Y, X) ->
// (C * (2 * context + 1), Z, Y, X), channel c * (2 * context + 1) + context + dz holding slice
// z + dz (clamped at the ends), as the sampler builds training patches. context 0: `image` itself.
torch::Tensor with_context_slices(const torch::Tensor& image, int context);

// Copies every weight of `from` (built with `from_context` neighbouring slices) into `to` (built
// with `to_context` >= from_context). A tensor whose input-channel dim (dim 1: the first
// convolution, a first-stage residual projection) grows with the context gets `from`'s weights at
// the slices both networks see and zeros for the new neighbours, so `to` computes what `from`
// computed until training moves it. Error(BadArgument) naming `source` and the tensor otherwise.
void transfer_weights(UNet& from, int from_context, UNet& to, int to_context, const std::string& source);

// Loads a weight file of the bundle (model.pt: the only network, or an ensemble's first) into a
// network built from `plans`, checking every tensor's shape. The stored dtype comes from the
// bundle's metadata: `metadata` when the caller has read it already, else the folder's bundle.json
// (float32 when there is none).
// Errors: FileNotFound (missing file), InvalidDataset (unreadable or mismatched weights).
UNet load_bundle_network(const std::filesystem::path& folder, const Plans& plans,
                         const std::string& weights_file = kBundleWeightsFile,
                         const BundleMetadata* metadata = nullptr);

}  // namespace tumorlab::model
