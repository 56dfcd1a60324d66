#pragma once
// `tumorlab convert`: any supported input to NIfTI, NRRD, MetaImage, PNG or TIFF.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::app {

struct ConvertOptions {
  std::optional<PixelType> pixel_type;  // cast (rounded, clamped) before writing
  std::string series;                   // DICOM: series number or SeriesInstanceUID to pick
  bool allow_incomplete = false;        // DICOM: accept a series with gaps / uneven spacing
};

// Converts `input` to `output` and returns the files written.
// - A DICOM folder or .zip with one image series, or with --series, goes to the file `output`.
// - With several series and `output` an existing folder (or ending in '/'), each series is
//   written as "<output>/<number>_<description>.nii.gz".
// - A DICOM SEG file is read onto the series it references (searched in the SEG's folder)
//   and written as a label map.
std::vector<std::filesystem::path> convert(const std::filesystem::path& input, const std::filesystem::path& output,
                                           const ConvertOptions& options = {});

}  // namespace tumorlab::app
