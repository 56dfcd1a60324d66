// Inference with a model bundle: preprocessing from the plans, Gaussian-weighted sliding window
// with batched windows, mirroring TTA and MC-dropout, resampling back to the input grid,
// small-lesion removal, uncertainty. See predictor.h and docs/uncertainty.md.
#include "tumorlab/model/predictor.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/imaging/components.h"
#include "tumorlab/imaging/crop.h"
#include "tumorlab/imaging/resample.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/preprocess.h"
#include "tumorlab/model/sliding_window.h"
#include "tumorlab/model/tensor_memory.h"

namespace fs = std::filesystem;

namespace tumorlab::model {
namespace {

// Normalised entropy below this counts as "confident" for the case score (docs/uncertainty.md).
constexpr double kEntropyFloor = 0.1;

std::string first_line(const char* what) {
  std::string s(what ? what : "");
  const auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

std::string shape_string(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

void configure_threads(int threads) {
  install_tensor_memory();  // huge pages + reuse of large blocks (tensor_memory.h)
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (at::get_num_threads() != n) at::set_num_threads(n);
  static std::once_flag once;
  std::call_once(once, [n] {
    try {
      at::set_num_interop_threads(std::min(n, 2));
    } catch (const c10::Error&) {
      // Already started by someone else (the trainer, a test): keep what it set.
    }
  });
}

// bfloat16 autocast on this thread for the lifetime of the guard.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on) : on_(on) {
    if (!on_) return;
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!on_) return;
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
    at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

class McDropoutGuard {
 public:
  McDropoutGuard(std::vector<UNet>& nets, bool on) : nets_(nets), on_(on) {
    if (on_)
      for (auto& net : nets_) net->set_mc_dropout(true);
  }
  ~McDropoutGuard() {
    if (on_)
      for (auto& net : nets_) net->set_mc_dropout(false);
  }
  McDropoutGuard(const McDropoutGuard&) = delete;
  McDropoutGuard& operator=(const McDropoutGuard&) = delete;

 private:
  std::vector<UNet>& nets_;
  bool on_;
};

torch::Tensor forward_logits(UNet& net, const torch::Tensor& x5) {
  if (net->config().dims == 2) return net->forward(x5.squeeze(2))[0].unsqueeze(2);
  return net->forward(x5)[0];
}

// The box of `target` voxels that the voxels `box` of `input` overlap (both grids share the
// direction up to axis order when one is resampled from the other; we take the bounding box of
// the eight corners, so any direction works).
imaging::Box map_box(const Geometry& input, const imaging::Box& box, const Geometry& target) {
  double lo[3] = {1e300, 1e300, 1e300}, hi[3] = {-1e300, -1e300, -1e300};
  for (int c = 0; c < 8; ++c) {
    IndexIJK idx{(c & 1) ? box.end[0] - 0.5 : box.begin[0] - 0.5, (c & 2) ? box.end[1] - 0.5 : box.begin[1] - 0.5,
                 (c & 4) ? box.end[2] - 0.5 : box.begin[2] - 0.5};
    const IndexIJK t = target.physical_to_index(input.index_to_physical(idx));
    const double v[3] = {t.i, t.j, t.k};
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], v[a]);
      hi[a] = std::max(hi[a], v[a]);
    }
  }
  imaging::Box out;
  for (int a = 0; a < 3; ++a) {
    // Voxel t covers [t - 0.5, t + 0.5].
    out.begin[a] = std::clamp<int64_t>(static_cast<int64_t>(std::floor(lo[a] + 0.5)), 0, target.size[a]);
    out.end[a] = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(hi[a] - 0.5)) + 1, 0, target.size[a]);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Sliding window

std::vector<int64_t> window_starts(int64_t size, int64_t patch, double overlap) {
  if (size <= patch) return {0};
  const double target_step = std::max(1e-9, static_cast<double>(patch) * (1.0 - overlap));
  int64_t steps = static_cast<int64_t>(std::ceil(static_cast<double>(size - patch) / target_step)) + 1;
  steps = std::min(steps, size - patch + 1);  // never two windows at one position
  std::vector<int64_t> starts;
  const double step = static_cast<double>(size - patch) / static_cast<double>(steps - 1);
  for (int64_t s = 0; s < steps; ++s) starts.push_back(static_cast<int64_t>(std::llround(step * s)));
  return starts;
}

torch::Tensor gaussian_importance(const std::array<int, 3>& patch) {
  auto axis = [](int p) {
    if (p <= 1) return torch::ones({std::max(p, 1)});
    const double sigma = p / 8.0, centre = (p - 1) / 2.0;
    auto d = torch::arange(p, torch::kFloat64) - centre;
    return torch::exp(-(d * d) / (2 * sigma * sigma));
  };
  auto g = axis(patch[2]).view({-1, 1, 1}) * axis(patch[1]).view({1, -1, 1}) * axis(patch[0]).view({1, 1, -1});
  g = g / g.max();
  return g.to(torch::kFloat32).contiguous();
}

std::vector<std::vector<int64_t>> mirror_variants(const std::vector<int>& axes, const std::array<int, 3>& patch) {
  std::set<int64_t> dims;
  for (int a : axes) {
    if (a < 0 || a > 2) {
      throw Error(ErrorCode::InvalidDataset,
                  "plans.json inference.tta_mirror_axes: axes are 0 (x), 1 (y), 2 (z); found " + std::to_string(a));
    }
    if (patch[a] > 1) dims.insert(4 - a);  // (N, C, Z, Y, X): x -> 4, y -> 3, z -> 2
  }
  const std::vector<int64_t> d(dims.begin(), dims.end());
  std::vector<std::vector<int64_t>> variants;
  for (uint32_t mask = 0; mask < (1u << d.size()); ++mask) {
    std::vector<int64_t> v;
    for (std::size_t b = 0; b < d.size(); ++b)
      if (mask & (1u << b)) v.push_back(d[b]);
    variants.push_back(v);
  }
  return variants;
}

torch::Tensor sliding_window(UNet& net, const torch::Tensor& image_in, const WindowOptions& o) {
  std::vector<UNet> nets{net};
  return sliding_window(nets, image_in, o);
}

torch::Tensor sliding_window(std::vector<UNet>& nets, const torch::Tensor& image_in, const WindowOptions& o) {
  TORCH_CHECK(!nets.empty(), "sliding_window: no network");
  torch::InferenceMode inference;
  TORCH_CHECK(image_in.dim() == 4, "sliding_window: image must be (C, Z, Y, X)");
  const std::array<int64_t, 3> patch{o.patch[2], o.patch[1], o.patch[0]};  // (Z, Y, X)
  const std::array<int64_t, 3> size{image_in.size(1), image_in.size(2), image_in.size(3)};

  // Zero-pad (centred) axes smaller than the patch.
  std::array<int64_t, 3> pad_lo{0, 0, 0};
  bool padded = false;
  std::vector<int64_t> pad(6, 0);  // constant_pad_nd order: last dim first (x_lo, x_hi, y_lo, y_hi, z_lo, z_hi)
  for (int d = 0; d < 3; ++d) {
    if (size[d] < patch[d]) {
      const int64_t total = patch[d] - size[d];
      pad_lo[d] = total / 2;
      pad[2 * (2 - d)] = pad_lo[d];
      pad[2 * (2 - d) + 1] = total - pad_lo[d];
      padded = true;
    }
  }
  const torch::Tensor image = padded ? torch::constant_pad_nd(image_in, pad, 0) : image_in;
  const std::array<int64_t, 3> full{image.size(1), image.size(2), image.size(3)};

  std::vector<std::array<int64_t, 3>> windows;
  const auto sz = window_starts(full[0], patch[0], o.overlap);
  const auto sy = window_starts(full[1], patch[1], o.overlap);
  const auto sx = window_starts(full[2], patch[2], o.overlap);
  for (int64_t z : sz)
    for (int64_t y : sy)
      for (int64_t x : sx) windows.push_back({z, y, x});

  const torch::Tensor gauss = gaussian_importance(o.patch);
  const int64_t classes = nets.front()->config().num_classes;
  torch::Tensor probs = torch::zeros({classes, full[0], full[1], full[2]}, torch::kFloat32);
  torch::Tensor weight = torch::zeros({full[0], full[1], full[2]}, torch::kFloat32);
  const auto variants = mirror_variants(o.mirror_axes, o.patch);
  const int samples = std::max(1, o.mc_samples);
  const double passes = static_cast<double>(variants.size()) * samples * static_cast<double>(nets.size());
  const int64_t batch = std::max(1, o.batch);

  for (std::size_t first = 0; first < windows.size(); first += batch) {
    const std::size_t last = std::min(windows.size(), first + batch);
    std::vector<torch::Tensor> crops;
    for (std::size_t w = first; w < last; ++w) {
      const auto& s = windows[w];
      crops.push_back(image.slice(1, s[0], s[0] + patch[0]).slice(2, s[1], s[1] + patch[1]).slice(3, s[2], s[2] + patch[2]));
    }
    const torch::Tensor x = torch::stack(crops);  // (B, C, pz, py, px)
    torch::Tensor mean;
    for (const auto& v : variants) {
      const torch::Tensor xv = v.empty() ? x : x.flip(v);
      for (auto& net : nets) {
        for (int s = 0; s < samples; ++s) {
          torch::Tensor p = torch::softmax(forward_logits(net, xv).to(torch::kFloat32), 1);
          if (!v.empty()) p = p.flip(v);
          mean = mean.defined() ? mean.add_(p) : p;  // p is a fresh tensor: no copy needed
        }
      }
    }
    if (passes > 1) mean.div_(passes);
    for (std::size_t w = first; w < last; ++w) {
      const auto& s = windows[w];
      const int64_t b = static_cast<int64_t>(w - first);
      probs.slice(1, s[0], s[0] + patch[0]).slice(2, s[1], s[1] + patch[1]).slice(3, s[2], s[2] + patch[2])
          .addcmul_(mean[b], gauss);  // in place, no (K, patch) temporary
      weight.slice(0, s[0], s[0] + patch[0]).slice(1, s[1], s[1] + patch[1]).slice(2, s[2], s[2] + patch[2])
          .add_(gauss);
    }
  }
  probs.div_(weight.unsqueeze(0));
  if (padded) {
    probs = probs.slice(1, pad_lo[0], pad_lo[0] + size[0])
                .slice(2, pad_lo[1], pad_lo[1] + size[1])
                .slice(3, pad_lo[2], pad_lo[2] + size[2]);
  }
  return probs.contiguous();
}

// ---------------------------------------------------------------------------------------------
// Bundles

void save_bundle(const fs::path& folder, const Plans& plans, UNet& net, const BundleMetadata& metadata) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw Error(ErrorCode::IoFailure, folder.string() + ": cannot create folder: " + ec.message());
  const fs::path weights = folder / kBundleWeightsFile;
  const fs::path tmp = folder / (std::string(kBundleWeightsFile) + ".tmp");
  try {
    torch::save(net, tmp.string());
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::IoFailure, weights.string() + ": cannot write the weights: " + first_line(e.what()));
  }
  fs::rename(tmp, weights, ec);
  if (ec) throw Error(ErrorCode::IoFailure, weights.string() + ": cannot write: " + ec.message());
  save_plans(plans, folder / kBundlePlansFile);
  write_bundle_metadata(metadata, folder);
}

void write_untrained_bundle(const fs::path& folder, const Plans& plans, uint64_t seed) {
  torch::manual_seed(seed);
  UNet net(unet_config_from_plans(plans));
  BundleMetadata metadata = make_bundle_metadata(plans, "untrained", {{"untrained", true}, {"seed", seed}});
  save_bundle(folder, plans, net, metadata);
}

torch::Tensor with_context_slices(const torch::Tensor& image, int context) {
  TORCH_CHECK(image.dim() == 4, "with_context_slices: image must be (C, Z, Y, X)");
  if (context <= 0) return image;
  const int64_t Z = image.size(1);
  std::vector<torch::Tensor> parts;
  for (int64_t c = 0; c < image.size(0); ++c) {
    for (int dz = -context; dz <= context; ++dz) {
      const torch::Tensor idx = torch::clamp(torch::arange(Z, torch::kLong) + dz, 0, Z - 1);
      parts.push_back(image[c].index_select(0, idx));
    }
  }
  return torch::stack(parts, 0);
}

void transfer_weights(UNet& from, int from_context, UNet& to, int to_context, const std::string& source) {
  if (from_context < 0 || to_context < from_context) {
    throw Error(ErrorCode::BadArgument, source + ": cannot initialise a network that sees " + std::to_string(to_context) +
                                            " neighbouring slice(s) per side from one that sees " +
                                            std::to_string(from_context));
  }
  const int64_t from_slices = 2 * from_context + 1, to_slices = 2 * to_context + 1;
  torch::NoGradGuard no_grad;
  auto src = from->named_parameters(true);
  auto src_buffers = from->named_buffers(true);
  auto copy = [&](const std::string& key, torch::Tensor dst, const torch::Tensor* s) {
    if (s == nullptr) throw Error(ErrorCode::BadArgument, source + ": has no tensor '" + key + "' that the network needs");
    const torch::Tensor f = s->to(dst.scalar_type());
    if (f.sizes() == dst.sizes()) {
      dst.copy_(f);
      return;
    }
    bool grows = f.dim() >= 2 && f.dim() == dst.dim() && f.size(1) % from_slices == 0 &&
                 dst.size(1) == f.size(1) / from_slices * to_slices;
    for (int64_t d = 0; grows && d < f.dim(); ++d) grows = d == 1 || f.size(d) == dst.size(d);
    if (!grows) {
      throw Error(ErrorCode::BadArgument, source + ": tensor '" + key + "' has shape " + shape_string(f.sizes().vec()) +
                                              ", the network needs " + shape_string(dst.sizes().vec()));
    }
    dst.zero_();
    const int64_t channels = f.size(1) / from_slices;
    for (int64_t c = 0; c < channels; ++c) {
      dst.narrow(1, c * to_slices + (to_context - from_context), from_slices)
          .copy_(f.narrow(1, c * from_slices, from_slices));
    }
  };
  for (auto& p : to->named_parameters(true)) copy(p.key(), p.value(), src.find(p.key()));
  for (auto& b : to->named_buffers(true)) copy(b.key(), b.value(), src_buffers.find(b.key()));
}

UNet load_bundle_network(const fs::path& folder, const Plans& plans, const std::string& weights_file,
                         const BundleMetadata* metadata) {
  const fs::path path = folder / weights_file;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(ErrorCode::FileNotFound, path.string() + ": missing (the model bundle's weights)");
  }
  UNet net(unet_config_from_plans(plans));
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& p : net->named_parameters(true)) expected[p.key()] = p.value().sizes().vec();
  for (const auto& b : net->named_buffers(true)) expected[b.key()] = b.value().sizes().vec();
  // torch::load keeps the module's dtype and takes the stored bytes as they are, so the module
  // must have the stored dtype first: bundle.json's training.weights_dtype (export_bundle writes
  // float16; untrained bundles and hand-made ones without the field are float32).
  std::string dtype = "float32";
  if (metadata) dtype = weights_dtype(*metadata);
  else if (fs::is_regular_file(folder / kBundleMetadataFile, ec)) dtype = weights_dtype(read_bundle_metadata(folder));
  if (dtype == "float16") net->to(torch::kHalf);
  else if (dtype != "float32") {
    throw Error(ErrorCode::InvalidDataset, (folder / kBundleMetadataFile).string() + ": training.weights_dtype is '" +
                                               dtype + "' (expected float16 or float32)");
  }
  try {
    torch::load(net, path.string());
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": the weights do not load into the network " +
                                               (folder / kBundlePlansFile).string() +
                                               " describes: " + first_line(e.what()));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": cannot read the weights: " + first_line(e.what()));
  }
  // torch::load replaces tensors without comparing shapes: check them.
  auto check = [&](const std::string& key, const torch::Tensor& t) {
    const auto it = expected.find(key);
    if (it != expected.end() && it->second != t.sizes().vec()) {
      throw Error(ErrorCode::InvalidDataset, path.string() + ": tensor '" + key + "' has shape " +
                                                 shape_string(t.sizes().vec()) + ", the network " +
                                                 (folder / kBundlePlansFile).string() + " describes needs " +
                                                 shape_string(it->second));
    }
  };
  for (const auto& p : net->named_parameters(true)) check(p.key(), p.value());
  for (const auto& b : net->named_buffers(true)) check(b.key(), b.value());
  // Bundles store float16 weights (export_bundle); the network computes in float32.
  net->to(torch::kFloat32);
  net->eval();
  return net;
}

// ---------------------------------------------------------------------------------------------
// Predictor

struct Predictor::Impl {
  fs::path folder;
  BundleMetadata metadata;
  Plans plans;
  mutable std::vector<UNet> nets;  // one, or an ensemble's members (bundle.json "weights")
  mutable std::mutex mutex;        // the networks' mode (MC-dropout) is shared state
};

Predictor::Predictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

const Plans& Predictor::plans() const { return impl_->plans; }
std::string Predictor::name() const { return impl_->metadata.name.empty() ? impl_->plans.name : impl_->metadata.name; }
std::string Predictor::version() const { return impl_->metadata.version; }

Predictor Predictor::load(const fs::path& bundle_folder) {
  auto impl = std::make_unique<Impl>();
  impl->folder = bundle_folder;
  impl->metadata = read_bundle_metadata(bundle_folder);  // FileNotFound, format checks
  const fs::path plans_path = bundle_folder / kBundlePlansFile;
  std::error_code ec;
  if (!fs::is_regular_file(plans_path, ec)) {
    throw Error(ErrorCode::FileNotFound, plans_path.string() + ": missing (the model bundle's plans)");
  }
  impl->plans = load_plans(plans_path);
  check_bundle_consistency(impl->metadata, impl->plans, bundle_folder);
  for (const auto& file : weight_files(impl->metadata))
    impl->nets.push_back(load_bundle_network(bundle_folder, impl->plans, file, &impl->metadata));
  return Predictor(std::move(impl));
}

Prediction Predictor::predict(const Volume& image, const PredictOptions& options) const {
  const auto t0 = std::chrono::steady_clock::now();
  const Plans& plans = impl_->plans;
  const std::string& src = options.source;
  const int channels = static_cast<int>(plans.channels.size());
  const int classes = plans.num_classes();

  // Refuse what the model cannot take, before any work (channel count, 2D image for a 3D model,
  // modality): preprocess.h's check_input.
  check_input(image, plans, src);
  const double overlap = options.overlap >= 0 ? options.overlap : plans.inference.overlap;
  if (!(overlap >= 0 && overlap < 1)) {
    throw Error(ErrorCode::BadArgument, "overlap: must be in [0, 1), is " + std::to_string(overlap));
  }

  const Geometry& input_grid = image.geometry();
  imaging::Box roi = imaging::full_box(input_grid.size);
  if (options.roi) {
    roi = imaging::intersect(*options.roi, roi);
    if (roi.empty()) {
      throw Error(ErrorCode::BadArgument, src + ": region of interest " + options.roi->describe() +
                                              " does not overlap the image (" + input_grid.describe() + ")");
    }
  }
  const bool use_roi = options.roi.has_value() && roi != imaging::full_box(input_grid.size);

  // Preprocess (plans), then keep only the region the ROI needs: the ROI on the network's grid
  // grown by half a patch for context, and at least one patch where the image allows.
  using Clock = std::chrono::steady_clock;
  auto lap = [](Clock::time_point& since) {
    const auto now = Clock::now();
    const double s = std::chrono::duration<double>(now - since).count();
    since = now;
    return s;
  };
  Clock::time_point mark = t0;
  Prediction result;
  Volume pre = preprocess_image(image, plans);
  const Geometry target = pre.geometry();
  if (use_roi) {
    imaging::Box region = map_box(input_grid, roi, target);
    if (region.empty()) region = imaging::full_box(target.size);
    // (+ the neighbouring slices a 2D network with context reads, so they are the image's own)
    Size3 margin{plans.patch_size[0] / 2, plans.patch_size[1] / 2, plans.patch_size[2] / 2 + plans.network.context_slices};
    region = imaging::grow(region, margin, target.size);
    for (int a = 0; a < 3; ++a) {
      const int64_t want = std::min<int64_t>(plans.patch_size[a], target.size[a]);
      const int64_t have = region.end[a] - region.begin[a];
      if (have < want) {
        const int64_t lo = std::max<int64_t>(0, region.begin[a] - (want - have) / 2);
        region.begin[a] = std::min(lo, target.size[a] - want);
        region.end[a] = region.begin[a] + want;
      }
    }
    if (region != imaging::full_box(target.size)) pre = imaging::crop(pre, region);
  }
  const Geometry region_grid = pre.geometry();
  const Size3& rs = region_grid.size;
  result.preprocess_seconds = lap(mark);

  WindowOptions w;
  w.patch = plans.patch_size;
  w.overlap = overlap;
  w.batch = plans.inference.window_batch;
  if (options.tta) w.mirror_axes = plans.inference.tta_mirror_axes;
  const bool mc = options.uncertainty && plans.network.dropout > 0 && plans.inference.mc_dropout_samples > 0;
  if (mc) w.mc_samples = plans.inference.mc_dropout_samples;
  const bool bf16 = resolve_bf16(options.bf16, plans.inference.bf16);
  w.bf16 = bf16;
  result.bf16 = bf16;

  Volume probs(region_grid, PixelType::Float32, classes);
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    configure_threads(options.threads);
    try {
      AutocastGuard autocast(bf16);
      McDropoutGuard dropout(impl_->nets, mc);
      const torch::Tensor input = with_context_slices(
          torch::from_blob(const_cast<float*>(pre.data<float>()), {channels, rs[2], rs[1], rs[0]}, torch::kFloat32),
          plans.network.context_slices);
      const torch::Tensor p = sliding_window(impl_->nets, input, w);
      std::memcpy(probs.raw(), p.data_ptr<float>(), probs.size_bytes());
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::Internal, src + ": inference failed in LibTorch: " + first_line(e.what()));
    }
  }
  pre = Volume();
  // The network's cached blocks would add to the peak of what follows (resampling back, ITK
  // buffers): give them back. Reuse across window batches, where it pays, has happened.
  release_cached_tensor_memory();
  result.infer_seconds = lap(mark);

  // Back to the input grid (only the ROI's part of it).
  const Geometry out_grid = use_roi ? imaging::cropped_geometry(input_grid, roi) : input_grid;
  const bool resampled = !region_grid.same_grid(out_grid);
  const int64_t n = out_grid.voxel_count();
  const double threshold = plans.inference.threshold;
  const double norm = std::log(static_cast<double>(classes));
  LabelMap label(out_grid);
  uint8_t* lab = label.data();
  Volume probability;
  Volume entropy;
  if (options.uncertainty) entropy = Volume(out_grid, PixelType::Float32);
  float* h = options.uncertainty ? entropy.data<float>() : nullptr;
  imaging::ResampleOptions ro;
  ro.interpolation = imaging::Interpolation::Linear;
  ro.output_type = PixelType::Float32;
  if (classes == 2) {
    // Binary models: p(foreground) is all there is to carry (p(background) = 1 - p): it is
    // resampled alone (half the work; voxels outside the resampled field of view get 0 from the
    // interpolator and stay background) and becomes the probability map in place.
    probability = probs.channel(1);
    probs = Volume();
    if (resampled) probability = imaging::resample(probability, out_grid, ro);
    probability.set_geometry(out_grid);
    float* f = probability.data<float>();
    for (int64_t v = 0; v < n; ++v) {
      const float q = std::clamp(f[v], 0.0f, 1.0f);
      f[v] = q;
      lab[v] = q >= threshold ? 1 : 0;
      if (h) {
        double e = 0;
        if (q > 0) e -= q * std::log(static_cast<double>(q));
        if (q < 1) e -= (1 - q) * std::log(1.0 - q);
        h[v] = static_cast<float>(std::clamp(e / norm, 0.0, 1.0));
      }
    }
  } else {
    if (resampled) {
      probs = imaging::resample(probs, out_grid, ro);
    } else {
      probs.set_geometry(out_grid);
    }
    std::vector<float*> p(classes);
    for (int c = 0; c < classes; ++c) p[c] = probs.channel_data<float>(c);
    probability = Volume(out_grid, PixelType::Float32);
    float* prob = probability.data<float>();
    for (int64_t v = 0; v < n; ++v) {
      double sum = 0;
      for (int c = 0; c < classes; ++c) sum += p[c][v];
      if (!(sum > 0.5)) {  // outside the resampled field of view: background
        p[0][v] = 1;
        for (int c = 1; c < classes; ++c) p[c][v] = 0;
      } else if (std::abs(sum - 1) > 1e-6) {
        for (int c = 0; c < classes; ++c) p[c][v] = static_cast<float>(p[c][v] / sum);
      }
      prob[v] = std::clamp(1.0f - p[0][v], 0.0f, 1.0f);
      int best = 0;
      for (int c = 1; c < classes; ++c)
        if (p[c][v] > p[best][v]) best = c;
      lab[v] = static_cast<uint8_t>(best);
      if (h) {
        double e = 0;
        for (int c = 0; c < classes; ++c) {
          const double q = p[c][v];
          if (q > 0) e -= q * std::log(q);
        }
        h[v] = static_cast<float>(std::clamp(e / norm, 0.0, 1.0));
      }
    }
    probs = Volume();
  }
  result.resample_seconds = lap(mark);
  label = imaging::remove_components(label, {plans.inference.min_lesion_ml, plans.inference.min_lesion_voxels,
                                             plans.inference.min_fraction_of_largest});

  if (options.uncertainty) {
    // Case score: mean normalised entropy over the predicted lesion and every voxel that is not
    // confident (docs/uncertainty.md).
    const uint8_t* l = label.data();
    double sum = 0;
    int64_t count = 0;
    for (int64_t v = 0; v < n; ++v) {
      if (l[v] != 0 || h[v] >= kEntropyFloor) {
        sum += h[v];
        ++count;
      }
    }
    result.case_score = count > 0 ? sum / static_cast<double>(count) : 0.0;
    result.uncertainty = use_roi ? imaging::uncrop(entropy, roi, input_grid, 0) : std::move(entropy);
  }
  if (use_roi) {
    label = imaging::uncrop(label, roi, input_grid, 0);
    probability = imaging::uncrop(probability, roi, input_grid, 0);
  }
  result.foreground_voxels = label.count_nonzero();
  result.foreground_ml = static_cast<double>(result.foreground_voxels) * input_grid.voxel_volume_ml();
  result.label = std::move(label);
  result.probability = std::move(probability);
  result.postprocess_seconds = lap(mark);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace tumorlab::model
