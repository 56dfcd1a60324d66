#include "tumorlab/core/volume.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>

#include <sys/mman.h>

namespace tumorlab {
namespace {

// A fresh zero-filled buffer of n bytes. From 4 MiB on, its 2 MiB-aligned part is advised as
// transparent huge pages (MADV_HUGEPAGE) before the first write: on this project's 2-core virtual
// machines every first-touch page fault is a round trip to the host, and zero-filling a fresh
// 512 x 512 x 100 float volume in 4 kB pages cost more than the resampling that then wrote it
// (bench/io_bench, BM_ResampleBack_CT_*). Only advice: ignored where huge pages are off.
template <class Vec>
void allocate_zeroed(Vec& v, std::size_t n) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{1} << 21;
  v.clear();
  v.reserve(n);
  if (n >= 2 * kHuge) {
    const auto begin = reinterpret_cast<std::uintptr_t>(v.data());
    const std::uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + n) & ~(kHuge - 1);
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
  }
  v.resize(n);
}

}  // namespace

std::size_t pixel_size(PixelType type) {
  return dispatch_pixel_type(type, [](auto v) { return sizeof(v); });
}

std::string to_string(PixelType type) {
  switch (type) {
    case PixelType::UInt8: return "uint8";
    case PixelType::Int8: return "int8";
    case PixelType::UInt16: return "uint16";
    case PixelType::Int16: return "int16";
    case PixelType::UInt32: return "uint32";
    case PixelType::Int32: return "int32";
    case PixelType::Float32: return "float32";
    case PixelType::Float64: return "float64";
  }
  return "unknown";
}

PixelType parse_pixel_type(const std::string& name) {
  for (auto t : {PixelType::UInt8, PixelType::Int8, PixelType::UInt16, PixelType::Int16, PixelType::UInt32,
                 PixelType::Int32, PixelType::Float32, PixelType::Float64}) {
    if (to_string(t) == name) return t;
  }
  throw Error(ErrorCode::BadArgument, "unknown pixel type '" + name +
                                          "', expected uint8, int8, uint16, int16, uint32, int32, float32 or float64");
}

uint64_t max_volume_bytes() {
  static const uint64_t limit = [] {
    if (const char* env = std::getenv("TUMORLAB_MAX_VOLUME_BYTES")) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && v > 0) return static_cast<uint64_t>(v);
    }
    return uint64_t{8} << 30;
  }();
  return limit;
}

void check_allocation(const Size3& size, int channels, PixelType type, const std::string& source) {
  const uint64_t limit = max_volume_bytes();
  uint64_t bytes = pixel_size(type) * static_cast<uint64_t>(std::max(channels, 1));
  for (int64_t s : size) {
    if (s < 1) {
      throw Error(ErrorCode::HeaderMismatch, source + ": dimension " + std::to_string(s) + " is not positive");
    }
    if (bytes > limit / static_cast<uint64_t>(s) + 1) {
      bytes = limit + 1;
      break;
    }
    bytes *= static_cast<uint64_t>(s);
  }
  if (bytes > limit) {
    throw Error(ErrorCode::TooLarge, source + ": dimensions " + std::to_string(size[0]) + "x" +
                                         std::to_string(size[1]) + "x" + std::to_string(size[2]) + "x" +
                                         std::to_string(channels) + " of " + to_string(type) +
                                         " would need more than the limit of " + std::to_string(limit >> 20) +
                                         " MiB (TUMORLAB_MAX_VOLUME_BYTES)");
  }
}

Volume::Volume(const Geometry& geometry, PixelType type, int channels)
    : geometry_(geometry), type_(type), channels_(channels) {
  geometry.validate("volume");
  if (channels < 1) throw Error(ErrorCode::BadArgument, "volume: channel count must be >= 1");
  check_allocation(geometry.size, channels, type, "volume");
  allocate_zeroed(bytes_, static_cast<std::size_t>(geometry.voxel_count()) * channels * pixel_size(type));
}

void Volume::set_geometry(const Geometry& geometry) {
  if (geometry.size != geometry_.size) {
    throw Error(ErrorCode::Internal, "Volume::set_geometry: size changes are not allowed");
  }
  geometry.validate("volume");
  geometry_ = geometry;
}

void Volume::check_type(PixelType requested) const {
  if (requested != type_) {
    throw Error(ErrorCode::Internal, "volume holds " + to_string(type_) + " voxels, accessed as " +
                                         to_string(requested));
  }
}

double Volume::value(int64_t linear, int c) const {
  return dispatch_pixel_type(type_, [&](auto tag) -> double {
    using T = decltype(tag);
    return static_cast<double>(reinterpret_cast<const T*>(bytes_.data())[linear + c * voxel_count()]);
  });
}

namespace {
template <class To, class From> To convert_value(From v) {
  if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(v);
  } else {
    double d = static_cast<double>(v);
    if (std::is_floating_point_v<From>) {
      if (std::isnan(d)) return 0;
      d = std::nearbyint(d);
    }
    d = std::clamp(d, static_cast<double>(std::numeric_limits<To>::lowest()),
                   static_cast<double>(std::numeric_limits<To>::max()));
    return static_cast<To>(d);
  }
}
}  // namespace

Volume Volume::as_type(PixelType type) const {
  Volume out(geometry_, type, channels_);
  out.modality = modality;
  out.channel_names = channel_names;
  const int64_t n = voxel_count() * channels_;
  dispatch_pixel_type(type_, [&](auto from_tag) {
    using From = decltype(from_tag);
    const From* src = reinterpret_cast<const From*>(bytes_.data());
    dispatch_pixel_type(type, [&](auto to_tag) {
      using To = decltype(to_tag);
      To* dst = reinterpret_cast<To*>(out.bytes_.data());
      for (int64_t i = 0; i < n; ++i) dst[i] = convert_value<To>(src[i]);
    });
  });
  return out;
}

Volume Volume::channel(int c) const {
  if (c < 0 || c >= channels_) {
    throw Error(ErrorCode::BadArgument, "channel " + std::to_string(c) + " requested, volume has " +
                                            std::to_string(channels_));
  }
  Volume out(geometry_, type_, 1);
  out.modality = modality;
  if (static_cast<std::size_t>(c) < channel_names.size()) out.channel_names = {channel_names[c]};
  const std::size_t n = out.bytes_.size();
  std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(n * c), n, out.bytes_.begin());
  return out;
}

Volume Volume::stack_channels(const std::vector<Volume>& parts) {
  if (parts.empty()) throw Error(ErrorCode::BadArgument, "stack_channels: no volumes given");
  int total = 0;
  for (std::size_t p = 0; p < parts.size(); ++p) {
    if (parts[p].pixel_type() != parts[0].pixel_type()) {
      throw Error(ErrorCode::BadArgument, "stack_channels: channel " + std::to_string(p) + " is " +
                                              to_string(parts[p].pixel_type()) + ", expected " +
                                              to_string(parts[0].pixel_type()));
    }
    std::string diff = parts[0].geometry().difference(parts[p].geometry());
    if (!diff.empty()) {
      throw Error(ErrorCode::GeometryMismatch, "stack_channels: channel " + std::to_string(p) +
                                                   " is on another grid: " + diff);
    }
    total += parts[p].channels();
  }
  Volume out(parts[0].geometry(), parts[0].pixel_type(), total);
  out.modality = parts[0].modality;
  std::size_t offset = 0;
  for (const auto& p : parts) {
    std::copy(p.bytes_.begin(), p.bytes_.end(), out.bytes_.begin() + static_cast<std::ptrdiff_t>(offset));
    offset += p.bytes_.size();
    for (int c = 0; c < p.channels(); ++c) {
      out.channel_names.push_back(static_cast<std::size_t>(c) < p.channel_names.size() ? p.channel_names[c] : "");
    }
  }
  return out;
}

std::pair<double, double> Volume::intensity_range(int c) const {
  return dispatch_pixel_type(type_, [&](auto tag) {
    using T = decltype(tag);
    const T* p = channel_data<T>(c);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int64_t i = 0, n = voxel_count(); i < n; ++i) {
      double v = static_cast<double>(p[i]);
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    return std::make_pair(lo, hi);
  });
}

int64_t Volume::count_non_finite() const {
  return dispatch_pixel_type(type_, [&](auto tag) -> int64_t {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* p = data<T>();
      int64_t bad = 0;
      for (int64_t i = 0, n = voxel_count() * channels_; i < n; ++i) bad += !std::isfinite(p[i]);
      return bad;
    } else {
      return 0;
    }
  });
}

LabelMap::LabelMap(const Geometry& geometry) : geometry_(geometry) {
  geometry.validate("label map");
  check_allocation(geometry.size, 1, PixelType::UInt8, "label map");
  allocate_zeroed(voxels_, static_cast<std::size_t>(geometry.voxel_count()));
}

void LabelMap::set_geometry(const Geometry& geometry) {
  if (geometry.size != geometry_.size) {
    throw Error(ErrorCode::Internal, "LabelMap::set_geometry: size changes are not allowed");
  }
  geometry.validate("label map");
  geometry_ = geometry;
}

LabelMap LabelMap::from_volume(const Volume& volume, const std::string& source) {
  if (volume.channels() != 1) {
    throw Error(ErrorCode::InvalidLabel, source + ": a label map has 1 channel, found " +
                                             std::to_string(volume.channels()));
  }
  LabelMap out(volume.geometry());
  dispatch_pixel_type(volume.pixel_type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = volume.data<T>();
    for (int64_t i = 0, n = volume.voxel_count(); i < n; ++i) {
      const double v = static_cast<double>(p[i]);
      if (!(v >= 0 && v <= 255) || v != std::floor(v)) {
        throw Error(ErrorCode::InvalidLabel, source + ": voxel " + std::to_string(i) + " holds " +
                                                 std::to_string(v) + ", expected an integer label 0..255");
      }
      out.voxels_[i] = static_cast<uint8_t>(v);
    }
  });
  return out;
}

Volume LabelMap::to_volume() const {
  Volume out(geometry_, PixelType::UInt8, 1);
  std::copy(voxels_.begin(), voxels_.end(), out.data<uint8_t>());
  return out;
}

int64_t LabelMap::count(uint8_t label) const { return std::count(voxels_.begin(), voxels_.end(), label); }

int64_t LabelMap::count_nonzero() const {
  return static_cast<int64_t>(voxels_.size()) - count(0);
}

uint8_t LabelMap::max_label() const {
  return voxels_.empty() ? 0 : *std::max_element(voxels_.begin(), voxels_.end());
}

LabelMap LabelMap::binary(uint8_t label) const {
  LabelMap out(geometry_);
  for (std::size_t i = 0; i < voxels_.size(); ++i) {
    out.voxels_[i] = label == 0 ? (voxels_[i] != 0) : (voxels_[i] == label);
  }
  return out;
}

}  // namespace tumorlab
