// model_tool: support for bench/model_bench.py.
//
//   model_tool untrained PLANS.json OUTDIR [SEED]
//     writes a bundle with an untrained network for PLANS (model::write_untrained_bundle): for
//     timing before the trained bundles exist (weights do not change the speed).
//
//   model_tool logits BUNDLE INPUT.f32 C Z Y X LOGITS.f32 PROBS.f32 [--tta] [--threads N]
//     runs the bundle's network on a raw float32 tensor, for the check that bench/pytorch_unet.py
//     (the same U-Net in plain PyTorch) computes what tumorlab computes.
//
//   model_tool average PLANS.json OUT.pt IN1.pt IN2.pt ...
//     writes the mean of checkpoint weight files (float32, as train's last/model.pt) of the
//     plans' network: weight averaging of epoch snapshots taken before plans.training.average_epochs
//     existed. Put OUT.pt at RUN/last/average.pt with the epochs in state.json's "averaged_epochs"
//     and export with `tumorlab train ... --export-only --export-checkpoint average`.
//
// INPUT.f32: C*Z*Y*X little-endian float32, (C, Z, Y, X) order, already preprocessed; C is the
//   network's input channels (plans' channels x (2 * network.context_slices + 1)), slices already
//   stacked as channels.
// LOGITS.f32: the network's logits for the first patch-sized window at the origin of the input
//   (one forward pass of shape (1, C, pz, py, px); 2D networks take (1, C, py, px)), as float32
//   (K, pz, py, px). The input must be at least one patch in size.
// PROBS.f32: sliding_window() on the whole input with the plans' window settings
//   (overlap, window batch, Gaussian weighting; mirroring with --tta), as float32 (K, Z, Y, X).
// Prints the two output shapes on stdout.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"
#include "tumorlab/model/sliding_window.h"
#include "tumorlab/model/unet.h"

namespace {

void write_tensor(const torch::Tensor& t, const std::string& path) {
  const torch::Tensor c = t.to(torch::kFloat32).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * 4));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

}  // namespace

int untrained(int argc, char** argv) {
  using namespace tumorlab::model;
  const Plans plans = load_plans(argv[2]);
  write_untrained_bundle(argv[3], plans, argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0);
  std::cout << "wrote an untrained bundle of " << plans.name << " to " << argv[3] << "\n";
  return 0;
}

int logits(int argc, char** argv) {
  using namespace tumorlab::model;
  {
    const std::string bundle = argv[1];
    const int64_t c = std::atoll(argv[3]), z = std::atoll(argv[4]), y = std::atoll(argv[5]), x = std::atoll(argv[6]);
    bool tta = false;
    int threads = 0;
    for (int i = 9; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--tta") tta = true;
      if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    }
    if (threads > 0) at::set_num_threads(threads);
    const Plans plans = load_plans(std::filesystem::path(bundle) / kBundlePlansFile);
    UNet net = load_bundle_network(bundle, plans);

    std::vector<float> data(static_cast<std::size_t>(c * z * y * x));
    std::ifstream in(argv[2], std::ios::binary);
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * 4));
    if (!in) throw std::runtime_error(std::string(argv[2]) + ": shorter than C*Z*Y*X float32 values");
    const torch::Tensor image = torch::from_blob(data.data(), {c, z, y, x}, torch::kFloat32);

    torch::InferenceMode guard;
    const auto& p = plans.patch_size;  // (x, y, z)
    if (z < p[2] || y < p[1] || x < p[0]) throw std::runtime_error("input smaller than one patch");
    torch::Tensor window = image.slice(1, 0, p[2]).slice(2, 0, p[1]).slice(3, 0, p[0]).unsqueeze(0);
    torch::Tensor logits;
    if (plans.network.dims == 2) {
      logits = net->forward(window.squeeze(2))[0].unsqueeze(2);
    } else {
      logits = net->forward(window)[0];
    }
    write_tensor(logits[0], argv[7]);

    WindowOptions w;
    w.patch = plans.patch_size;
    w.overlap = plans.inference.overlap;
    w.batch = plans.inference.window_batch;
    if (tta) w.mirror_axes = plans.inference.tta_mirror_axes;
    const torch::Tensor probs = sliding_window(net, image, w);
    write_tensor(probs, argv[8]);
    std::cout << "logits " << logits[0].sizes() << " probs " << probs.sizes() << "\n";
  }
  return 0;
}

int average(int argc, char** argv) {
  using namespace tumorlab::model;
  const Plans plans = load_plans(argv[2]);
  UNet mean(unet_config_from_plans(plans));
  const int n = argc - 4;
  for (int i = 0; i < n; ++i) {
    UNet w(unet_config_from_plans(plans));
    torch::load(w, argv[4 + i]);
    average_into(mean, w, static_cast<std::size_t>(i));
  }
  torch::save(mean, argv[3]);
  std::cout << "averaged " << n << " checkpoints into " << argv[3] << "\n";
  return 0;
}

int main(int argc, char** argv) {
  const std::string verb = argc > 1 ? argv[1] : "";
  try {
    if (verb == "untrained" && argc >= 4) return untrained(argc, argv);
    if (verb == "logits" && argc >= 10) return logits(argc - 1, argv + 1);
    if (verb == "average" && argc >= 5) return average(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "model_tool " << verb << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: model_tool untrained PLANS.json OUTDIR [SEED]\n"
               "       model_tool logits BUNDLE INPUT.f32 C Z Y X LOGITS.f32 PROBS.f32 [--tta] [--threads N]\n"
               "       model_tool average PLANS.json OUT.pt IN1.pt IN2.pt ...\n";
  return 2;
}
