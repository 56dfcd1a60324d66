#include "tumorlab/imaging/resample.h"

#include <itkIdentityTransform.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tumorlab/itk/itk_bridge.h"

namespace tumorlab::imaging {
namespace {

std::string fmt_spacing(const Vec3& s) {
  return std::to_string(s[0]) + " x " + std::to_string(s[1]) + " x " + std::to_string(s[2]);
}

// Resamples one ITK image of pixel type T onto `target`.
template <class T>
typename itk::Image<T, 3>::Pointer resample_image(const itk::Image<T, 3>* input, const Geometry& target,
                                                  Interpolation interpolation, double default_value) {
  using ImageT = itk::Image<T, 3>;
  using FilterT = itk::ResampleImageFilter<ImageT, ImageT, double>;
  auto filter = FilterT::New();
  filter->SetInput(input);
  filter->SetTransform(itk::IdentityTransform<double, 3>::New());
  if (interpolation == Interpolation::Linear) {
    filter->SetInterpolator(itk::LinearInterpolateImageFunction<ImageT, double>::New());
  } else {
    filter->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<ImageT, double>::New());
  }
  typename ImageT::SizeType size;
  typename ImageT::SpacingType spacing;
  typename ImageT::PointType origin;
  typename ImageT::DirectionType direction;
  for (unsigned a = 0; a < 3; ++a) {
    size[a] = static_cast<itk::SizeValueType>(target.size[a]);
    spacing[a] = target.spacing_mm[a];
    origin[a] = target.origin_lps[a];
    for (unsigned c = 0; c < 3; ++c) direction[a][c] = target.direction[a * 3 + c];
  }
  filter->SetSize(size);
  filter->SetOutputSpacing(spacing);
  filter->SetOutputOrigin(origin);
  filter->SetOutputDirection(direction);
  filter->SetDefaultPixelValue(static_cast<T>(default_value));
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, "resample", ErrorCode::Internal);
  }
  return filter->GetOutput();
}

// Linear resampling between grids with the same direction cosines (what resampling to a new
// spacing and back produces): the map from a target index to a source index is then a scale and a
// shift per axis, so trilinear interpolation separates into 1D passes (x, then y, then z).
// It computes what ITK's ResampleImageFilter + LinearInterpolateImageFunction compute: a target
// voxel whose source position lies outside [-0.5, n - 0.5) along any axis gets the default value;
// inside, positions within half a voxel of the outermost centres take the edge voxel's value.
// Single-threaded, 14.6x faster than the filter with 2 threads (bench/io_bench: a CT probability
// map 256x256x100 -> 512x512x100, 76 ms vs 1111 ms).
struct AxisTaps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w;      // value = v[i0] + w * (v[i1] - v[i0])
  std::vector<uint8_t> inside;
  bool all_inside = true;
};

AxisTaps axis_taps(int64_t n_source, int64_t n_target, double offset, double ratio) {
  AxisTaps t;
  t.i0.resize(static_cast<std::size_t>(n_target));
  t.i1.resize(t.i0.size());
  t.w.resize(t.i0.size());
  t.inside.resize(t.i0.size());
  for (int64_t k = 0; k < n_target; ++k) {
    const double c = offset + static_cast<double>(k) * ratio;
    const auto u = static_cast<std::size_t>(k);
    t.inside[u] = c >= -0.5 && c < static_cast<double>(n_source) - 0.5;
    t.all_inside = t.all_inside && t.inside[u];
    const int64_t i0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(c)), 0, n_source - 1);
    t.i0[u] = i0;
    t.i1[u] = std::min<int64_t>(i0 + 1, n_source - 1);
    t.w[u] = t.i1[u] == i0 ? 0.0f : static_cast<float>(std::clamp(c - static_cast<double>(i0), 0.0, 1.0));
  }
  return t;
}

bool same_direction(const Geometry& a, const Geometry& b) {
  for (int i = 0; i < 9; ++i) {
    if (std::abs(a.direction[i] - b.direction[i]) > 1e-9) return false;
  }
  return true;
}

// One channel of voxels of type T on `source` -> `out`, target.voxel_count() float32 voxels (same
// direction). The source is read in its own type: no float copy of the input.
template <class T>
void resample_separable(const T* in, const Geometry& source, const Geometry& target, float default_value,
                        float* out) {
  AxisTaps taps[3];
  for (int a = 0; a < 3; ++a) {
    // Source index along a of target voxel k: (D^T (o_t - o_s))_a / s_a + k * t_a / s_a.
    double along = 0;
    for (int r = 0; r < 3; ++r) along += source.direction[r * 3 + a] * (target.origin_lps[r] - source.origin_lps[r]);
    taps[a] = axis_taps(source.size[a], target.size[a], along / source.spacing_mm[a],
                        target.spacing_mm[a] / source.spacing_mm[a]);
  }
  const int64_t sx = source.size[0], sy = source.size[1];
  const int64_t tx = target.size[0], ty = target.size[1], tz = target.size[2];
  const int64_t plane = ty * tx;
  // Source plane z interpolated in x and y onto the target's (ty, tx): the two planes the current
  // target plane needs are kept, so each source plane is interpolated once when z increases and
  // nothing of the volume's size is allocated besides the output.
  std::vector<float> row(static_cast<std::size_t>(sy * tx));
  std::vector<float> cache[2] = {std::vector<float>(static_cast<std::size_t>(plane)),
                                 std::vector<float>(static_cast<std::size_t>(plane))};
  int64_t cached[2] = {-1, -1};
  // Plane z, computed into the slot that does not hold plane `keep` unless it is cached already.
  auto plane_of = [&](int64_t z, int64_t keep) -> const float* {
    for (int s = 0; s < 2; ++s)
      if (cached[s] == z) return cache[s].data();
    const int slot = cached[0] == keep ? 1 : 0;
    const T* src = in + z * sy * sx;
    for (int64_t y = 0; y < sy; ++y) {  // x
      const T* line = src + y * sx;
      float* dst = row.data() + y * tx;
      for (int64_t x = 0; x < tx; ++x) {
        const auto u = static_cast<std::size_t>(x);
        const auto v0 = static_cast<float>(line[taps[0].i0[u]]), v1 = static_cast<float>(line[taps[0].i1[u]]);
        dst[x] = v0 + taps[0].w[u] * (v1 - v0);
      }
    }
    float* out_plane = cache[slot].data();
    for (int64_t y = 0; y < ty; ++y) {  // y
      const auto u = static_cast<std::size_t>(y);
      const float* r0 = row.data() + taps[1].i0[u] * tx;
      const float* r1 = row.data() + taps[1].i1[u] * tx;
      const float w = taps[1].w[u];
      float* dst = out_plane + y * tx;
      for (int64_t x = 0; x < tx; ++x) dst[x] = r0[x] + w * (r1[x] - r0[x]);
    }
    cached[slot] = z;
    return out_plane;
  };
  for (int64_t z = 0; z < tz; ++z) {  // z, then the default value outside the source grid
    const auto u = static_cast<std::size_t>(z);
    float* dst = out + z * plane;
    if (!taps[2].inside[u]) {
      std::fill(dst, dst + plane, default_value);
      continue;
    }
    const float* p0 = plane_of(taps[2].i0[u], taps[2].i1[u]);
    const float w = taps[2].w[u];
    if (w == 0.0f) {
      std::copy(p0, p0 + plane, dst);
    } else {
      const float* p1 = plane_of(taps[2].i1[u], taps[2].i0[u]);
      for (int64_t v = 0; v < plane; ++v) dst[v] = p0[v] + w * (p1[v] - p0[v]);
    }
    if (taps[0].all_inside && taps[1].all_inside) continue;
    for (int64_t y = 0; y < ty; ++y) {
      for (int64_t x = 0; x < tx; ++x) {
        if (!taps[1].inside[static_cast<std::size_t>(y)] || !taps[0].inside[static_cast<std::size_t>(x)]) {
          dst[y * tx + x] = default_value;
        }
      }
    }
  }
}

}  // namespace

Geometry geometry_with_spacing(const Geometry& geometry, const Vec3& spacing_mm) {
  for (int a = 0; a < 3; ++a) {
    if (!(spacing_mm[a] > 0) || !std::isfinite(spacing_mm[a])) {
      throw Error(ErrorCode::BadArgument,
                  "resample: target spacing " + fmt_spacing(spacing_mm) + " mm, expected positive finite numbers");
    }
  }
  Geometry g = geometry;
  g.spacing_mm = spacing_mm;
  double shift[3];
  for (int a = 0; a < 3; ++a) {
    const double extent = static_cast<double>(geometry.size[a]) * geometry.spacing_mm[a];
    g.size[a] = std::max<int64_t>(1, static_cast<int64_t>(std::llround(extent / spacing_mm[a])));
    // Keep the grid centre fixed: shift along index axis a, in mm.
    shift[a] = (static_cast<double>(geometry.size[a] - 1) * geometry.spacing_mm[a] -
                static_cast<double>(g.size[a] - 1) * spacing_mm[a]) /
               2.0;
  }
  for (int r = 0; r < 3; ++r) {
    double d = 0;
    for (int c = 0; c < 3; ++c) d += geometry.direction[r * 3 + c] * shift[c];
    g.origin_lps[r] = geometry.origin_lps[r] + d;
  }
  return g;
}

Volume resample(const Volume& volume, const Geometry& target, const ResampleOptions& options) {
  target.validate("resample target grid");
  if (volume.empty()) throw Error(ErrorCode::BadArgument, "resample: the input volume is empty");
  const PixelType out_type = options.output_type.value_or(
      options.interpolation == Interpolation::Nearest ? volume.pixel_type() : PixelType::Float32);
  std::vector<Volume> parts;
  parts.reserve(volume.channels());
  for (int c = 0; c < volume.channels(); ++c) {
    Volume part;
    if (options.interpolation == Interpolation::Nearest) {
      // Sample in the input type: exact copies of source values.
      dispatch_pixel_type(volume.pixel_type(), [&](auto tag) {
        using T = decltype(tag);
        auto image = itkbridge::to_itk<T>(volume, c);
        part = itkbridge::from_itk<T>(
            resample_image<T>(image.GetPointer(), target, options.interpolation, options.default_value).GetPointer());
      });
    } else if (volume.pixel_type() != PixelType::Float64 && out_type != PixelType::Float64 &&
               options.separable && same_direction(volume.geometry(), target)) {
      part = Volume(target, PixelType::Float32);
      dispatch_pixel_type(volume.pixel_type(), [&](auto tag) {
        using T = decltype(tag);
        resample_separable(volume.channel_data<T>(c), volume.geometry(), target,
                           static_cast<float>(options.default_value), part.data<float>());
      });
    } else if (volume.pixel_type() == PixelType::Float64 || out_type == PixelType::Float64) {
      auto image = itkbridge::to_itk<double>(volume, c);
      part = itkbridge::from_itk<double>(
          resample_image<double>(image.GetPointer(), target, options.interpolation, options.default_value)
              .GetPointer());
    } else {
      auto image = itkbridge::to_itk<float>(volume, c);
      part = itkbridge::from_itk<float>(
          resample_image<float>(image.GetPointer(), target, options.interpolation, options.default_value)
              .GetPointer());
    }
    if (part.pixel_type() != out_type) part = part.as_type(out_type);
    parts.push_back(std::move(part));
  }
  Volume out = parts.size() == 1 ? std::move(parts[0]) : Volume::stack_channels(parts);
  // ITK's geometry round trip is exact, but keep ours verbatim for consistency.
  out.set_geometry(target);
  out.modality = volume.modality;
  out.channel_names = volume.channel_names;
  return out;
}

Volume resample_to_spacing(const Volume& volume, const Vec3& spacing_mm, const ResampleOptions& options) {
  return resample(volume, geometry_with_spacing(volume.geometry(), spacing_mm), options);
}

LabelMap resample(const LabelMap& labels, const Geometry& target) {
  target.validate("resample target grid");
  auto image = itkbridge::to_itk(labels);
  LabelMap out =
      itkbridge::label_from_itk(resample_image<uint8_t>(image.GetPointer(), target, Interpolation::Nearest, 0).GetPointer());
  out.set_geometry(target);
  return out;
}

LabelMap resample_to_spacing(const LabelMap& labels, const Vec3& spacing_mm) {
  return resample(labels, geometry_with_spacing(labels.geometry(), spacing_mm));
}

}  // namespace tumorlab::imaging
