#include "tumorlab/model/sampler.h"

#include <algorithm>
#include <cmath>

#include "tumorlab/core/error.h"

namespace tumorlab::model {
namespace {

using P3 = std::array<int64_t, 3>;

// Trilinear sample of one channel at (x, y, z); outside the grid reads 0.
inline float sample_linear(const float* data, const Size3& n, double x, double y, double z) {
  const double fx = std::floor(x), fy = std::floor(y), fz = std::floor(z);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy), z0 = static_cast<int64_t>(fz);
  const double wx = x - fx, wy = y - fy, wz = z - fz;
  double acc = 0;
  for (int dz = 0; dz < 2; ++dz) {
    const double w_z = dz ? wz : 1 - wz;
    const int64_t zz = z0 + dz;
    if (w_z == 0 || zz < 0 || zz >= n[2]) continue;
    for (int dy = 0; dy < 2; ++dy) {
      const double w_y = dy ? wy : 1 - wy;
      const int64_t yy = y0 + dy;
      if (w_y == 0 || yy < 0 || yy >= n[1]) continue;
      const float* row = data + (zz * n[1] + yy) * n[0];
      for (int dx = 0; dx < 2; ++dx) {
        const double w_x = dx ? wx : 1 - wx;
        const int64_t xx = x0 + dx;
        if (w_x == 0 || xx < 0 || xx >= n[0]) continue;
        acc += w_z * w_y * w_x * row[xx];
      }
    }
  }
  return static_cast<float>(acc);
}

inline uint8_t sample_nearest(const uint8_t* data, const Size3& n, double x, double y, double z) {
  const int64_t xi = static_cast<int64_t>(std::floor(x + 0.5)), yi = static_cast<int64_t>(std::floor(y + 0.5)),
                zi = static_cast<int64_t>(std::floor(z + 0.5));
  if (xi < 0 || yi < 0 || zi < 0 || xi >= n[0] || yi >= n[1] || zi >= n[2]) return 0;
  return data[(zi * n[1] + yi) * n[0] + xi];
}

// Coarse random displacement grid (4 x 4 [x 4] control points), bilinearly interpolated.
struct Elastic {
  bool on = false;
  int g = 4;
  std::vector<double> dx, dy, dz;
  P3 patch{};
  void init(const P3& p, double magnitude, Rng& rng) {
    on = true;
    patch = p;
    const int gz = p[2] > 1 ? g : 1;
    const std::size_t n = static_cast<std::size_t>(g * g * gz);
    dx.resize(n), dy.resize(n), dz.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      dx[i] = rng.normal() * magnitude;
      dy[i] = rng.normal() * magnitude;
      dz[i] = p[2] > 1 ? rng.normal() * magnitude : 0.0;
    }
  }
  void at(int64_t ox, int64_t oy, int64_t oz, double& ex, double& ey, double& ez) const {
    const int gz = patch[2] > 1 ? g : 1;
    auto coord = [&](int64_t o, int64_t size, int count, int& i0, double& w) {
      const double u = size > 1 ? static_cast<double>(o) / static_cast<double>(size - 1) * (count - 1) : 0.0;
      i0 = std::min(count - 2 < 0 ? 0 : count - 2, static_cast<int>(std::floor(u)));
      w = count > 1 ? u - i0 : 0.0;
    };
    int ix, iy, iz;
    double wx, wy, wz;
    coord(ox, patch[0], g, ix, wx);
    coord(oy, patch[1], g, iy, wy);
    coord(oz, patch[2], gz, iz, wz);
    ex = ey = ez = 0;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        for (int c = 0; c < (gz > 1 ? 2 : 1); ++c) {
          const double w = (a ? wx : 1 - wx) * (b ? wy : 1 - wy) * (gz > 1 ? (c ? wz : 1 - wz) : 1.0);
          const std::size_t k = static_cast<std::size_t>(((iz + c) * g + (iy + b)) * g + (ix + a));
          ex += w * dx[k], ey += w * dy[k], ez += w * dz[k];
        }
  }
};

// Blurs along x and y, and along z when `along_z` (3D patches; not across the neighbouring
// slices of a 2D patch with context).
void gaussian_blur(float* data, const P3& p, double sigma, bool along_z) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<float> kernel(static_cast<std::size_t>(2 * radius + 1));
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) sum += kernel[static_cast<std::size_t>(i + radius)] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
  for (auto& k : kernel) k = static_cast<float>(k / sum);
  const int axes = along_z ? 3 : 2;
  std::vector<float> line, out;
  const int64_t strides[3] = {1, p[0], p[0] * p[1]};
  for (int axis = 0; axis < axes; ++axis) {
    const int64_t len = p[axis], stride = strides[axis];
    line.resize(static_cast<std::size_t>(len));
    const int64_t total = p[0] * p[1] * p[2];
    for (int64_t base = 0; base < total; ++base) {
      // base is a line start when its coordinate along `axis` is 0.
      if ((base / stride) % len != 0) continue;
      for (int64_t i = 0; i < len; ++i) line[static_cast<std::size_t>(i)] = data[base + i * stride];
      for (int64_t i = 0; i < len; ++i) {
        double acc = 0;
        for (int k = -radius; k <= radius; ++k) {
          const int64_t j = std::clamp<int64_t>(i + k, 0, len - 1);
          acc += kernel[static_cast<std::size_t>(k + radius)] * line[static_cast<std::size_t>(j)];
        }
        data[base + i * stride] = static_cast<float>(acc);
      }
    }
  }
}

// One channel's voxels (p[0] * p[1] * p[2] = n; for a 2D patch with context, its slices): every
// transform is drawn once and applied to all of them.
void augment_intensity(float* data, int64_t n, const P3& p, bool is3d, const AugmentationPlan& a, Rng& rng) {
  const double prob = a.probability;
  if (a.noise_std > 0 && rng.chance(prob)) {
    const double s = rng.uniform(0, a.noise_std);
    for (int64_t i = 0; i < n; ++i) data[i] += static_cast<float>(rng.normal() * s);
  }
  if (a.blur_sigma_max > 0 && rng.chance(prob)) {
    gaussian_blur(data, p, rng.uniform(std::min(0.5, a.blur_sigma_max), a.blur_sigma_max), is3d);
  }
  if (a.brightness > 0 && rng.chance(prob)) {
    const float f = static_cast<float>(rng.uniform(1 - a.brightness, 1 + a.brightness));
    for (int64_t i = 0; i < n; ++i) data[i] *= f;
  }
  if (a.contrast > 0 && rng.chance(prob)) {
    const double f = rng.uniform(1 - a.contrast, 1 + a.contrast);
    double mean = 0;
    float lo = data[0], hi = data[0];
    for (int64_t i = 0; i < n; ++i) mean += data[i], lo = std::min(lo, data[i]), hi = std::max(hi, data[i]);
    mean /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) data[i] = std::clamp(static_cast<float>((data[i] - mean) * f + mean), lo, hi);
  }
  if (a.gamma_high > 0 && rng.chance(prob)) {
    const double g = rng.uniform(a.gamma_low, a.gamma_high);
    double mean = 0, sq = 0;
    float lo = data[0], hi = data[0];
    for (int64_t i = 0; i < n; ++i) mean += data[i], sq += double(data[i]) * data[i], lo = std::min(lo, data[i]), hi = std::max(hi, data[i]);
    mean /= static_cast<double>(n);
    const double sd = std::sqrt(std::max(0.0, sq / static_cast<double>(n) - mean * mean));
    const double range = static_cast<double>(hi) - lo + 1e-7;
    double mean2 = 0, sq2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = std::pow((data[i] - lo) / range, g) * range + lo;
      data[i] = static_cast<float>(v);
      mean2 += v, sq2 += v * v;
    }
    mean2 /= static_cast<double>(n);
    const double sd2 = std::sqrt(std::max(0.0, sq2 / static_cast<double>(n) - mean2 * mean2));
    const double k = sd2 > 1e-8 ? sd / sd2 : 1.0;
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>((data[i] - mean2) * k + mean);
  }
}

}  // namespace

P3 patch_start(const Geometry& grid, const P3& patch, int64_t centre, Rng& rng) {
  P3 start{};
  int64_t c[3] = {0, 0, 0};
  if (centre >= 0) {
    c[0] = centre % grid.size[0];
    c[1] = (centre / grid.size[0]) % grid.size[1];
    c[2] = centre / (grid.size[0] * grid.size[1]);
  }
  for (int a = 0; a < 3; ++a) {
    const int64_t n = grid.size[a], p = patch[a];
    // Allowed starts: the patch inside the image when it fits; otherwise the image inside the patch.
    const int64_t lo = std::min<int64_t>(0, n - p), hi = std::max<int64_t>(0, n - p);
    if (centre >= 0) start[a] = std::clamp<int64_t>(c[a] - p / 2, lo, hi);
    else start[a] = lo + rng.below(hi - lo + 1);
  }
  return start;
}

void extract_patch(const SampleSpec& spec, const P3& patch, const AugmentationPlan& aug, Rng& rng, float* image_out,
                   uint8_t* label_out, int context) {
  const TrainingCase& tc = *spec.source;
  const Size3 n = tc.image.geometry().size;
  const int channels = tc.image.channels();
  const int64_t pv = patch[0] * patch[1] * patch[2];
  const bool is3d = patch[2] > 1;
  if (context < 0 || (context > 0 && is3d)) {
    throw Error(ErrorCode::BadArgument, "extract_patch: context slices need a 2D patch (z = 1) and must be >= 0");
  }
  const int slices = 2 * context + 1;  // output channel c * slices + (dz + context) holds slice z + dz
  auto clamp_z = [&](int64_t z) { return std::clamp<int64_t>(z, 0, n[2] - 1); };

  // Spatial parameters.
  bool flip[3] = {false, false, false};
  double angle = 0, scale = 1;
  Elastic elastic;
  if (spec.augment) {
    if (aug.mirror) {
      for (int axis : aug.mirror_axes) {
        if (axis >= 0 && axis < 3 && (axis < 2 || is3d)) flip[axis] = rng.chance(0.5);
      }
    }
    if (aug.rotation_deg > 0 && rng.chance(aug.probability)) angle = rng.uniform(-aug.rotation_deg, aug.rotation_deg) * M_PI / 180.0;
    if (aug.scale_high > aug.scale_low && rng.chance(aug.probability)) scale = rng.uniform(aug.scale_low, aug.scale_high);
    if (aug.elastic && rng.chance(aug.probability)) {
      elastic.init(patch, rng.uniform(0, 0.04 * static_cast<double>(std::min(patch[0], patch[1]))), rng);
    }
  }
  const bool identity = angle == 0 && scale == 1 && !elastic.on;
  const double ca = std::cos(angle) * scale, sa = std::sin(angle) * scale;
  const double half[3] = {(patch[0] - 1) / 2.0, (patch[1] - 1) / 2.0, (patch[2] - 1) / 2.0};
  const double centre[3] = {spec.start[0] + half[0], spec.start[1] + half[1], spec.start[2] + half[2]};
  const float* img = tc.image.data<float>();
  const uint8_t* lab = tc.label.data();
  const int64_t nv = n[0] * n[1] * n[2];

  for (int64_t oz = 0; oz < patch[2]; ++oz) {
    for (int64_t oy = 0; oy < patch[1]; ++oy) {
      for (int64_t ox = 0; ox < patch[0]; ++ox) {
        const int64_t o = (oz * patch[1] + oy) * patch[0] + ox;
        const int64_t mx = flip[0] ? patch[0] - 1 - ox : ox, my = flip[1] ? patch[1] - 1 - oy : oy,
                      mz = flip[2] ? patch[2] - 1 - oz : oz;
        if (identity) {
          const int64_t x = spec.start[0] + mx, y = spec.start[1] + my, z = spec.start[2] + mz;
          const bool inside = x >= 0 && y >= 0 && z >= 0 && x < n[0] && y < n[1] && z < n[2];
          const int64_t s = inside ? (z * n[1] + y) * n[0] + x : 0;
          for (int c = 0; c < channels; ++c) {
            for (int dz = -context; dz <= context; ++dz) {
              const int64_t sd = inside ? (clamp_z(z + dz) * n[1] + y) * n[0] + x : 0;
              image_out[(c * slices + dz + context) * pv + o] = inside ? img[c * nv + sd] : 0.0f;
            }
          }
          label_out[o] = inside ? lab[s] : 0;
          continue;
        }
        double dx = mx - half[0], dy = my - half[1], dz = mz - half[2];
        if (elastic.on) {
          double ex, ey, ez;
          elastic.at(ox, oy, oz, ex, ey, ez);
          dx += ex, dy += ey, dz += ez;
        }
        const double sx = centre[0] + ca * dx - sa * dy;
        const double sy = centre[1] + sa * dx + ca * dy;
        const double sz = centre[2] + (is3d ? scale * dz : 0.0);
        for (int c = 0; c < channels; ++c) {
          for (int dz = -context; dz <= context; ++dz) {
            const double szd = dz == 0 ? sz : static_cast<double>(clamp_z(std::llround(sz) + dz));
            image_out[(c * slices + dz + context) * pv + o] = sample_linear(img + c * nv, n, sx, sy, szd);
          }
        }
        label_out[o] = sample_nearest(lab, n, sx, sy, sz);
      }
    }
  }
  if (spec.augment) {
    const P3 block{patch[0], patch[1], patch[2] * slices};
    for (int c = 0; c < channels; ++c) augment_intensity(image_out + c * slices * pv, slices * pv, block, is3d, aug, rng);
  }
}

namespace {

P3 patch_of(const Plans& plans) { return {plans.patch_size[0], plans.patch_size[1], plans.patch_size[2]}; }

Batch empty_batch(const Plans& plans, int64_t batch, int64_t channels) {
  Batch b;
  b.batch = batch;
  b.channels = channels;
  b.patch = patch_of(plans);
  b.image.assign(static_cast<std::size_t>(batch * channels * b.patch_voxels()), 0.0f);
  b.label.assign(static_cast<std::size_t>(batch * b.patch_voxels()), 0);
  return b;
}

}  // namespace

Batch make_training_batch(const std::vector<const TrainingCase*>& cases, const Plans& plans, uint64_t seed, int epoch,
                          int iteration) {
  if (cases.empty()) throw Error(ErrorCode::InvalidDataset, "no training cases");
  const int64_t B = plans.batch_size;
  const int ctx = plans.network.context_slices;
  const int64_t C = cases.front()->image.channels() * (2 * ctx + 1);  // network input channels
  Batch batch = empty_batch(plans, B, C);
  const double frac = plans.training.foreground_oversample;
  int64_t n_fg = static_cast<int64_t>(std::llround(static_cast<double>(B) * frac));
  if (frac > 0) n_fg = std::max<int64_t>(1, n_fg);
  n_fg = std::min(n_fg, B);
  std::vector<const TrainingCase*> with_fg;
  for (const auto* c : cases) {
    if (c->has_foreground()) with_fg.push_back(c);
  }
  const int64_t pv = batch.patch_voxels();
  for (int64_t b = 0; b < B; ++b) {
    Rng rng(mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(iteration), static_cast<uint64_t>(b)));
    const bool force_fg = b >= B - n_fg && !with_fg.empty();
    SampleSpec spec;
    spec.augment = true;
    int64_t centre = -1;
    if (force_fg) {
      spec.source = with_fg[static_cast<std::size_t>(rng.below(static_cast<int64_t>(with_fg.size())))];
      centre = spec.source->foreground[static_cast<std::size_t>(rng.below(static_cast<int64_t>(spec.source->foreground.size())))];
    } else {
      spec.source = cases[static_cast<std::size_t>(rng.below(static_cast<int64_t>(cases.size())))];
    }
    spec.start = patch_start(spec.source->image.geometry(), batch.patch, centre, rng);
    extract_patch(spec, batch.patch, plans.training.augmentation, rng, batch.image.data() + b * C * pv,
                  batch.label.data() + b * pv, ctx);
  }
  return batch;
}

std::vector<Batch> make_validation_batches(const std::vector<const TrainingCase*>& cases, const Plans& plans,
                                           uint64_t seed, int per_case, int max_patches) {
  std::vector<Batch> out;
  if (cases.empty()) return out;
  // Choose the specs first (round-robin over cases so a cap keeps every case represented).
  std::vector<SampleSpec> specs;
  const P3 patch = patch_of(plans);
  std::vector<std::vector<SampleSpec>> per(cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    Rng rng(mix_seed(seed, 0x7a11d, i));
    for (int k = 0; k < per_case; ++k) {
      SampleSpec s;
      s.source = cases[i];
      const bool fg = cases[i]->has_foreground() && k < per_case - 1;
      const int64_t centre =
          fg ? cases[i]->foreground[static_cast<std::size_t>(rng.below(static_cast<int64_t>(cases[i]->foreground.size())))]
             : -1;
      s.start = patch_start(cases[i]->image.geometry(), patch, centre, rng);
      per[i].push_back(s);
    }
  }
  for (int k = 0; k < per_case && static_cast<int>(specs.size()) < max_patches; ++k) {
    for (std::size_t i = 0; i < cases.size() && static_cast<int>(specs.size()) < max_patches; ++i) specs.push_back(per[i][static_cast<std::size_t>(k)]);
  }
  const int ctx = plans.network.context_slices;
  const int64_t C = cases.front()->image.channels() * (2 * ctx + 1);  // network input channels
  const int64_t B = plans.batch_size;
  Rng unused(0);
  for (std::size_t first = 0; first < specs.size(); first += static_cast<std::size_t>(B)) {
    const int64_t nb = std::min<int64_t>(B, static_cast<int64_t>(specs.size() - first));
    Batch b = empty_batch(plans, nb, C);
    const int64_t pv = b.patch_voxels();
    for (int64_t j = 0; j < nb; ++j) {
      extract_patch(specs[first + static_cast<std::size_t>(j)], patch, plans.training.augmentation, unused,
                    b.image.data() + j * C * pv, b.label.data() + j * pv, ctx);
    }
    out.push_back(std::move(b));
  }
  return out;
}

BatchLoader::BatchLoader(const std::vector<const TrainingCase*>& cases, const Plans& plans, uint64_t seed, int epoch,
                         int first, int last, int workers, int capacity)
    : cases_(cases),
      plans_(plans),
      seed_(seed),
      epoch_(epoch),
      next_to_make_(first),
      next_to_take_(first),
      last_(last),
      capacity_(std::max(1, capacity)) {
  const int n = std::max(1, workers);
  for (int t = 0; t < n; ++t) threads_.emplace_back([this] { run(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void BatchLoader::run() {
  for (;;) {
    int it;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || error_ || next_to_make_ >= last_ || next_to_make_ < next_to_take_ + capacity_; });
      if (stop_ || error_ || next_to_make_ >= last_) return;
      it = next_to_make_++;
    }
    try {
      Batch b = make_training_batch(cases_, plans_, seed_, epoch_, it);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(it, std::move(b));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_take_ >= last_) throw Error(ErrorCode::Internal, "BatchLoader: no more batches in this epoch");
  cv_.wait(lock, [&] { return error_ || ready_.count(next_to_take_); });
  if (error_) std::rethrow_exception(error_);
  Batch b = std::move(ready_.at(next_to_take_));
  ready_.erase(next_to_take_);
  ++next_to_take_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace tumorlab::model
