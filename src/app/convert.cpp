#include "tumorlab/app/convert.h"

#include <cctype>

#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"

namespace fs = std::filesystem;

namespace tumorlab::app {
namespace {

std::string safe_name(const io::DicomSeriesInfo& s) {
  std::string name = std::to_string(s.series_number);
  if (!s.series_description.empty()) {
    name += "_";
    for (char c : s.series_description) {
      name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
    }
  }
  return name;
}

bool is_folder_target(const fs::path& output) {
  const std::string s = output.string();
  return fs::is_directory(output) || (!s.empty() && s.back() == '/');
}

Volume prepare(Volume v, const ConvertOptions& o) {
  if (o.pixel_type && *o.pixel_type != v.pixel_type()) v = v.as_type(*o.pixel_type);
  return v;
}

std::string series_list(const std::vector<io::DicomSeriesInfo>& series) {
  std::string out;
  for (const auto& s : series) {
    if (!s.readable) continue;
    out += "\n  series " + std::to_string(s.series_number) + " (" + s.modality + ", " + s.geometry.describe() +
           ")" + (s.series_description.empty() ? "" : ": " + s.series_description);
  }
  return out;
}

}  // namespace

std::vector<fs::path> convert(const fs::path& input, const fs::path& output, const ConvertOptions& options) {
  std::error_code ec;
  if (!fs::exists(input, ec)) throw Error(ErrorCode::FileNotFound, input.string() + ": no such file or folder");
  if (io::format_from_path(input) != io::ImageFormat::Dicom) {
    if (is_folder_target(output)) {
      throw Error(ErrorCode::BadArgument, output.string() + ": give an output file name with its format's extension");
    }
    io::write_image(prepare(io::read_image(input), options), output);
    return {output};
  }

  auto series = io::scan_dicom(input);
  // A single SEG file: a label map on the grid of the series it references.
  if (fs::is_regular_file(input) && series.size() == 1 && series[0].modality == "SEG") {
    const std::string ref_uid = io::dicom_seg_referenced_series(input);
    const fs::path folder = input.has_parent_path() ? input.parent_path() : fs::path(".");
    for (const auto& s : io::scan_dicom(folder)) {
      if (s.series_instance_uid == ref_uid && s.readable) {
        io::write_label(io::read_dicom_seg(input, s), output);
        return {output};
      }
    }
    throw Error(ErrorCode::InvalidLabel, input.filename().string() +
                                             ": the series this SEG references is not in its folder");
  }

  std::vector<const io::DicomSeriesInfo*> chosen;
  for (const auto& s : series) {
    if (!s.readable) continue;
    if (options.series.empty() || options.series == s.series_instance_uid ||
        options.series == std::to_string(s.series_number)) {
      chosen.push_back(&s);
    }
  }
  if (chosen.empty()) {
    throw Error(ErrorCode::BadArgument, input.string() + ": no image series" +
                                            (options.series.empty() ? "" : " matches --series " + options.series) +
                                            "; series found:" + series_list(series));
  }
  io::DicomReadOptions read_options;
  read_options.allow_incomplete = options.allow_incomplete;
  std::vector<fs::path> written;
  if (is_folder_target(output)) {
    fs::create_directories(output, ec);
    for (const auto* s : chosen) {
      fs::path target = output / (safe_name(*s) + ".nii.gz");
      io::write_image(prepare(io::read_dicom_series(*s, read_options), options), target);
      written.push_back(target);
    }
    return written;
  }
  if (chosen.size() > 1) {
    throw Error(ErrorCode::BadArgument, input.string() + ": holds " + std::to_string(chosen.size()) +
                                            " image series; pick one with --series or give an output folder:" +
                                            series_list(series));
  }
  io::write_image(prepare(io::read_dicom_series(*chosen[0], read_options), options), output);
  return {output};
}

}  // namespace tumorlab::app
