#include "tumorlab/app/inspect.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"

namespace fs = std::filesystem;

namespace tumorlab::app {
namespace {

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json geometry_json(const Geometry& g) {
  return {{"size", g.size},
          {"spacing_mm", g.spacing_mm},
          {"origin_lps", g.origin_lps},
          {"direction", g.direction},
          {"orientation", orientation_code(g.direction)}};
}

std::vector<fs::path> image_files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto f = io::format_from_path(e.path());
    if (f != io::ImageFormat::Unknown && f != io::ImageFormat::Dicom) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string series_name(const io::DicomSeriesInfo& s) {
  std::string name = "series " + std::to_string(s.series_number);
  if (!s.series_description.empty()) name += ": " + s.series_description;
  return name;
}

InspectReport inspect_dicom(const fs::path& path) {
  InspectReport r{path, "dicom", "", {}};
  for (const auto& s : io::scan_dicom(path)) {
    ImageSummary sum;
    if (s.readable) {
      try {
        io::DicomReadOptions opts;
        opts.allow_incomplete = true;  // info reports gaps as warnings instead of failing
        sum = summarize(io::read_dicom_series(s, opts), series_name(s), "DICOM");
      } catch (const Error& e) {
        sum.name = series_name(s);
        sum.format = "DICOM";
        sum.error = e.what();
      }
    } else {
      sum.name = series_name(s);
      sum.format = "DICOM";
      sum.geometry = s.geometry;
      sum.error = "not an image series (" + s.modality + ")";
    }
    sum.modality = s.modality;
    sum.series_instance_uid = s.series_instance_uid;
    sum.warnings = s.warnings;
    sum.channels = s.channels;
    r.images.push_back(std::move(sum));
  }
  return r;
}

InspectReport inspect_dataset(const fs::path& path) {
  const auto d = io::read_nnunet_dataset(path);
  InspectReport r{path, "nnunet-dataset", d.name, {}};
  for (const auto& c : d.training) {
    std::vector<Volume> channels;
    for (const auto& f : c.channels) channels.push_back(io::read_image(f));
    Volume stacked = Volume::stack_channels(channels);
    stacked.channel_names = d.channel_names;
    ImageSummary s = summarize(stacked, c.id, io::to_string(io::format_from_path(c.channels.front())));
    for (const auto& f : c.channels) s.files.push_back(f.filename().string());
    if (!c.label.empty()) {
      const LabelMap label = io::read_label(c.label, &stacked.geometry());
      s.has_label = true;
      s.label_voxels = label.count_nonzero();
      s.files.push_back("labelsTr/" + c.label.filename().string());
    }
    r.images.push_back(std::move(s));
  }
  return r;
}

}  // namespace

ImageSummary summarize(const Volume& v, const std::string& name, const std::string& format) {
  ImageSummary s;
  s.name = name;
  s.format = format;
  s.modality = v.modality;
  s.pixel_type = to_string(v.pixel_type());
  s.channels = v.channels();
  s.channel_names = v.channel_names;
  s.geometry = v.geometry();
  for (int c = 0; c < v.channels(); ++c) s.intensity_range.push_back(v.intensity_range(c));
  return s;
}

InspectReport inspect(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(ErrorCode::FileNotFound, path.string() + ": no such file or folder");
  if (fs::is_directory(path)) {
    if (io::is_nnunet_dataset(path)) return inspect_dataset(path);
    // A folder may hold DICOM series, other image files, or both (e.g. a SEG beside its NRRD).
    const auto files = image_files_in(path);
    InspectReport r{path, "image-folder", "", {}};
    try {
      r = inspect_dicom(path);
    } catch (const Error& e) {
      const bool no_dicom = e.code() == ErrorCode::NotDicom || e.code() == ErrorCode::EmptyInput;
      if (!no_dicom || files.empty()) throw;
    }
    for (const auto& f : files) {
      r.images.push_back(summarize(io::read_image(f), f.filename().string(), io::to_string(io::format_from_path(f))));
    }
    return r;
  }
  const auto format = io::format_from_path(path);
  if (format == io::ImageFormat::Dicom) return inspect_dicom(path);
  InspectReport r{path, "image", "", {}};
  r.images.push_back(summarize(io::read_image(path), path.filename().string(), io::to_string(format)));
  return r;
}

nlohmann::json to_json(const ImageSummary& s) {
  nlohmann::json j{{"name", s.name},         {"format", s.format},     {"modality", s.modality},
                   {"pixel_type", s.pixel_type}, {"channels", s.channels}, {"geometry", geometry_json(s.geometry)}};
  if (!s.series_instance_uid.empty()) j["series_instance_uid"] = s.series_instance_uid;
  if (!s.channel_names.empty()) j["channel_names"] = s.channel_names;
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [lo, hi] : s.intensity_range) ranges.push_back({number_or_null(lo), number_or_null(hi)});
  j["intensity_range"] = ranges;
  j["warnings"] = s.warnings;
  if (!s.error.empty()) j["error"] = s.error;
  if (!s.files.empty()) {
    j["files"] = s.files;
    j["has_label"] = s.has_label;
    j["label_voxels"] = s.label_voxels;
  }
  return j;
}

nlohmann::json to_json(const InspectReport& r) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& s : r.images) images.push_back(to_json(s));
  nlohmann::json j{{"path", r.path.string()}, {"kind", r.kind}, {"images", images}};
  if (!r.dataset_name.empty()) j["dataset_name"] = r.dataset_name;
  return j;
}

std::string to_text(const InspectReport& r) {
  std::ostringstream o;
  o.precision(6);
  o << r.path.string() << ": " << r.kind;
  if (!r.dataset_name.empty()) o << " '" << r.dataset_name << "'";
  o << ", " << r.images.size() << (r.images.size() == 1 ? " image\n" : " images\n");
  for (const auto& s : r.images) {
    const auto& g = s.geometry;
    o << "\n" << s.name << "\n";
    o << "  format     " << s.format << (s.modality.empty() ? "" : "  modality " + s.modality) << "\n";
    if (!s.error.empty()) {
      o << "  error      " << s.error << "\n";
      continue;
    }
    o << "  size       " << g.size[0] << " x " << g.size[1] << " x " << g.size[2] << "  (" << s.pixel_type << ", "
      << s.channels << (s.channels == 1 ? " channel" : " channels");
    if (!s.channel_names.empty()) {
      o << ":";
      for (const auto& n : s.channel_names) o << " " << (n.empty() ? "?" : n);
    }
    o << ")\n";
    o << "  spacing    " << g.spacing_mm[0] << " x " << g.spacing_mm[1] << " x " << g.spacing_mm[2] << " mm\n";
    o << "  origin     (" << g.origin_lps[0] << ", " << g.origin_lps[1] << ", " << g.origin_lps[2] << ") mm LPS\n";
    o << "  direction  " << orientation_code(g.direction) << "  [";
    for (int e = 0; e < 9; ++e) o << (e ? (e % 3 ? ", " : "; ") : "") << g.direction[e];
    o << "]\n";
    for (std::size_t c = 0; c < s.intensity_range.size(); ++c) {
      o << "  range" << (s.intensity_range.size() > 1 ? "[" + std::to_string(c) + "]" : "   ") << "   "
        << s.intensity_range[c].first << " .. " << s.intensity_range[c].second << "\n";
    }
    if (!s.files.empty()) {
      o << "  label      " << (s.has_label ? std::to_string(s.label_voxels) + " foreground voxels" : "none") << "\n";
    }
    for (const auto& w : s.warnings) o << "  warning    " << w << "\n";
  }
  return o.str();
}

}  // namespace tumorlab::app
