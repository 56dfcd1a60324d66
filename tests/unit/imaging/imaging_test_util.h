#pragma once
// Helpers shared by the imaging tests: small grids, painted boxes and balls, and brute-force
// reference computations that do not use the code under test.

#include <algorithm>
#include <cmath>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::imaging::test {

inline Geometry grid(Size3 size, Vec3 spacing = {1, 1, 1}, Vec3 origin = {0, 0, 0}) {
  Geometry g;
  g.size = size;
  g.spacing_mm = spacing;
  g.origin_lps = origin;
  return g;
}

// Sets voxels in [b, e) (end exclusive) to `value`.
inline void paint_box(LabelMap& l, Size3 b, Size3 e, uint8_t value = 1) {
  for (int64_t k = b[2]; k < e[2]; ++k)
    for (int64_t j = b[1]; j < e[1]; ++j)
      for (int64_t i = b[0]; i < e[0]; ++i) l.at(i, j, k) = value;
}

// Sets voxels whose centre is within an ellipsoid (radii in voxels) to `value`.
inline void paint_ellipsoid(LabelMap& l, Vec3 c, Vec3 r, uint8_t value = 1) {
  const auto& s = l.geometry().size;
  for (int64_t k = 0; k < s[2]; ++k)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i) {
        const double x = (i - c[0]) / r[0], y = (j - c[1]) / r[1], z = (k - c[2]) / r[2];
        if (x * x + y * y + z * z <= 1.0) l.at(i, j, k) = value;
      }
}

struct Voxel {
  int64_t i, j, k;
};

// Foreground voxels with a background 6-neighbour (4 in-plane on 2D grids); outside is background.
inline std::vector<Voxel> brute_surface(const LabelMap& l) {
  const auto& s = l.geometry().size;
  std::vector<Voxel> out;
  auto fg = [&](int64_t i, int64_t j, int64_t k) {
    if (i < 0 || j < 0 || k < 0 || i >= s[0] || j >= s[1] || k >= s[2]) return false;
    return l.at(i, j, k) != 0;
  };
  const bool two_d = s[2] == 1;
  for (int64_t k = 0; k < s[2]; ++k)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i) {
        if (!fg(i, j, k)) continue;
        bool surf = !fg(i - 1, j, k) || !fg(i + 1, j, k) || !fg(i, j - 1, k) || !fg(i, j + 1, k);
        if (!two_d) surf = surf || !fg(i, j, k - 1) || !fg(i, j, k + 1);
        if (surf) out.push_back({i, j, k});
      }
  return out;
}

inline double voxel_distance(const Voxel& a, const Voxel& b, const Vec3& sp) {
  const double x = (a.i - b.i) * sp[0], y = (a.j - b.j) * sp[1], z = (a.k - b.k) * sp[2];
  return std::sqrt(x * x + y * y + z * z);
}

// For each voxel of `from` (in scan order), the distance to the nearest voxel of `to`. O(n*m).
inline std::vector<double> brute_directed(const std::vector<Voxel>& from, const std::vector<Voxel>& to,
                                          const Vec3& sp) {
  std::vector<double> out;
  for (const Voxel& a : from) {
    double best = INFINITY;
    for (const Voxel& b : to) best = std::min(best, voxel_distance(a, b, sp));
    out.push_back(best);
  }
  return out;
}

// numpy.percentile(values, q) with the default linear method, by full sort.
inline double numpy_percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * (v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

}  // namespace tumorlab::imaging::test
