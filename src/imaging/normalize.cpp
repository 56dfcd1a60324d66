#include "tumorlab/imaging/normalize.h"

#include <itkHistogram.h>
#include <itkOtsuThresholdCalculator.h>

#include <algorithm>
#include <cmath>

#include "tumorlab/core/log.h"
#include "tumorlab/imaging/statistics.h"
#include "tumorlab/itk/itk_bridge.h"

namespace tumorlab::imaging {
namespace {

constexpr double kMinStd = 1e-8;

// Channel c as floats (finite values only) where keep(i) holds.
template <class Keep> std::vector<float> gather(const Volume& image, int c, Keep&& keep) {
  std::vector<float> out;
  dispatch_pixel_type(image.pixel_type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = image.channel_data<T>(c);
    for (int64_t i = 0, n = image.voxel_count(); i < n; ++i) {
      const float v = static_cast<float>(p[i]);
      if (std::isfinite(v) && keep(i)) out.push_back(v);
    }
  });
  return out;
}

double otsu_threshold(const std::vector<float>& values) {
  using HistogramT = itk::Statistics::Histogram<double>;
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  if (*lo == *hi) return *lo;
  const unsigned bins = 128;
  auto histogram = HistogramT::New();
  HistogramT::SizeType size(1);
  size.Fill(bins);
  HistogramT::MeasurementVectorType lower(1), upper(1);
  lower[0] = *lo;
  upper[0] = *hi;
  histogram->SetMeasurementVectorSize(1);
  histogram->Initialize(size, lower, upper);
  HistogramT::MeasurementVectorType m(1);
  HistogramT::IndexType index(1);
  for (float v : values) {
    m[0] = v;
    if (histogram->GetIndex(m, index)) histogram->IncreaseFrequencyOfIndex(index, 1);
  }
  using CalculatorT = itk::OtsuThresholdCalculator<HistogramT, double>;
  auto calculator = CalculatorT::New();
  calculator->SetInput(histogram);
  try {
    calculator->Compute();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, "normalisation (Otsu threshold)", ErrorCode::Internal);
  }
  return calculator->GetThreshold();
}

}  // namespace

std::string to_string(NormalizationScheme scheme) {
  switch (scheme) {
    case NormalizationScheme::CT: return "CT";
    case NormalizationScheme::ZScore: return "ZScore";
    case NormalizationScheme::None: return "None";
  }
  return "unknown";
}

NormalizationScheme parse_normalization_scheme(const std::string& name) {
  if (name == "CT") return NormalizationScheme::CT;
  if (name == "ZScore" || name == "MR") return NormalizationScheme::ZScore;
  if (name == "None" || name == "PET" || name == "noNorm") return NormalizationScheme::None;
  throw Error(ErrorCode::BadArgument,
              "normalisation scheme '" + name + "', expected CT, ZScore (or MR) or None (or PET, noNorm)");
}

NormalizationScheme scheme_for_modality(const std::string& modality) {
  if (modality == "CT") return NormalizationScheme::CT;
  if (modality == "PT" || modality == "PET") return NormalizationScheme::None;
  return NormalizationScheme::ZScore;
}

NormalizationParams compute_channel_normalization(const Volume& image, int channel, const NormalizationOptions& options,
                                                  const LabelMap* mask) {
  if (channel < 0 || channel >= image.channels()) {
    throw Error(ErrorCode::BadArgument, "normalisation: channel " + std::to_string(channel) + " of a " +
                                            std::to_string(image.channels()) + "-channel image");
  }
  if (mask && !mask->geometry().same_grid(image.geometry())) {
    throw Error(ErrorCode::GeometryMismatch,
                "normalisation: the mask's grid differs from the image's: " + mask->geometry().difference(image.geometry()));
  }
  NormalizationParams p;
  p.scheme = options.scheme;
  if (options.scheme == NormalizationScheme::None) return p;

  const uint8_t* m = mask ? mask->data() : nullptr;
  std::vector<float> values;
  if (options.scheme == NormalizationScheme::CT) {
    values = m ? gather(image, channel, [m](int64_t i) { return m[i] != 0; })
               : gather(image, channel, [](int64_t) { return true; });
    if (values.empty()) {
      log_warn("normalisation: CT statistics set is empty; using all voxels");
      values = gather(image, channel, [](int64_t) { return true; });
    }
    if (values.empty()) throw Error(ErrorCode::NonFiniteVoxels, "normalisation: channel has no finite voxel");
    if (options.use_fixed_clip) {
      if (!(options.fixed_clip_low <= options.fixed_clip_high)) {
        throw Error(ErrorCode::BadArgument, "normalisation: fixed clip range [" + std::to_string(options.fixed_clip_low) +
                                                ", " + std::to_string(options.fixed_clip_high) + "] is empty");
      }
      p.clip_low = options.fixed_clip_low;
      p.clip_high = options.fixed_clip_high;
    } else {
      if (!(options.lower_percentile <= options.upper_percentile)) {
        throw Error(ErrorCode::BadArgument, "normalisation: lower percentile " + std::to_string(options.lower_percentile) +
                                                " above upper percentile " + std::to_string(options.upper_percentile));
      }
      std::vector<float> work = values;
      p.clip_low = percentile(work, options.lower_percentile);
      p.clip_high = percentile(work, options.upper_percentile);
    }
    // Statistics of the clipped values, clipped in double precision exactly as applying does.
    std::vector<double> clipped(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      clipped[i] = std::clamp(static_cast<double>(values[i]), p.clip_low, p.clip_high);
    }
    const MeanStd s = mean_std(clipped);
    p.mean = s.mean;
    p.std = s.std;
    return p;
  } else {  // ZScore
    if (m) {
      values = gather(image, channel, [m](int64_t i) { return m[i] != 0; });
    } else if (options.foreground == ForegroundRule::All) {
      values = gather(image, channel, [](int64_t) { return true; });
    } else {
      std::vector<float> all = gather(image, channel, [](int64_t) { return true; });
      const double threshold =
          options.foreground == ForegroundRule::Otsu && !all.empty() ? otsu_threshold(all) : options.foreground_threshold;
      for (float v : all) {
        if (v > threshold) values.push_back(v);
      }
    }
    if (values.empty()) {
      log_warn("normalisation: z-score foreground is empty; using all voxels");
      values = gather(image, channel, [](int64_t) { return true; });
    }
    if (values.empty()) throw Error(ErrorCode::NonFiniteVoxels, "normalisation: channel has no finite voxel");
  }
  const MeanStd s = mean_std(values);
  p.mean = s.mean;
  p.std = s.std;
  return p;
}

std::vector<NormalizationParams> compute_normalization(const Volume& image,
                                                       const std::vector<NormalizationOptions>& options,
                                                       const LabelMap* mask) {
  if (options.size() != 1 && options.size() != static_cast<std::size_t>(image.channels())) {
    throw Error(ErrorCode::BadArgument, "normalisation: " + std::to_string(options.size()) +
                                            " option sets for a " + std::to_string(image.channels()) +
                                            "-channel image, expected 1 or one per channel");
  }
  std::vector<NormalizationParams> out;
  for (int c = 0; c < image.channels(); ++c) {
    out.push_back(compute_channel_normalization(image, c, options.size() == 1 ? options[0] : options[c], mask));
  }
  return out;
}

Volume apply_normalization(const Volume& image, const std::vector<NormalizationParams>& params) {
  if (params.size() != 1 && params.size() != static_cast<std::size_t>(image.channels())) {
    throw Error(ErrorCode::BadArgument, "normalisation: " + std::to_string(params.size()) +
                                            " parameter sets for a " + std::to_string(image.channels()) +
                                            "-channel image, expected 1 or one per channel");
  }
  Volume out(image.geometry(), PixelType::Float32, image.channels());
  out.modality = image.modality;
  out.channel_names = image.channel_names;
  const int64_t n = image.voxel_count();
  for (int c = 0; c < image.channels(); ++c) {
    const NormalizationParams& p = params.size() == 1 ? params[0] : params[c];
    float* dst = out.channel_data<float>(c);
    dispatch_pixel_type(image.pixel_type(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = image.channel_data<T>(c);
      const double inv = 1.0 / std::max(p.std, kMinStd);
      switch (p.scheme) {
        case NormalizationScheme::None:
          for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
          break;
        case NormalizationScheme::ZScore:
          for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>((static_cast<double>(src[i]) - p.mean) * inv);
          break;
        case NormalizationScheme::CT:
          for (int64_t i = 0; i < n; ++i) {
            double v = static_cast<double>(src[i]);
            if (std::isfinite(v)) v = std::clamp(v, p.clip_low, p.clip_high);
            dst[i] = static_cast<float>((v - p.mean) * inv);
          }
          break;
      }
    });
  }
  return out;
}

Volume normalize(const Volume& image, const std::vector<NormalizationOptions>& options, const LabelMap* mask) {
  return apply_normalization(image, compute_normalization(image, options, mask));
}

}  // namespace tumorlab::imaging
