#pragma once
// Internal bridge between our Volume/LabelMap and itk::Image. Include only from .cpp files:
// it pulls in ITK headers, which are slow to compile. Copies voxels; geometry maps 1:1
// (ITK also uses LPS, origin at the centre of voxel 0, direction columns per index axis).

#include <itkImage.h>
#include <itkMacro.h>

#include <algorithm>
#include <string>

#include "tumorlab/core/error.h"
#include "tumorlab/core/volume.h"

namespace tumorlab::itkbridge {

using LabelImage = itk::Image<uint8_t, 3>;
using FloatImage = itk::Image<float, 3>;

template <class ImageT> Geometry geometry_of(const ImageT* image) {
  Geometry g;
  const auto region = image->GetLargestPossibleRegion();
  for (unsigned a = 0; a < 3; ++a) {
    g.size[a] = static_cast<int64_t>(region.GetSize()[a]);
    g.spacing_mm[a] = image->GetSpacing()[a];
    g.origin_lps[a] = image->GetOrigin()[a];
    for (unsigned c = 0; c < 3; ++c) g.direction[a * 3 + c] = image->GetDirection()[a][c];
  }
  return g;
}

template <class ImageT> void set_geometry(ImageT* image, const Geometry& g) {
  typename ImageT::RegionType region;
  typename ImageT::SpacingType spacing;
  typename ImageT::PointType origin;
  typename ImageT::DirectionType direction;
  for (unsigned a = 0; a < 3; ++a) {
    region.SetIndex(a, 0);
    region.SetSize(a, static_cast<itk::SizeValueType>(g.size[a]));
    spacing[a] = g.spacing_mm[a];
    origin[a] = g.origin_lps[a];
    for (unsigned c = 0; c < 3; ++c) direction[a][c] = g.direction[a * 3 + c];
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
}

// New ITK image of pixel type T holding one channel of `volume` (converted when types differ).
template <class T> typename itk::Image<T, 3>::Pointer to_itk(const Volume& volume, int channel = 0) {
  auto image = itk::Image<T, 3>::New();
  set_geometry(image.GetPointer(), volume.geometry());
  image->Allocate();
  T* out = image->GetBufferPointer();
  const int64_t n = volume.voxel_count();
  dispatch_pixel_type(volume.pixel_type(), [&](auto tag) {
    using S = decltype(tag);
    const S* in = volume.channel_data<S>(channel);
    std::transform(in, in + n, out, [](S v) { return static_cast<T>(v); });
  });
  return image;
}

inline LabelImage::Pointer to_itk(const LabelMap& label) {
  auto image = LabelImage::New();
  set_geometry(image.GetPointer(), label.geometry());
  image->Allocate();
  std::copy(label.voxels().begin(), label.voxels().end(), image->GetBufferPointer());
  return image;
}

template <class T> Volume from_itk(const itk::Image<T, 3>* image) {
  Volume v(geometry_of(image), pixel_type_of<T>(), 1);
  std::copy_n(image->GetBufferPointer(), v.voxel_count(), v.template data<T>());
  return v;
}

inline LabelMap label_from_itk(const LabelImage* image) {
  LabelMap l(geometry_of(image));
  std::copy_n(image->GetBufferPointer(), l.voxel_count(), l.data());
  return l;
}

// Translates an ITK exception into our error type; `context` names the file or operation.
inline Error translate(const itk::ExceptionObject& e, const std::string& context,
                       ErrorCode code = ErrorCode::CorruptFile) {
  std::string what = e.GetDescription();
  if (what.empty()) what = e.what();
  return Error(code, context + ": " + what);
}

}  // namespace tumorlab::itkbridge
