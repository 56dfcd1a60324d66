// DICOM SEG output through DCMTK's dcmseg (io/dicom.h write_dicom_seg): a binary segmentation
// on the grid of its source series, referencing that series' instances.
//
// Layout of the object (what 3D Slicer's QuantitativeReporting, OHIF and highdicom expect):
// - Patient, study and frame of reference of the source; a new series and instance (UIDs from
//   DCMTK's generator), Enhanced General Equipment "tumorlab".
// - Shared functional groups: pixel measures and plane orientation from the label's geometry.
// - Per frame: plane position (LPS position of the slice's first voxel), segment identification,
//   frame content with dimension index values (segment number, slice position), and a derivation
//   image reference to the source instance (and frame) of that slice.
// - Dimension organisation: ReferencedSegmentNumber, then ImagePositionPatient.
// - ReferencedSeriesSequence (Common Instance Reference) lists every source instance.

#include <dcmtk/config/osconfig.h>  // must come first
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/iodmacro.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"

namespace fs = std::filesystem;

namespace tumorlab::io {
namespace {

void quiet_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// A DICOM LO value: no backslash or control characters, at most 64 characters.
std::string lo_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    out.push_back(c);
  }
  return out.substr(0, 64);
}

void check(const OFCondition& c, const std::string& what) {
  if (c.bad()) throw Error(ErrorCode::IoFailure, "DICOM SEG: " + what + ": " + std::string(c.text()));
}

bool is_tumour_name(std::string n) {
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* w : {"tumo", "lesion", "neoplas", "cancer", "metast", "glioma", "abnormal"})
    if (n.find(w) != std::string::npos) return true;
  return false;
}

std::string new_uid(const char* root) {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, root);
  return buf;
}

}  // namespace

void write_dicom_seg(const LabelMap& label, const DicomSourceRef& source, const std::vector<DicomSegSegment>& segments,
                     const DicomSegOptions& options, const fs::path& out) {
  quiet_dcmtk();
  const Geometry& g = label.geometry();
  if (g.size[2] != static_cast<int64_t>(source.slices.size()))
    throw Error(ErrorCode::InvalidLabel, "DICOM SEG: the label has " + std::to_string(g.size[2]) +
                                             " slices, its source series " + std::to_string(source.slices.size()));
  if (g.size[0] > 65535 || g.size[1] > 65535)
    throw Error(ErrorCode::InvalidLabel, "DICOM SEG: slices of " + g.describe() + " exceed 65535 rows or columns");
  if (segments.empty()) throw Error(ErrorCode::InvalidLabel, "DICOM SEG: no segment to write");
  for (const auto& s : segments)
    if (s.value < 1 || s.value > 255)
      throw Error(ErrorCode::InvalidLabel,
                  "DICOM SEG: segment '" + s.label + "' has label value " + std::to_string(s.value) + ", not 1..255");
  if (source.study_instance_uid.empty() || source.series_instance_uid.empty())
    throw Error(ErrorCode::InvalidLabel, "DICOM SEG: the source has no study or series instance UID");

  const Uint16 rows = static_cast<Uint16>(g.size[1]), cols = static_cast<Uint16>(g.size[0]);
  IODGeneralEquipmentModule::EquipmentInfo eq("tumorlab", "tumorlab", "tumorlab",
                                              options.software_version.empty() ? "0" : options.software_version);
  ContentIdentificationMacro ci("1", "SEGMENTATION", lo_value(options.series_description), "");
  DcmSegmentation* raw = nullptr;
  check(DcmSegmentation::createBinarySegmentation(raw, rows, cols, eq, ci), "cannot create the segmentation");
  std::unique_ptr<DcmSegmentation> seg(raw);

  // Patient, study, frame of reference of the source; our own series.
  check(seg->getPatient().setPatientID(source.patient_id, OFFalse), "PatientID");
  check(seg->getPatient().setPatientName(source.patient_name, OFFalse), "PatientName");
  check(seg->getStudy().setStudyInstanceUID(source.study_instance_uid, OFFalse), "StudyInstanceUID");
  check(seg->getStudy().setStudyID(source.study_id, OFFalse), "StudyID");
  check(seg->getStudy().setStudyDate(source.study_date, OFFalse), "StudyDate");
  check(seg->getStudy().setStudyTime(source.study_time, OFFalse), "StudyTime");
  check(seg->getStudy().setAccessionNumber(source.accession_number, OFFalse), "AccessionNumber");
  const std::string for_uid =
      source.frame_of_reference_uid.empty() ? new_uid(SITE_UID_ROOT) : source.frame_of_reference_uid;
  check(seg->getFrameOfReference().setFrameOfReferenceUID(for_uid, OFFalse), "FrameOfReferenceUID");
  check(seg->getSeries().setSeriesDescription(lo_value(options.series_description), OFFalse), "SeriesDescription");
  check(seg->getSeries().setSeriesNumber("900"), "SeriesNumber");

  // Shared: pixel measures and plane orientation (columns 0 and 1 of the direction matrix).
  FGPixelMeasures meas;
  check(meas.setPixelSpacing((num(g.spacing_mm[1]) + "\\" + num(g.spacing_mm[0])).c_str()), "PixelSpacing");
  check(meas.setSliceThickness(num(g.spacing_mm[2]).c_str()), "SliceThickness");
  check(meas.setSpacingBetweenSlices(num(g.spacing_mm[2]).c_str()), "SpacingBetweenSlices");
  check(seg->addForAllFrames(meas), "pixel measures");
  FGPlaneOrientationPatient orient;
  const Matrix3& d = g.direction;
  check(orient.setImageOrientationPatient(num(d[0]).c_str(), num(d[3]).c_str(), num(d[6]).c_str(), num(d[1]).c_str(),
                                          num(d[4]).c_str(), num(d[7]).c_str()),
        "ImageOrientationPatient");
  check(seg->addForAllFrames(orient), "plane orientation");

  // Segments.
  for (const auto& s : segments) {
    const bool tumour = is_tumour_name(s.label);
    CodeSequenceMacro category = tumour ? CodeSequenceMacro("49755003", "SCT", "Morphologically Altered Structure")
                                        : CodeSequenceMacro("85756007", "SCT", "Tissue");
    CodeSequenceMacro type =
        tumour ? CodeSequenceMacro("108369006", "SCT", "Neoplasm") : CodeSequenceMacro("85756007", "SCT", "Tissue");
    DcmSegment* segment = nullptr;
    const std::string name = lo_value(s.label.empty() ? "label " + std::to_string(s.value) : s.label);
    const bool automatic = !options.algorithm_name.empty();
    check(DcmSegment::create(segment, name, category, type,
                             automatic ? DcmSegTypes::SAT_AUTOMATIC : DcmSegTypes::SAT_MANUAL,
                             automatic ? lo_value(options.algorithm_name) : ""),
          "segment '" + name + "'");
    Uint16 number = 0;
    const OFCondition added = seg->addSegment(segment, number);
    if (added.bad()) delete segment;
    check(added, "segment '" + name + "'");
  }

  // Frames.
  const CodeSequenceMacro derivation("113076", "DCM", "Segmentation");
  const CodeSequenceMacro purpose("121322", "DCM", "Source image for image processing operation");
  const std::size_t plane = static_cast<std::size_t>(rows) * cols;
  std::vector<Uint8> pixels(plane);
  auto add_frame = [&](Uint16 segment_number, int64_t k) {
    const Uint8* src = label.data() + static_cast<std::size_t>(k) * plane;
    const Uint8 value = static_cast<Uint8>(segments[segment_number - 1].value);
    for (std::size_t p = 0; p < plane; ++p) pixels[p] = src[p] == value ? 1 : 0;
    const PointLPS pos = g.index_to_physical({0, 0, static_cast<double>(k)});
    FGPlanePosPatient position;
    check(position.setImagePositionPatient(num(pos.x).c_str(), num(pos.y).c_str(), num(pos.z).c_str()),
          "ImagePositionPatient");
    FGFrameContent content;
    check(content.setDimensionIndexValues(segment_number, 0), "DimensionIndexValues");
    check(content.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1), "DimensionIndexValues");
    const DicomSourceSlice& src_slice = source.slices[static_cast<std::size_t>(k)];
    ImageSOPInstanceReferenceMacro ref;
    check(ref.setReferencedSOPClassUID(src_slice.sop_class_uid, OFFalse), "ReferencedSOPClassUID");
    check(ref.setReferencedSOPInstanceUID(src_slice.sop_instance_uid, OFFalse), "ReferencedSOPInstanceUID");
    if (src_slice.frame_number > 0) {
      OFVector<Uint16> frames;
      frames.push_back(static_cast<Uint16>(src_slice.frame_number));
      check(ref.setReferencedFrameNumber(frames, OFFalse), "ReferencedFrameNumber");
    }
    OFVector<ImageSOPInstanceReferenceMacro> refs;
    refs.push_back(ref);
    std::unique_ptr<FGDerivationImage> derived(FGDerivationImage::createMinimal(refs, "", derivation, purpose));
    if (!derived) throw Error(ErrorCode::IoFailure, "DICOM SEG: cannot build the derivation image reference");
    OFVector<FGBase*> per_frame;
    per_frame.push_back(&position);
    per_frame.push_back(&content);
    per_frame.push_back(derived.get());
    check(seg->addFrame(pixels.data(), segment_number, per_frame),
          "frame of segment " + std::to_string(segment_number) + ", slice " + std::to_string(k));
  };
  for (std::size_t n = 0; n < segments.size(); ++n) {
    const Uint16 number = static_cast<Uint16>(n + 1);
    const Uint8 value = static_cast<Uint8>(segments[n].value);
    bool any = false;
    for (int64_t k = 0; k < g.size[2]; ++k) {
      const Uint8* src = label.data() + static_cast<std::size_t>(k) * plane;
      bool has = false;
      for (std::size_t p = 0; p < plane && !has; ++p) has = src[p] == value;
      if (!has) continue;
      add_frame(number, k);
      any = true;
    }
    if (!any) add_frame(number, 0);  // every segment is present, with one empty frame
  }

  // Dimension organisation: segment, then slice position.
  const std::string dim_uid = new_uid(SITE_UID_ROOT);
  IODMultiframeDimensionModule& dims = seg->getDimensions();
  check(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid, DCM_SegmentIdentificationSequence,
                               "ReferencedSegmentNumber"),
        "dimension index");
  check(dims.addDimensionIndex(DCM_ImagePositionPatient, dim_uid, DCM_PlanePositionSequence, "ImagePositionPatient"),
        "dimension index");

  // ReferencedSeriesSequence: every source instance once.
  IODReferences references;
  std::set<std::string> seen;
  for (const auto& s : source.slices) {
    if (!seen.insert(s.sop_instance_uid).second) continue;
    auto* r = new IODImageReference(source.patient_id, source.study_instance_uid, source.series_instance_uid,
                                    s.sop_instance_uid, s.sop_class_uid);
    if (!references.add(r)) delete r;  // ownership passes only when added
  }
  seg->getCommonInstanceReference().addReferences(references, source.study_instance_uid);

  check(seg->saveFile(out.string().c_str(), EXS_LittleEndianExplicit), "cannot write " + out.filename().string());
}

}  // namespace tumorlab::io
