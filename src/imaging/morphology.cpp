#include "tumorlab/imaging/morphology.h"

#include <itkBinaryBallStructuringElement.h>
#include <itkBinaryDilateImageFilter.h>
#include <itkBinaryErodeImageFilter.h>
#include <itkBinaryFillholeImageFilter.h>
#include <itkBinaryMorphologicalClosingImageFilter.h>
#include <itkBinaryMorphologicalOpeningImageFilter.h>

#include <cmath>

#include "tumorlab/itk/itk_bridge.h"

namespace tumorlab::imaging {
namespace {

using Image3 = itkbridge::LabelImage;
using Image2 = itk::Image<uint8_t, 2>;
using Ball3 = itk::BinaryBallStructuringElement<uint8_t, 3>;

enum class Op { Dilate, Erode, Open, Close };

// BinaryBallStructuringElement sized to the radius, with the elements set by our rule: offset d
// is on when sum over axes of (d / r)^2 <= 1 (axes with r = 0 require d = 0) or, for a radius in
// mm, when |d * spacing| <= radius_mm. (ITK's own ball fill is larger: radius 1 gives 19 voxels.)
Ball3 make_ball(const Geometry& g, const Size3& radius_voxels, double radius_mm = -1) {
  Ball3 ball;
  Ball3::SizeType r;
  for (unsigned a = 0; a < 3; ++a) {
    if (radius_voxels[a] < 0) {
      throw Error(ErrorCode::BadArgument, "morphology: radius " + std::to_string(radius_voxels[a]) +
                                              " voxels along axis " + std::to_string(a) + ", expected >= 0");
    }
    r[a] = static_cast<itk::SizeValueType>(a == 2 && g.is_2d() ? 0 : radius_voxels[a]);
  }
  ball.SetRadius(r);
  for (unsigned n = 0; n < ball.Size(); ++n) {
    const auto offset = ball.GetOffset(n);
    double sum = 0;
    for (unsigned a = 0; a < 3; ++a) {
      const double d = static_cast<double>(offset[a]);
      if (radius_mm >= 0) {
        sum += (d * g.spacing_mm[a]) * (d * g.spacing_mm[a]);
      } else if (r[a] > 0) {
        sum += (d / static_cast<double>(r[a])) * (d / static_cast<double>(r[a]));
      }
    }
    const double limit = radius_mm >= 0 ? radius_mm * radius_mm : 1.0;
    ball[n] = sum <= limit * (1 + 1e-9) ? 1 : 0;
  }
  return ball;
}

template <class FilterT> LabelMap run(typename FilterT::Pointer filter, const LabelMap& mask, const char* what) {
  auto image = itkbridge::to_itk(mask);
  filter->SetInput(image);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, what, ErrorCode::Internal);
  }
  LabelMap out = itkbridge::label_from_itk(filter->GetOutput());
  out.set_geometry(mask.geometry());
  return out;
}

LabelMap morph(const LabelMap& labels, const Size3& radius, uint8_t label, Op op, double radius_mm = -1) {
  const LabelMap mask = labels.binary(label);
  const Ball3 ball = make_ball(labels.geometry(), radius, radius_mm);
  switch (op) {
    case Op::Dilate: {
      using F = itk::BinaryDilateImageFilter<Image3, Image3, Ball3>;
      auto f = F::New();
      f->SetKernel(ball);
      f->SetForegroundValue(1);
      f->SetBackgroundValue(0);
      return run<F>(f, mask, "binary dilation");
    }
    case Op::Erode: {
      using F = itk::BinaryErodeImageFilter<Image3, Image3, Ball3>;
      auto f = F::New();
      f->SetKernel(ball);
      f->SetForegroundValue(1);
      f->SetBackgroundValue(0);
      return run<F>(f, mask, "binary erosion");
    }
    case Op::Open: {
      using F = itk::BinaryMorphologicalOpeningImageFilter<Image3, Image3, Ball3>;
      auto f = F::New();
      f->SetKernel(ball);
      f->SetForegroundValue(1);
      f->SetBackgroundValue(0);
      return run<F>(f, mask, "binary opening");
    }
    case Op::Close: {
      using F = itk::BinaryMorphologicalClosingImageFilter<Image3, Image3, Ball3>;
      auto f = F::New();
      f->SetKernel(ball);
      f->SetForegroundValue(1);
      f->SetSafeBorder(true);
      return run<F>(f, mask, "binary closing");
    }
  }
  throw Error(ErrorCode::Internal, "morphology: unknown operation");
}

// 2D hole filling of a size0 x size1 slice held in `buf` (0/1), in place.
void fill_slice(std::vector<uint8_t>& buf, int64_t size0, int64_t size1) {
  auto image = Image2::New();
  Image2::RegionType region;
  region.SetSize(0, static_cast<itk::SizeValueType>(size0));
  region.SetSize(1, static_cast<itk::SizeValueType>(size1));
  image->SetRegions(region);
  image->Allocate();
  std::copy(buf.begin(), buf.end(), image->GetBufferPointer());
  using F = itk::BinaryFillholeImageFilter<Image2>;
  auto f = F::New();
  f->SetInput(image);
  f->SetForegroundValue(1);
  f->SetFullyConnected(false);
  try {
    f->Update();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, "hole filling", ErrorCode::Internal);
  }
  std::copy_n(f->GetOutput()->GetBufferPointer(), buf.size(), buf.begin());
}

}  // namespace

Size3 radius_in_voxels(const Geometry& geometry, double radius_mm) {
  if (!(radius_mm >= 0) || !std::isfinite(radius_mm)) {
    throw Error(ErrorCode::BadArgument,
                "morphology: radius " + std::to_string(radius_mm) + " mm, expected a non-negative number");
  }
  Size3 r;
  for (int a = 0; a < 3; ++a) r[a] = static_cast<int64_t>(std::llround(radius_mm / geometry.spacing_mm[a]));
  if (geometry.is_2d()) r[2] = 0;
  return r;
}

Size3 uniform_radius(const Geometry& geometry, int64_t radius_voxels) {
  return {radius_voxels, radius_voxels, geometry.is_2d() ? 0 : radius_voxels};
}

LabelMap dilate(const LabelMap& labels, const Size3& r, uint8_t label) { return morph(labels, r, label, Op::Dilate); }
LabelMap erode(const LabelMap& labels, const Size3& r, uint8_t label) { return morph(labels, r, label, Op::Erode); }
LabelMap open(const LabelMap& labels, const Size3& r, uint8_t label) { return morph(labels, r, label, Op::Open); }
LabelMap close(const LabelMap& labels, const Size3& r, uint8_t label) { return morph(labels, r, label, Op::Close); }

namespace {
LabelMap morph_mm(const LabelMap& l, double mm, uint8_t label, Op op) {
  radius_in_voxels(l.geometry(), mm);  // validates mm
  Size3 r;
  for (int a = 0; a < 3; ++a) r[a] = static_cast<int64_t>(std::floor(mm / l.geometry().spacing_mm[a] + 1e-9));
  return morph(l, r, label, op, mm);
}
}  // namespace

LabelMap dilate_mm(const LabelMap& l, double mm, uint8_t label) { return morph_mm(l, mm, label, Op::Dilate); }
LabelMap erode_mm(const LabelMap& l, double mm, uint8_t label) { return morph_mm(l, mm, label, Op::Erode); }
LabelMap open_mm(const LabelMap& l, double mm, uint8_t label) { return morph_mm(l, mm, label, Op::Open); }
LabelMap close_mm(const LabelMap& l, double mm, uint8_t label) { return morph_mm(l, mm, label, Op::Close); }

LabelMap fill_holes(const LabelMap& labels, uint8_t label) {
  if (labels.geometry().is_2d()) return fill_holes_slicewise(labels, 2, label);
  const LabelMap mask = labels.binary(label);
  using F = itk::BinaryFillholeImageFilter<Image3>;
  auto f = F::New();
  f->SetForegroundValue(1);
  f->SetFullyConnected(false);
  return run<F>(f, mask, "hole filling");
}

LabelMap fill_holes_slicewise(const LabelMap& labels, int axis, uint8_t label) {
  if (axis < 0 || axis > 2) {
    throw Error(ErrorCode::BadArgument, "fill holes: slice axis " + std::to_string(axis) + ", expected 0, 1 or 2");
  }
  LabelMap out = labels.binary(label);
  const Size3& s = labels.geometry().size;
  // In-slice axes u (faster) and v.
  const int u = axis == 0 ? 1 : 0;
  const int v = axis == 2 ? 1 : 2;
  std::vector<uint8_t> buf(static_cast<std::size_t>(s[u] * s[v]));
  for (int64_t w = 0; w < s[axis]; ++w) {
    int64_t idx[3];
    idx[axis] = w;
    bool any = false;
    for (int64_t b = 0; b < s[v]; ++b) {
      idx[v] = b;
      for (int64_t a = 0; a < s[u]; ++a) {
        idx[u] = a;
        const uint8_t x = out.at(idx[0], idx[1], idx[2]);
        buf[a + s[u] * b] = x;
        any = any || x;
      }
    }
    if (!any) continue;
    fill_slice(buf, s[u], s[v]);
    for (int64_t b = 0; b < s[v]; ++b) {
      idx[v] = b;
      for (int64_t a = 0; a < s[u]; ++a) {
        idx[u] = a;
        out.at(idx[0], idx[1], idx[2]) = buf[a + s[u] * b];
      }
    }
  }
  return out;
}

}  // namespace tumorlab::imaging
