#pragma once
// What `tumorlab info` reports about an image, a DICOM folder/zip, or an nnU-Net dataset.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::app {

struct ImageSummary {
  std::string name;         // file name, DICOM "series <number>: <description>", or dataset case id
  std::string format;       // "NIfTI", "DICOM", ...
  std::string modality;     // "CT", "MR", "PT", ... or ""
  std::string series_instance_uid;  // DICOM only
  std::string pixel_type;
  int channels = 1;
  std::vector<std::string> channel_names;
  Geometry geometry;
  std::vector<std::pair<double, double>> intensity_range;  // per channel
  std::vector<std::string> warnings;
  std::string error;        // set when this entry could not be read (e.g. a SEG or a broken series)
  std::vector<std::string> files;  // nnU-Net: the files making up the case (channels, then label)
  bool has_label = false;          // nnU-Net: a label exists
  int64_t label_voxels = 0;        // nnU-Net: foreground voxels of the label
};

struct InspectReport {
  std::filesystem::path path;
  std::string kind;  // "image", "dicom", "nnunet-dataset", "image-folder"
  std::string dataset_name;
  std::vector<ImageSummary> images;
};

// Reads everything `path` holds and summarises it. Errors as io's readers raise them.
InspectReport inspect(const std::filesystem::path& path);

nlohmann::json to_json(const ImageSummary& s);
nlohmann::json to_json(const InspectReport& r);
std::string to_text(const InspectReport& r);

// Summary of an already loaded volume (used by inspect and by the server later).
ImageSummary summarize(const Volume& volume, const std::string& name, const std::string& format);

}  // namespace tumorlab::app
