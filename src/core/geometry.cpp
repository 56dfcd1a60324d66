#include "tumorlab/core/geometry.h"

#include <cmath>
#include <sstream>

#include "tumorlab/core/error.h"

namespace tumorlab {
namespace {
std::string fmt(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}
std::string fmt3(const Vec3& v) { return "(" + fmt(v[0]) + ", " + fmt(v[1]) + ", " + fmt(v[2]) + ")"; }
}  // namespace

PointLPS Geometry::index_to_physical(const IndexIJK& index) const {
  const double s[3] = {index.i * spacing_mm[0], index.j * spacing_mm[1], index.k * spacing_mm[2]};
  const auto& d = direction;
  return {origin_lps[0] + d[0] * s[0] + d[1] * s[1] + d[2] * s[2],
          origin_lps[1] + d[3] * s[0] + d[4] * s[1] + d[5] * s[2],
          origin_lps[2] + d[6] * s[0] + d[7] * s[1] + d[8] * s[2]};
}

IndexIJK Geometry::physical_to_index(const PointLPS& p) const {
  // direction is orthonormal: its inverse is its transpose.
  const double v[3] = {p.x - origin_lps[0], p.y - origin_lps[1], p.z - origin_lps[2]};
  const auto& d = direction;
  return {(d[0] * v[0] + d[3] * v[1] + d[6] * v[2]) / spacing_mm[0],
          (d[1] * v[0] + d[4] * v[1] + d[7] * v[2]) / spacing_mm[1],
          (d[2] * v[0] + d[5] * v[1] + d[8] * v[2]) / spacing_mm[2]};
}

std::array<double, 16> Geometry::affine_lps() const {
  std::array<double, 16> a{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a[r * 4 + c] = direction[r * 3 + c] * spacing_mm[c];
    a[r * 4 + 3] = origin_lps[r];
  }
  a[15] = 1.0;
  return a;
}

std::string Geometry::difference(const Geometry& o, double tol) const {
  if (size != o.size) {
    return "size " + std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]) +
           " vs " + std::to_string(o.size[0]) + "x" + std::to_string(o.size[1]) + "x" + std::to_string(o.size[2]);
  }
  for (int a = 0; a < 3; ++a) {
    if (std::fabs(spacing_mm[a] - o.spacing_mm[a]) > tol * std::max(1.0, std::fabs(spacing_mm[a]))) {
      return "spacing " + fmt3(spacing_mm) + " mm vs " + fmt3(o.spacing_mm) + " mm";
    }
  }
  for (int a = 0; a < 3; ++a) {
    // Origins are compared relative to the voxel size so that rounding in file headers
    // (NIfTI stores float32) does not make equal grids differ.
    if (std::fabs(origin_lps[a] - o.origin_lps[a]) > tol * std::max(1.0, std::fabs(origin_lps[a])) * 10) {
      return "origin " + fmt3(origin_lps) + " vs " + fmt3(o.origin_lps);
    }
  }
  for (int e = 0; e < 9; ++e) {
    if (std::fabs(direction[e] - o.direction[e]) > tol * 10) {
      return "direction " + orientation_code(direction) + " vs " + orientation_code(o.direction) +
             " (cosines differ at element " + std::to_string(e) + ": " + fmt(direction[e]) + " vs " +
             fmt(o.direction[e]) + ")";
    }
  }
  return "";
}

bool Geometry::same_grid(const Geometry& o, double tol) const { return difference(o, tol).empty(); }

void Geometry::validate(const std::string& what) const {
  for (int a = 0; a < 3; ++a) {
    if (size[a] < 1) {
      throw Error(ErrorCode::BadArgument, what + ": size along axis " + std::to_string(a) + " is " +
                                              std::to_string(size[a]) + ", expected >= 1");
    }
    if (!(spacing_mm[a] > 0) || !std::isfinite(spacing_mm[a])) {
      throw Error(ErrorCode::BadArgument, what + ": spacing along axis " + std::to_string(a) + " is " +
                                              fmt(spacing_mm[a]) + " mm, expected a positive number");
    }
    if (!std::isfinite(origin_lps[a])) {
      throw Error(ErrorCode::BadArgument, what + ": origin is not finite");
    }
  }
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double dot = 0;
      for (int k = 0; k < 3; ++k) dot += direction[k * 3 + r] * direction[k * 3 + c];
      if (std::fabs(dot - (r == c ? 1.0 : 0.0)) > 1e-3) {
        throw Error(ErrorCode::BadArgument, what + ": direction cosines are not orthonormal");
      }
    }
  }
}

std::string Geometry::describe() const {
  return std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]) + " @ " +
         fmt(spacing_mm[0]) + "x" + fmt(spacing_mm[1]) + "x" + fmt(spacing_mm[2]) + " mm";
}

std::string orientation_code(const Matrix3& d) {
  // For each index axis, the LPS axis its direction is closest to, with sign.
  static const char kPos[3] = {'L', 'P', 'S'};
  static const char kNeg[3] = {'R', 'A', 'I'};
  std::string code;
  for (int c = 0; c < 3; ++c) {
    int best = 0;
    for (int r = 1; r < 3; ++r) {
      if (std::fabs(d[r * 3 + c]) > std::fabs(d[best * 3 + c])) best = r;
    }
    code += d[best * 3 + c] >= 0 ? kPos[best] : kNeg[best];
  }
  return code;
}

}  // namespace tumorlab
