#include "tumorlab/model/preprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tumorlab/core/error.h"
#include "tumorlab/core/modality.h"
#include "tumorlab/imaging/normalize.h"
#include "tumorlab/imaging/resample.h"

namespace tumorlab::model {
namespace {

// Spacings within this relative tolerance of the target are kept as they are (no resampling for
// rounding noise in a header).
constexpr double kSpacingTolerance = 1e-6;

bool same_spacing(double a, double b) {
  return std::abs(a - b) <= kSpacingTolerance * std::max(a, b);
}

imaging::ForegroundRule foreground_rule(const std::string& name) {
  if (name == "all") return imaging::ForegroundRule::All;
  if (name == "otsu") return imaging::ForegroundRule::Otsu;
  if (name == "above_zero") return imaging::ForegroundRule::AboveThreshold;
  throw Error(ErrorCode::InvalidDataset,
              "plans.json channels[].normalization.foreground: expected \"above_zero\", "
              "\"all\" or \"otsu\", found \"" +
                  name + "\"");
}

// The constant M of the inversion x -> M - x (see inversion_constant in preprocess.h's notes):
// the type's maximum for uint8 (255) and uint16 (65535), the channel's finite maximum otherwise.
double inversion_constant(const Volume& image, int channel) {
  switch (image.pixel_type()) {
    case PixelType::UInt8:
      return 255.0;
    case PixelType::UInt16:
      return 65535.0;
    default: {
      const auto [lo, hi] = image.intensity_range(channel);
      (void)lo;
      return std::isfinite(hi) ? hi : 0.0;
    }
  }
}

// float32 copy of `image` with the channels whose plan says `invert` mapped to M - x.
Volume to_float_inverted(const Volume& image, const Plans& plans) {
  Volume out = image.pixel_type() == PixelType::Float32 ? image : image.as_type(PixelType::Float32);
  const int64_t n = out.voxel_count();
  for (int c = 0; c < out.channels(); ++c) {
    if (!plans.channels[static_cast<std::size_t>(c)].invert) continue;
    const float m = static_cast<float>(inversion_constant(image, c));
    float* v = out.channel_data<float>(c);
    for (int64_t i = 0; i < n; ++i) v[i] = m - v[i];
  }
  return out;
}

}  // namespace

void check_input(const Volume& image, const Plans& plans, const std::string& source) {
  if (image.empty() || image.channels() < 1) {
    throw Error(ErrorCode::BadArgument, source + ": empty image");
  }
  const int expected = static_cast<int>(plans.channels.size());
  if (image.channels() != expected) {
    std::string names;
    for (const auto& c : plans.channels) names += (names.empty() ? "" : ", ") + c.name;
    throw Error(ErrorCode::BadArgument, source + ": model '" + plans.name + "' expects " + std::to_string(expected) +
                                            " channel(s) (" + names + "), found " + std::to_string(image.channels()));
  }
  if (plans.network.dims == 3 && image.geometry().is_2d()) {
    throw Error(ErrorCode::BadArgument, source + ": model '" + plans.name +
                                            "' is 3D and expects a volume, found a 2D image (" +
                                            image.geometry().describe() + ")");
  }
  if (!image.modality.empty() && !plans.modality.empty() &&
      canonical_modality(image.modality) != canonical_modality(plans.modality)) {
    throw Error(ErrorCode::BadArgument, source + ": model '" + plans.name + "' expects modality " + plans.modality +
                                            ", found " + image.modality);
  }
}

Geometry target_geometry(const Geometry& input, const Plans& plans) {
  Vec3 spacing = plans.target_spacing_mm;
  // 2D models work slice by slice: z keeps the input's spacing (and so its size and positions).
  if (plans.network.dims == 2) spacing[2] = input.spacing_mm[2];
  bool same = true;
  for (int a = 0; a < 3; ++a) {
    if (same_spacing(spacing[static_cast<std::size_t>(a)], input.spacing_mm[static_cast<std::size_t>(a)])) {
      spacing[static_cast<std::size_t>(a)] = input.spacing_mm[static_cast<std::size_t>(a)];
    } else {
      same = false;
    }
  }
  if (same) return input;
  Geometry g = imaging::geometry_with_spacing(input, spacing);
  if (plans.network.dims == 2) g.size[2] = input.size[2];  // unchanged by construction; made explicit
  return g;
}

Volume preprocess_image(const Volume& image, const Plans& plans) {
  check_input(image, plans, "input image");
  // 1. Inversion, on the input's own values (before interpolation, so M is the type's maximum).
  Volume work = to_float_inverted(image, plans);
  // 2. Resampling (linear, float32; voxels outside the input get 0).
  const Geometry target = target_geometry(image.geometry(), plans);
  if (!target.same_grid(work.geometry(), 0.0)) {
    imaging::ResampleOptions ro;
    ro.interpolation = imaging::Interpolation::Linear;
    ro.output_type = PixelType::Float32;
    work = imaging::resample(work, target, ro);
  }
  // 3. Normalisation per channel: CT with the plans' numbers, ZScore per case, None unchanged.
  std::vector<imaging::NormalizationParams> params;
  for (int c = 0; c < work.channels(); ++c) {
    const ChannelPlan& cp = plans.channels[static_cast<std::size_t>(c)];
    switch (cp.normalization.scheme) {
      case imaging::NormalizationScheme::CT:
      case imaging::NormalizationScheme::None:
        params.push_back(cp.normalization);
        break;
      case imaging::NormalizationScheme::ZScore: {
        imaging::NormalizationOptions o;
        o.scheme = imaging::NormalizationScheme::ZScore;
        o.foreground = foreground_rule(cp.foreground);
        o.foreground_threshold = 0;
        params.push_back(imaging::compute_channel_normalization(work, c, o));
        break;
      }
    }
  }
  Volume out = imaging::apply_normalization(work, params);
  out.modality = image.modality;
  out.channel_names.clear();
  for (const auto& c : plans.channels) out.channel_names.push_back(c.name);
  return out;
}

LabelMap preprocess_label(const LabelMap& label, const Geometry& target) {
  if (label.geometry().same_grid(target, 0.0)) return label;
  return imaging::resample(label, target);
}

}  // namespace tumorlab::model
