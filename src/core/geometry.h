#pragma once
// Image geometry: the voxel grid and where it sits in patient space.
// Physical coordinates are millimetres in DICOM's LPS frame (x to patient Left, y to
// Posterior, z to Superior), the same convention ITK uses. NIfTI's RAS is converted at I/O.

#include <array>
#include <cstdint>
#include <string>

namespace tumorlab {

using Size3 = std::array<int64_t, 3>;   // voxels along i, j, k
using Vec3 = std::array<double, 3>;
using Matrix3 = std::array<double, 9>;  // row-major 3x3

struct PointLPS {
  double x = 0, y = 0, z = 0;
};

// A (possibly fractional) voxel index; integer values are voxel centres.
struct IndexIJK {
  double i = 0, j = 0, k = 0;
};

struct Geometry {
  Size3 size{1, 1, 1};
  Vec3 spacing_mm{1, 1, 1};
  Vec3 origin_lps{0, 0, 0};  // physical position of voxel (0,0,0)'s centre
  // Direction cosines, row-major; column c is the LPS direction of index axis c.
  Matrix3 direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  int64_t voxel_count() const { return size[0] * size[1] * size[2]; }
  bool is_2d() const { return size[2] == 1; }
  double voxel_volume_ml() const { return spacing_mm[0] * spacing_mm[1] * spacing_mm[2] / 1000.0; }

  PointLPS index_to_physical(const IndexIJK& index) const;
  IndexIJK physical_to_index(const PointLPS& point) const;
  // 4x4 row-major affine mapping (i, j, k, 1) to LPS millimetres.
  std::array<double, 16> affine_lps() const;

  // Same grid: equal size, and spacing/origin/direction equal within tolerance
  // (relative for spacing, mm for origin, absolute for direction cosines).
  bool same_grid(const Geometry& other, double tolerance = 1e-4) const;
  // Human-readable reason two grids differ ("" when same_grid).
  std::string difference(const Geometry& other, double tolerance = 1e-4) const;
  // Throws Error(BadArgument) if sizes are not positive, spacing not positive and finite,
  // or the direction matrix is not orthonormal. `what` names the source in the message.
  void validate(const std::string& what) const;
  std::string describe() const;  // "256x256x20 @ 1x1x1 mm"
};

// Nearest standard orientation code of the direction matrix, e.g. "LPS", "RAS", "LPI".
std::string orientation_code(const Matrix3& direction);

}  // namespace tumorlab
