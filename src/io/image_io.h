#pragma once
// Reading and writing images and label maps in the formats tumorlab supports.
// Files: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), PNG and TIFF (2D).
// A folder or .zip of DICOM files is read through dicom.h; read_image() accepts those too
// when they hold exactly one series.

#include <filesystem>
#include <string>

#include "tumorlab/core/volume.h"

namespace tumorlab::io {

enum class ImageFormat { Nifti, Nrrd, Meta, Png, Tiff, Dicom, Unknown };

std::string to_string(ImageFormat format);
// Format from the file name (".nii.gz" -> Nifti, a folder or ".zip" or ".dcm" -> Dicom).
ImageFormat format_from_path(const std::filesystem::path& path);
// File name without the image extension: "case_001.nii.gz" -> "case_001".
std::string strip_image_extension(const std::filesystem::path& path);

struct ReadOptions {
  // Float images with NaN or Inf voxels are refused (Error NonFiniteVoxels) unless allowed.
  // When allowed, NIfTI's own library has already replaced them by 0; other formats keep them.
  bool allow_non_finite = false;
};

// Reads any supported image. Errors (never crashes): FileNotFound, UnsupportedFormat,
// CorruptFile (truncated, undecodable), HeaderMismatch (header size vs data), TooLarge
// (refused before allocating), NonFiniteVoxels. Every message names the file.
Volume read_image(const std::filesystem::path& path, const ReadOptions& options = {});

// Reads a label map (integer labels 0..255). When `grid` is given, the label must lie on it
// exactly (Error GeometryMismatch naming both files' difference otherwise).
LabelMap read_label(const std::filesystem::path& path, const Geometry* grid = nullptr);

// Writes by extension. PNG and TIFF need a 2D volume (size[2] == 1); PNG needs uint8 or uint16
// (floats are refused: convert first). Parent folders must exist. Write is atomic: a temp file
// in the same folder is renamed into place.
void write_image(const Volume& volume, const std::filesystem::path& path);
void write_label(const LabelMap& label, const std::filesystem::path& path);

}  // namespace tumorlab::io
