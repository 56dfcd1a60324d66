#pragma once
// DICOM input through GDCM (pixel decoding of every common transfer syntax) and DCMTK
// (DICOM SEG). A source is a folder (searched recursively), a single file, or a .zip.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::io {

struct DicomSeriesInfo {
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string modality;             // (0008,0060), e.g. "CT", "MR", "PT", "SEG"
  std::string series_description;   // (0008,103E); may be empty
  int series_number = 0;            // (0020,0011); 0 when absent
  std::string sop_class_uid;        // of the first instance
  std::string transfer_syntax_uid;  // of the first instance
  int instances = 0;                // files in the series
  int frames = 0;                   // total frames (slices) over all instances
  int channels = 1;                 // > 1 when slice positions repeat (e.g. several b-values)
  Geometry geometry;                // grid of the stacked volume, slices sorted along the normal
  PixelType pixel_type = PixelType::Int16;  // type read_dicom_series() returns
  // Problems found while grouping: missing slices, uneven spacing, mixed orientations.
  std::vector<std::string> warnings;
  bool readable = true;             // false when the series cannot become a volume (e.g. SEG)
  // True when a warning above makes the volume unreliable (missing slices, uneven spacing,
  // positions repeating unevenly): read_dicom_series() then needs allow_incomplete.
  bool incomplete = false;
  std::vector<std::string> channel_names;  // e.g. "b=50" when b-values are known, else empty
  // Opaque: which files/frames make up the series, in stacking order.
  struct Layout;
  std::shared_ptr<const Layout> layout;
};

// Scans a DICOM source and groups its instances by SeriesInstanceUID, sorted by series number.
// Errors: FileNotFound; EmptyInput (an empty folder); NotDicom (no DICOM file found; the
// message names a few of the files that were tried).
std::vector<DicomSeriesInfo> scan_dicom(const std::filesystem::path& source);

struct DicomReadOptions {
  // A gap in slice positions or uneven spacing is an error (IncompleteSeries) unless allowed.
  bool allow_incomplete = false;
};

// Reads one series into a volume: rescale slope/intercept applied (float32 when the slope or
// intercept is not integral, else int16/int32/uint16 as needed), multi-frame expanded, slices
// sorted by ImagePositionPatient along the slice normal. Sets Volume::modality.
Volume read_dicom_series(const DicomSeriesInfo& series, const DicomReadOptions& options = {});

// True when the file starts like DICOM (preamble + "DICM", or a parsable dataset).
bool is_dicom_file(const std::filesystem::path& path);

// Reads a DICOM SEG into a label map on the grid of `referenced` (the series it segments).
// Segment number n becomes label n. Errors: NotDicom, InvalidLabel (not a SEG, frames that
// do not fall on the referenced grid).
LabelMap read_dicom_seg(const std::filesystem::path& seg_file, const DicomSeriesInfo& referenced);
// The SeriesInstanceUID a SEG references (from ReferencedSeriesSequence).
std::string dicom_seg_referenced_series(const std::filesystem::path& seg_file);

// ---- DICOM SEG output ------------------------------------------------------------------------

// The identifiers of a source series that a DICOM SEG made on its grid references: the values as
// they are in its files (for a series imported into tumorlab, the de-identified ones). One slice
// entry per k of the stacked volume (channel 0).
struct DicomSourceSlice {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  int frame_number = 0;  // 1-based frame of a multi-frame instance; 0 for a single-frame instance
};
struct DicomSourceRef {
  std::string patient_id, patient_name;
  std::string study_instance_uid, study_id, study_date, study_time, accession_number;
  std::string series_instance_uid, frame_of_reference_uid, modality;
  std::vector<DicomSourceSlice> slices;
};
// Reads those identifiers from the files of a scanned series (they must still exist).
// Error(CorruptFile) naming a file without SOPInstanceUID or that cannot be parsed.
DicomSourceRef dicom_source_ref(const DicomSeriesInfo& series);

struct DicomSegSegment {
  int value = 1;      // label value in the map (1..255)
  std::string label;  // SegmentLabel, e.g. "tumor"
};
struct DicomSegOptions {
  std::string series_description = "tumorlab segmentation";
  std::string algorithm_name;    // SegmentAlgorithmName (the model, e.g. "lgg-flair-3d 3"); empty: manual
  std::string software_version;  // of tumorlab (Enhanced General Equipment)
};
// Writes `label` as a binary DICOM SEG (DCMTK dcmseg, explicit little endian) referencing
// `source`: same patient, study and frame of reference, one Derivation Image reference per frame,
// ReferencedSeriesSequence with every source instance. Segment n is segments[n-1] (its voxels are
// the label value `value`); frames only for the slices where a segment has voxels, and one empty
// frame for a segment without any, so that every segment is present. Plane positions and
// orientation come from the label's geometry (LPS). Error(InvalidLabel) when the label's slice
// count differs from source.slices or a segment value is outside 1..255; Error(IoFailure) when
// DCMTK refuses to write (its reason in the message).
void write_dicom_seg(const LabelMap& label, const DicomSourceRef& source, const std::vector<DicomSegSegment>& segments,
                     const DicomSegOptions& options, const std::filesystem::path& out);

}  // namespace tumorlab::io
