#pragma once
// plans.json: everything training and inference need, in a file a person can read and edit
// (nnU-Net's idea). The planner writes it from a dataset fingerprint; `tumorlab train` and
// `tumorlab predict` read everything from it and never rely on code defaults for a trained model.

#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/normalize.h"

namespace tumorlab::model {

inline constexpr int kPlansVersion = 1;

struct ChannelPlan {
  std::string name;                          // "FLAIR", "PET-MIP", ...
  imaging::NormalizationParams normalization;  // CT: fixed numbers from the dataset; ZScore: per case
  bool invert = false;                       // x -> (max - x) before normalising (dark = high uptake)
  // ZScore only: which voxels give the per-case mean and std (see preprocess.h):
  // "above_zero" (voxels > 0, nnU-Net's nonzero mask), "all", or "otsu" (above the Otsu threshold).
  std::string foreground = "above_zero";
};

struct NetworkPlan {
  int dims = 2;                               // 2 or 3
  std::vector<int> features{16, 32, 64, 128, 256};
  std::vector<std::array<int, 3>> strides;    // per stage after the first, (x, y, z)
  int convs_per_stage = 2;
  bool residual_encoder = false;
  bool attention_gates = false;
  bool deep_supervision = true;
  double dropout = 0.0;                       // decoder dropout, enables MC-dropout uncertainty
  // 2D networks on 3D volumes only ("2.5D"): the network also sees this many neighbouring slices
  // on each side of the slice it segments, as extra input channels. Input channel order: for each
  // image channel c, slices z-k .. z+k (k = context_slices), so the network takes
  // channels.size() * (2k + 1) channels; slices beyond the volume's ends repeat the end slice.
  int context_slices = 0;
};

struct AugmentationPlan {
  bool mirror = true;                         // random flips along mirror_axes
  std::vector<int> mirror_axes{0, 1};         // axes (x=0, y=1, z=2) that may be flipped
  double rotation_deg = 15;                   // in-plane (x-y) rotation range, +-
  double scale_low = 0.85, scale_high = 1.15;
  bool elastic = false;
  double gamma_low = 0.7, gamma_high = 1.5;
  double brightness = 0.15;                   // multiplicative, +-
  double contrast = 0.15;                     // +-
  double noise_std = 0.05;                    // Gaussian noise (in normalised units)
  double blur_sigma_max = 1.0;                // voxels
  double probability = 0.2;                   // per intensity transform
};

struct TrainingPlan {
  int epochs = 100;
  int iterations_per_epoch = 100;
  int validation_cases = 0;                   // 0: use the split file
  double learning_rate = 0.01;
  double momentum = 0.99;
  double weight_decay = 3e-5;
  std::string loss = "dice_ce";               // "dice_ce" or "dice_focal"
  double foreground_oversample = 0.33;        // share of patches centred on foreground
  bool bf16 = false;
  int seed = 42;
  // Stochastic weight averaging: the run also keeps the mean of the weights at the end of each of
  // its last `average_epochs` epochs (0 = off), exported with `train --export-checkpoint average`.
  // Averaging the end points of a few epochs of a constant-ish learning rate smooths out the
  // epoch-to-epoch noise of one checkpoint (Izmailov et al., 2018).
  int average_epochs = 0;
  AugmentationPlan augmentation;
};

struct InferencePlan {
  double overlap = 0.5;                       // sliding-window overlap (fraction of the patch)
  int window_batch = 4;                       // windows per forward pass
  std::vector<int> tta_mirror_axes{0};        // axes mirrored by --tta
  int mc_dropout_samples = 0;                 // used for --uncertainty when dropout > 0
  double threshold = 0.5;                     // foreground probability threshold (binary tasks)
  double min_lesion_ml = 0;                   // components smaller than this are removed
  int64_t min_lesion_voxels = 0;              // ... or smaller than this many voxels
  // Components smaller than this fraction of the largest predicted component are removed
  // (0 = off, 1 = only the largest is kept): the prior of a disease with one lesion per patient.
  double min_fraction_of_largest = 0;
  // bfloat16 autocast for the network by default, on CPUs that compute bf16 natively (AVX-512 BF16
  // or AMX; elsewhere bf16 is emulated and slower, so float32 runs). Set it only after the model's
  // card shows held-out Dice with bf16 equal to float32; `predict --fp32` / `--bf16` override it.
  bool bf16 = false;
};

struct Plans {
  int version = kPlansVersion;
  std::string name;                           // model name, e.g. "mip-pet-2d"
  std::string modality;                       // "PT", "MR", "CT": inputs of another modality are refused
  std::vector<ChannelPlan> channels;
  std::map<std::string, int> labels{{"background", 0}, {"tumor", 1}};
  std::string file_ending = ".nii.gz";        // of the training data
  Vec3 target_spacing_mm{1, 1, 1};
  std::array<int, 3> patch_size{256, 256, 1}; // voxels (x, y, z); z = 1 for 2D
  int batch_size = 8;
  NetworkPlan network;
  TrainingPlan training;
  InferencePlan inference;

  int num_classes() const;
  int dims() const { return network.dims; }
  // Channels the network takes: channels.size() * (2 * network.context_slices + 1).
  int input_channels() const;
};

nlohmann::json to_json(const Plans& plans);
// Parses and validates (Error(InvalidDataset) naming the field and what was expected).
Plans plans_from_json(const nlohmann::json& json, const std::string& source = "plans.json");
Plans load_plans(const std::filesystem::path& path);
void save_plans(const Plans& plans, const std::filesystem::path& path);

// True when this CPU computes bfloat16 natively (AVX-512 BF16; AMX CPUs have it too), where bf16
// autocast makes convolutions faster; elsewhere LibTorch emulates it and float32 is faster.
bool cpu_has_native_bf16();
// Whether a run uses bf16 autocast: the caller's explicit choice (--bf16 / --fp32), else what the
// plans ask for (training.bf16 or inference.bf16) on CPUs with native bf16.
bool resolve_bf16(std::optional<bool> requested, bool planned);

}  // namespace tumorlab::model
