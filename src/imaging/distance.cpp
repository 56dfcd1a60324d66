#include "tumorlab/imaging/distance.h"

#include <itkSignedMaurerDistanceMapImageFilter.h>

#include <algorithm>
#include <limits>

#include "tumorlab/imaging/distance_detail.h"
#include "tumorlab/itk/itk_bridge.h"

namespace tumorlab::imaging {

namespace detail {

void maurer_signed_distance(const uint8_t* mask, const Geometry& geometry, float* out) {
  auto image = itkbridge::LabelImage::New();
  itkbridge::set_geometry(image.GetPointer(), geometry);
  image->Allocate();
  std::copy_n(mask, geometry.voxel_count(), image->GetBufferPointer());
  using F = itk::SignedMaurerDistanceMapImageFilter<itkbridge::LabelImage, itkbridge::FloatImage>;
  auto f = F::New();
  f->SetInput(image);
  f->SetBackgroundValue(0);
  f->SetUseImageSpacing(true);
  f->SetSquaredDistance(false);
  f->SetInsideIsPositive(false);
  try {
    f->Update();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, "distance map", ErrorCode::Internal);
  }
  std::copy_n(f->GetOutput()->GetBufferPointer(), geometry.voxel_count(), out);
}

}  // namespace detail

Volume signed_distance_mm(const LabelMap& labels, uint8_t label) {
  const LabelMap mask = labels.binary(label);
  Volume out(labels.geometry(), PixelType::Float32, 1);
  float* d = out.data<float>();
  const int64_t n = mask.voxel_count();
  const int64_t fg = mask.count_nonzero();
  if (fg == 0 || fg == n) {
    std::fill_n(d, n, fg == 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity());
    return out;
  }
  detail::maurer_signed_distance(mask.data(), mask.geometry(), d);
  return out;
}

Volume distance_to_mask_mm(const LabelMap& labels, uint8_t label) {
  const LabelMap mask = labels.binary(label);
  Volume out(labels.geometry(), PixelType::Float32, 1);
  float* d = out.data<float>();
  const int64_t n = mask.voxel_count();
  const int64_t fg = mask.count_nonzero();
  if (fg == 0 || fg == n) {
    std::fill_n(d, n, fg == 0 ? std::numeric_limits<float>::infinity() : 0.0f);
    return out;
  }
  detail::maurer_signed_distance(mask.data(), mask.geometry(), d);
  // Outside, the distance to the boundary equals the distance to the nearest foreground voxel
  // (the nearest foreground voxel always has a background face neighbour towards the query point).
  const uint8_t* m = mask.data();
  for (int64_t i = 0; i < n; ++i) {
    if (m[i]) d[i] = 0.0f;
  }
  return out;
}

}  // namespace tumorlab::imaging
