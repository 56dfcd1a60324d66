#include "tumorlab/imaging/phantom.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tumorlab::imaging {
namespace {

constexpr double kPi = 3.14159265358979323846;

// SplitMix64: small, portable, and the same on every platform (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double a = 0, double b = 1) { return a + (b - a) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double normal() {
    const double u1 = std::max(uniform(), 1e-12), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * kPi * u2);
  }
  bool coin() { return (next() & 1) != 0; }

 private:
  uint64_t state_;
};

uint64_t hash(uint64_t seed, int64_t x, int64_t y, int64_t z) {
  uint64_t h = seed ^ 0x51AF3C5D2E7B9A13ull;
  for (int64_t v : {x, y, z}) {
    h ^= static_cast<uint64_t>(v) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
  }
  return h;
}

// Smooth value noise in [-1, 1]: random values on a lattice of `cell` voxels, trilinear in between.
class Noise {
 public:
  Noise(uint64_t seed, double cell) : seed_(seed), cell_(cell) {}
  double operator()(double x, double y, double z = 0) const {
    x /= cell_;
    y /= cell_;
    z /= cell_;
    const double fx = std::floor(x), fy = std::floor(y), fz = std::floor(z);
    const auto ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy), iz = static_cast<int64_t>(fz);
    const double tx = smooth(x - fx), ty = smooth(y - fy), tz = smooth(z - fz);
    double acc = 0;
    for (int dz = 0; dz <= 1; ++dz)
      for (int dy = 0; dy <= 1; ++dy)
        for (int dx = 0; dx <= 1; ++dx) {
          const double w = (dx ? tx : 1 - tx) * (dy ? ty : 1 - ty) * (dz ? tz : 1 - tz);
          acc += w * lattice(ix + dx, iy + dy, iz + dz);
        }
    return acc;
  }

 private:
  static double smooth(double t) { return t * t * (3 - 2 * t); }
  double lattice(int64_t x, int64_t y, int64_t z) const {
    return static_cast<double>(hash(seed_, x, y, z) >> 11) * 0x1.0p-52 - 1.0;
  }
  uint64_t seed_;
  double cell_;
};

uint8_t to_u8(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0l, 255l));
}

struct Blob {
  double cx, cy, cz, rx, ry, rz;
};

}  // namespace

Phantom brain_mr_phantom(uint64_t seed, int slices) {
  if (slices < 16 || slices > 64)
    throw Error(ErrorCode::BadArgument, "brain phantom: slices must be in 16..64, got " + std::to_string(slices));
  Rng rng(seed * 2 + 1);
  Geometry g;
  g.size = {256, 256, slices};
  Volume image(g, PixelType::UInt8, 2);
  LabelMap label(g);
  const int64_t n = image.voxel_count();
  uint8_t* flair = image.channel_data<uint8_t>(0);
  uint8_t* t1c = image.channel_data<uint8_t>(1);

  const double cx = 128 + rng.uniform(-4, 4), cy = 126 + rng.uniform(-4, 4);
  const double head_ax = rng.uniform(86, 96), head_ay = rng.uniform(106, 116);
  const double gyri_phase = rng.uniform(0, 2 * kPi), gyri_count = std::round(rng.uniform(8, 12));
  const Noise texture(seed ^ 0x1111, 5), fine(seed ^ 0x2222, 2.2), gyri(seed ^ 0x3333, 9), bias(seed ^ 0x4444, 90),
      lesion_noise(seed ^ 0x5555, 7), lesion_texture(seed ^ 0x6666, 4);

  // Lesion: a few overlapping ellipsoids in one hemisphere, boundary roughened by noise.
  const double side = rng.coin() ? 1 : -1;
  const double lx = cx + side * rng.uniform(28, 46), ly = cy + rng.uniform(-30, 30);
  const double lz = slices * rng.uniform(0.42, 0.58);
  std::vector<Blob> lesion;
  const int parts = 2 + static_cast<int>(rng.next() % 3);
  const double base = rng.uniform(16, 23);
  for (int p = 0; p < parts; ++p) {
    const double s = p == 0 ? 1.0 : rng.uniform(0.45, 0.8);
    lesion.push_back(Blob{lx + (p ? rng.uniform(-14, 14) : 0), ly + (p ? rng.uniform(-16, 16) : 0),
                          lz + (p ? rng.uniform(-1.5, 1.5) : 0), base * s * rng.uniform(0.8, 1.2),
                          base * s * rng.uniform(0.9, 1.4), std::max(1.8, slices * 0.12 * s * rng.uniform(0.8, 1.2))});
  }

  int64_t idx = 0;
  for (int64_t k = 0; k < slices; ++k) {
    // Head cross-section shrinks towards the top and the bottom of the stack.
    const double zc = (static_cast<double>(k) - slices * 0.42) / (slices * 0.62);
    const double scale = std::max(0.45, std::sqrt(std::max(0.0, 1 - zc * zc)));
    const double ax = head_ax * scale, ay = head_ay * scale, r_mean = 0.5 * (ax + ay);
    const bool ventricle_slice = zc > -0.35 && zc < 0.45;
    const double vent_scale = ventricle_slice ? std::cos((zc - 0.05) / 0.4 * kPi / 2) : 0;
    for (int64_t j = 0; j < 256; ++j)
      for (int64_t i = 0; i < 256; ++i, ++idx) {
        const double x = static_cast<double>(i) - cx, y = static_cast<double>(j) - cy;
        const double rho = std::sqrt((x / ax) * (x / ax) + (y / ay) * (y / ay));
        const double t = (1 - rho) * r_mean;  // depth below the head surface, in voxels
        double f, t1;
        if (t < 0) {
          const double b = std::abs(rng.normal()) * 1.6;
          flair[idx] = to_u8(b);
          t1c[idx] = to_u8(b);
          continue;
        }
        const double theta = std::atan2(y, x);
        const double tex = texture(i, j, k * 3.0);
        if (t < 5) {  // scalp (fat: bright on T1)
          f = 52 + 8 * tex;
          t1 = 95 + 10 * tex;
        } else if (t < 10) {  // skull
          f = 9 + 3 * tex;
          t1 = 11 + 3 * tex;
        } else if (t < 12.5 + 1.2 * gyri(i, j, k * 3.0)) {  // CSF (suppressed on FLAIR)
          f = 14 + 3 * tex;
          t1 = 16 + 3 * tex;
        } else {
          const double wm_depth = 19 + 3.5 * std::sin(gyri_count * theta + gyri_phase) + 4 * gyri(i, j, k * 3.0);
          if (t > wm_depth) {  // white matter
            f = 56 + 4 * tex;
            t1 = 72 + 4 * tex;
          } else {  // grey matter
            f = 68 + 5 * tex;
            t1 = 50 + 5 * tex;
          }
          // Lateral ventricles: two curved ellipses beside the midline.
          if (vent_scale > 0) {
            for (double s : {-1.0, 1.0}) {
              const double vx = x - s * 11 * scale, vy = y + 6;
              const double a = s * 0.22;
              const double u = vx * std::cos(a) + vy * std::sin(a), v = -vx * std::sin(a) + vy * std::cos(a);
              const double rv = (u / (6.5 * vent_scale + 1)) * (u / (6.5 * vent_scale + 1)) +
                                (v / (30 * vent_scale + 1)) * (v / (30 * vent_scale + 1));
              if (rv < 1) {
                f = 11 + 3 * tex;
                t1 = 17 + 3 * tex;
              }
            }
          }
          // Lesion.
          double inside = 1e9;
          for (const Blob& b : lesion) {
            const double dx = (i - b.cx) / b.rx, dy = (j - b.cy) / b.ry, dz = (k - b.cz) / b.rz;
            inside = std::min(inside, std::sqrt(dx * dx + dy * dy + dz * dz));
          }
          inside += 0.28 * lesion_noise(i, j, k * 4.0);
          if (inside < 1 && t > 15) {
            label.data()[idx] = 1;
            const double core = std::clamp(1 - inside, 0.0, 1.0);
            f = 104 + 18 * core + 9 * lesion_texture(i, j, k * 3.0);
            t1 = 40 - 8 * core + 6 * lesion_texture(i, j, k * 3.0);
          } else if (inside < 1.25 && t > 15) {  // oedema fringe: mildly bright on FLAIR
            f += 22 * (1.25 - inside) / 0.25;
          }
        }
        const double field = 1 + 0.07 * bias(i, j, k * 3.0);
        const double speckle = 0.35 * fine(i, j, k * 3.0);
        flair[idx] = to_u8(f * field + 2.5 * rng.normal() + 3 * speckle);
        t1c[idx] = to_u8(t1 * field + 2.5 * rng.normal() + 3 * speckle);
      }
  }
  (void)n;
  image.modality = "MR";
  image.channel_names = {"FLAIR", "T1 post-contrast"};
  Phantom p;
  p.name = "DEMO-brain-" + std::to_string(seed);
  p.description = "SYNTHETIC brain MR (FLAIR + T1 post-contrast) made by tumorlab's demo generator, seed " +
                  std::to_string(seed) + "; not patient data";
  p.image = std::move(image);
  p.label = std::move(label);
  return p;
}

Phantom pet_mip_phantom(uint64_t seed, int height) {
  if (height < 400 || height > 1200)
    throw Error(ErrorCode::BadArgument, "PET MIP phantom: height must be in 400..1200, got " + std::to_string(height));
  Rng rng(seed * 2 + 7);
  const int64_t w = 400, h = height;
  const double u = static_cast<double>(h) / 900.0;  // vertical scale
  Geometry g;
  g.size = {w, h, 1};
  Volume image(g, PixelType::UInt8, 1);
  LabelMap label(g);
  const Noise texture(seed ^ 0x7777, 6), coarse(seed ^ 0x8888, 25), organ_tex(seed ^ 0x9999, 4);
  const double cx = 200 + rng.uniform(-6, 6);
  const double body_scale = rng.uniform(0.9, 1.08);

  // Half-width of the trunk at row y (0 outside the trunk).
  auto trunk_half = [&](double y) {
    const double top = 182 * u, bottom = 560 * u;
    if (y < top || y > bottom) return 0.0;
    double hw;
    if (y < 215 * u)
      hw = 95 + 35 * std::sqrt(std::max(0.0, (y - top) / (33 * u)));  // shoulders
    else if (y < 430 * u)
      hw = 130 - 22 * (y - 215 * u) / (215 * u);  // chest to waist
    else
      hw = 108 + 14 * (y - 430 * u) / (130 * u);  // hips
    return hw * body_scale;
  };
  struct Ellipse {
    double x, y, rx, ry, uptake;
  };
  const double organ_jitter = 4;
  auto jit = [&]() { return rng.uniform(-organ_jitter, organ_jitter); };
  const Ellipse brain{cx + jit() * 0.3, 68 * u, 41, 50 * u, 252};
  const Ellipse heart{cx + 16 + jit(), 292 * u + jit(), 32, 29 * u, rng.uniform(150, 210)};
  const Ellipse liver{cx - 40 + jit(), 372 * u + jit(), 62, 40 * u, rng.uniform(60, 80)};
  const Ellipse kidney_l{cx - 56 + jit(), 428 * u + jit(), 14, 26 * u, rng.uniform(130, 190)};
  const Ellipse kidney_r{cx + 56 + jit(), 424 * u + jit(), 14, 26 * u, rng.uniform(130, 190)};
  const Ellipse bladder{cx + jit() * 0.5, 522 * u + jit() * 0.5, 27, 22 * u, 250};

  // Tumours at lymph-node and organ sites away from the physiological hot spots.
  struct Site {
    double x, y;
  };
  const std::vector<Site> sites = {{cx - 26, 168 * u}, {cx + 26, 168 * u}, {cx - 92, 232 * u}, {cx + 92, 232 * u},
                                   {cx - 12, 255 * u}, {cx - 62, 300 * u}, {cx + 70, 318 * u}, {cx + 40, 478 * u},
                                   {cx - 35, 500 * u}, {cx - 68, 565 * u}, {cx + 68, 565 * u}};
  std::vector<Ellipse> tumours;
  std::vector<bool> used(sites.size(), false);
  const int count = 2 + static_cast<int>(rng.next() % 4);
  while (static_cast<int>(tumours.size()) < count) {
    const std::size_t s = rng.next() % sites.size();
    if (used[s]) continue;
    used[s] = true;
    const double r = rng.uniform(5, 13);
    tumours.push_back(Ellipse{sites[s].x + rng.uniform(-6, 6), sites[s].y + rng.uniform(-6, 6),
                              r * rng.uniform(0.8, 1.25), r * rng.uniform(0.8, 1.25), rng.uniform(200, 255)});
  }

  auto ellipse_value = [](const Ellipse& e, double x, double y) {
    const double dx = (x - e.x) / e.rx, dy = (y - e.y) / e.ry;
    return dx * dx + dy * dy;
  };
  uint8_t* out = image.data<uint8_t>();
  for (int64_t j = 0; j < h; ++j)
    for (int64_t i = 0; i < w; ++i) {
      const double x = static_cast<double>(i), y = static_cast<double>(j);
      // Projected thickness of the body (0 outside), per part.
      double thick = 0;
      {  // head
        const double dx = (x - cx) / (54 * body_scale), dy = (y - 75 * u) / (70 * u);
        const double r2 = dx * dx + dy * dy;
        if (r2 < 1) thick = std::max(thick, std::sqrt(1 - r2));
      }
      if (y > 135 * u && y < 190 * u) {  // neck
        const double dx = (x - cx) / (31 * body_scale);
        if (std::abs(dx) < 1) thick = std::max(thick, 0.8 * std::sqrt(1 - dx * dx));
      }
      if (const double hw = trunk_half(y); hw > 0) {
        const double dx = (x - cx) / hw;
        double top_round = 1;
        if (y < 200 * u) top_round = std::clamp((y - 182 * u) / (18 * u), 0.0, 1.0);
        if (std::abs(dx) < top_round) thick = std::max(thick, std::sqrt(1 - dx * dx / (top_round * top_round)));
      }
      for (double s : {-1.0, 1.0}) {  // arms beside the trunk
        const double y0 = 205 * u, y1 = 540 * u;
        if (y < y0 || y > y1) continue;
        const double t = (y - y0) / (y1 - y0);
        const double ax = cx + s * (body_scale * 142 + 10 * t), half = 17 - 4 * t;
        const double dx = (x - ax) / half;
        if (std::abs(dx) < 1) thick = std::max(thick, 0.75 * std::sqrt(1 - dx * dx));
      }
      if (y > 540 * u) {  // legs
        const double t = std::clamp((y - 540 * u) / (h - 540 * u), 0.0, 1.0);
        for (double s : {-1.0, 1.0}) {
          const double lx = cx + s * (54 - 6 * t) * body_scale, half = (50 - 16 * t) * body_scale;
          const double dx = (x - lx) / half;
          if (std::abs(dx) < 1 && y < h - 6) thick = std::max(thick, 0.9 * std::sqrt(1 - dx * dx));
        }
      }
      if (thick <= 0) {
        out[label.index(i, j, 0)] = 255;
        continue;
      }
      // Maximum-intensity projection: the brightest structure along the ray wins.
      double uptake = 16 + 38 * thick + 8 * texture(x, y) + 6 * coarse(x, y);
      if (std::abs(x - cx) < 6 && y > 190 * u && y < 560 * u)
        uptake = std::max(uptake, 48 + 6 * texture(x, y));  // spine
      for (const Ellipse* e : {&brain, &heart, &liver, &kidney_l, &kidney_r, &bladder}) {
        const double r2 = ellipse_value(*e, x, y);
        if (r2 < 1.15) {
          const double edge = std::clamp((1.15 - r2) / 0.3, 0.0, 1.0);
          uptake = std::max(uptake, e->uptake * edge * (1 + 0.06 * organ_tex(x, y)));
        }
      }
      bool tumour = false;
      for (const Ellipse& e : tumours) {
        const double r2 = ellipse_value(e, x, y) + 0.25 * organ_tex(x * 1.7, y * 1.7);
        // Saturated core, soft rim (1 up to r2 ~ 0.28, 0.42 at the rim r2 = 1).
        const double profile = std::min(1.0, 1.4 * std::exp(-1.2 * r2));
        uptake = std::max(uptake, e.uptake * profile);
        if (r2 < 0.8 && e.uptake * profile > 2 * (16 + 38 * thick)) tumour = true;
      }
      out[label.index(i, j, 0)] = to_u8(255 - uptake - 3 * rng.normal());
      if (tumour) label.data()[label.index(i, j, 0)] = 1;
    }
  image.modality = "PT";
  image.channel_names = {"PET-MIP"};
  Phantom p;
  p.name = "DEMO-pet-" + std::to_string(seed);
  p.description =
      "SYNTHETIC whole-body PET maximum-intensity projection (dark = high uptake) made by tumorlab's "
      "demo generator, seed " +
      std::to_string(seed) + "; not patient data";
  p.image = std::move(image);
  p.label = std::move(label);
  return p;
}

}  // namespace tumorlab::imaging
