#include "tumorlab/imaging/resample.h"

#include <itkIdentityTransform.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <cmath>

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
