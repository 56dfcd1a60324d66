#pragma once
// Volume: a typed voxel buffer with one or more channels on a Geometry.
// Layout is channel-planar: channel c occupies voxels [c*N, (c+1)*N) where N = voxel_count(),
// and within a channel the index i (x) varies fastest, then j, then k (as in NIfTI and ITK).
// 2D images are volumes with size[2] == 1.

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tumorlab/core/error.h"
#include "tumorlab/core/geometry.h"

namespace tumorlab {

enum class PixelType : uint8_t { UInt8, Int8, UInt16, Int16, UInt32, Int32, Float32, Float64 };

std::size_t pixel_size(PixelType type);
std::string to_string(PixelType type);
// Parses "uint8", "int16", "float32", ... Throws Error(BadArgument) otherwise.
PixelType parse_pixel_type(const std::string& name);

template <class T> constexpr PixelType pixel_type_of();
template <> constexpr PixelType pixel_type_of<uint8_t>() { return PixelType::UInt8; }
template <> constexpr PixelType pixel_type_of<int8_t>() { return PixelType::Int8; }
template <> constexpr PixelType pixel_type_of<uint16_t>() { return PixelType::UInt16; }
template <> constexpr PixelType pixel_type_of<int16_t>() { return PixelType::Int16; }
template <> constexpr PixelType pixel_type_of<uint32_t>() { return PixelType::UInt32; }
template <> constexpr PixelType pixel_type_of<int32_t>() { return PixelType::Int32; }
template <> constexpr PixelType pixel_type_of<float>() { return PixelType::Float32; }
template <> constexpr PixelType pixel_type_of<double>() { return PixelType::Float64; }

// Calls f(T{}) with T the C++ type of `type`.
template <class F> decltype(auto) dispatch_pixel_type(PixelType type, F&& f) {
  switch (type) {
    case PixelType::UInt8: return f(uint8_t{});
    case PixelType::Int8: return f(int8_t{});
    case PixelType::UInt16: return f(uint16_t{});
    case PixelType::Int16: return f(int16_t{});
    case PixelType::UInt32: return f(uint32_t{});
    case PixelType::Int32: return f(int32_t{});
    case PixelType::Float32: return f(float{});
    case PixelType::Float64: return f(double{});
  }
  throw Error(ErrorCode::Internal, "unknown pixel type");
}

// Largest buffer a single volume may need; anything larger is refused before allocating.
// Default 8 GiB; TUMORLAB_MAX_VOLUME_BYTES overrides it.
uint64_t max_volume_bytes();
// Throws Error(TooLarge) naming `source` when the buffer would exceed max_volume_bytes()
// or the size product overflows. Call before allocating anything a file header asks for.
void check_allocation(const Size3& size, int channels, PixelType type, const std::string& source);

class Volume {
 public:
  Volume() = default;
  // Zero-filled volume. Validates the geometry and the allocation size.
  Volume(const Geometry& geometry, PixelType type, int channels = 1);

  const Geometry& geometry() const { return geometry_; }
  // Geometry changes that keep the size (spacing, origin, direction) are allowed.
  void set_geometry(const Geometry& geometry);
  PixelType pixel_type() const { return type_; }
  int channels() const { return channels_; }
  int64_t voxel_count() const { return geometry_.voxel_count(); }
  std::size_t size_bytes() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

  void* raw() { return bytes_.data(); }
  const void* raw() const { return bytes_.data(); }

  template <class T> T* data() {
    check_type(pixel_type_of<T>());
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <class T> const T* data() const {
    check_type(pixel_type_of<T>());
    return reinterpret_cast<const T*>(bytes_.data());
  }
  template <class T> T* channel_data(int c) { return data<T>() + static_cast<int64_t>(c) * voxel_count(); }
  template <class T> const T* channel_data(int c) const {
    return data<T>() + static_cast<int64_t>(c) * voxel_count();
  }

  // Generic (slow) access for tools that do not care about the type.
  double value(int64_t linear_index, int channel = 0) const;
  int64_t linear_index(int64_t i, int64_t j, int64_t k) const {
    return i + geometry_.size[0] * (j + geometry_.size[1] * k);
  }

  // Converted copy (values are rounded and clamped to the target type's range).
  Volume as_type(PixelType type) const;
  Volume channel(int c) const;
  // Stacks single- or multi-channel volumes of one type on one grid into channels.
  static Volume stack_channels(const std::vector<Volume>& parts);

  // Minimum and maximum of one channel (finite values only).
  std::pair<double, double> intensity_range(int channel = 0) const;
  // Number of NaN or Inf voxels (0 for integer types).
  int64_t count_non_finite() const;

  // Free-form metadata carried alongside the voxels.
  std::string modality;                    // DICOM modality: "CT", "MR", "PT", ... or ""
  std::vector<std::string> channel_names;  // optional, one per channel

 private:
  void check_type(PixelType requested) const;

  Geometry geometry_;
  PixelType type_ = PixelType::UInt8;
  int channels_ = 0;
  std::vector<unsigned char> bytes_;
};

// A label map: one uint8 label per voxel (0 = background) on an image's grid.
class LabelMap {
 public:
  LabelMap() = default;
  explicit LabelMap(const Geometry& geometry);
  // From a single-channel volume of any integer type; values must lie in 0..255, otherwise
  // Error(InvalidLabel) naming `source`. Float volumes are accepted when every value is integral.
  static LabelMap from_volume(const Volume& volume, const std::string& source);
  Volume to_volume() const;

  const Geometry& geometry() const { return geometry_; }
  void set_geometry(const Geometry& geometry);
  int64_t voxel_count() const { return geometry_.voxel_count(); }
  uint8_t* data() { return voxels_.data(); }
  const uint8_t* data() const { return voxels_.data(); }
  std::vector<uint8_t>& voxels() { return voxels_; }
  const std::vector<uint8_t>& voxels() const { return voxels_; }
  uint8_t& at(int64_t i, int64_t j, int64_t k) { return voxels_[index(i, j, k)]; }
  uint8_t at(int64_t i, int64_t j, int64_t k) const { return voxels_[index(i, j, k)]; }
  int64_t index(int64_t i, int64_t j, int64_t k) const {
    return i + geometry_.size[0] * (j + geometry_.size[1] * k);
  }

  int64_t count(uint8_t label) const;
  int64_t count_nonzero() const;
  uint8_t max_label() const;
  // Binary mask of one label (1 where voxel == label) or of all foreground (label 0 = any non-zero).
  LabelMap binary(uint8_t label = 0) const;

 private:
  Geometry geometry_;
  std::vector<uint8_t> voxels_;
};

}  // namespace tumorlab
