// DICOM SEG input through DCMTK's dcmseg.
//
// Each frame is placed on the referenced series' grid by projecting its ImagePositionPatient
// (Plane Position functional group) with Geometry::physical_to_index: the in-plane index must
// be 0 and k an integer inside the grid (within 0.01 voxel), and the frame's orientation and
// size must match the grid; anything else is Error(InvalidLabel). BINARY frames (bit-packed on
// disk) are unpacked with DcmSegUtils; FRACTIONAL frames are on where value >= max/2.
// Where segments overlap, the higher segment number wins.

#include <dcmtk/config/osconfig.h>  // must come first
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmfg/fginterface.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segutils.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>

#include "tumorlab/io/dicom.h"

namespace fs = std::filesystem;

namespace tumorlab::io {

namespace detail {
// Defined in dicom.cpp: parses the whole file with DCMTK, checking every declared length against
// the bytes that can follow it (a deflated dataset is inflated, bounded, first).
// Error(CorruptFile) naming `display`, or Error(TooLarge).
std::unique_ptr<DcmFileFormat> load_checked_dicom(const fs::path& path, const std::string& display);
}  // namespace detail

namespace {

void quiet_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
}

// Loads the file's dataset; FileNotFound / NotDicom / CorruptFile.
std::unique_ptr<DcmFileFormat> load(const fs::path& path) {
  quiet_dcmtk();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(ErrorCode::FileNotFound, path.string() + ": no such file");
  const std::string name = path.filename().string();
  if (!fs::is_regular_file(path, ec) || !is_dicom_file(path)) {
    throw Error(ErrorCode::NotDicom, name + ": not a DICOM file");
  }
  // Not DcmFileFormat::loadFile(): for a deflated dataset DCMTK allocates every declared length
  // before it finds out that the stream is shorter.
  return detail::load_checked_dicom(path, name);
}

std::string referenced_series(DcmDataset& ds, const std::string& name) {
  DcmItem* item = nullptr;
  OFString uid;
  if (ds.findAndGetSequenceItem(DCM_ReferencedSeriesSequence, item, 0).good() && item &&
      item->findAndGetOFString(DCM_SeriesInstanceUID, uid).good() && !uid.empty()) {
    return uid.c_str();
  }
  throw Error(ErrorCode::InvalidLabel, name + ": no ReferencedSeriesSequence with a SeriesInstanceUID");
}

}  // namespace

std::string dicom_seg_referenced_series(const fs::path& seg_file) {
  auto ff = load(seg_file);
  return referenced_series(*ff->getDataset(), seg_file.filename().string());
}

LabelMap read_dicom_seg(const fs::path& seg_file, const DicomSeriesInfo& referenced) {
  auto ff = load(seg_file);
  const std::string name = seg_file.filename().string();
  DcmDataset& ds = *ff->getDataset();
  OFString sop_class;
  ds.findAndGetOFString(DCM_SOPClassUID, sop_class);
  if (sop_class != UID_SegmentationStorage) {
    throw Error(ErrorCode::InvalidLabel, name + ": not a DICOM SEG (SOP class " + std::string(sop_class.c_str()) + ")");
  }
  const std::string ref_uid = referenced_series(ds, name);
  if (!referenced.series_instance_uid.empty() && ref_uid != referenced.series_instance_uid) {
    throw Error(ErrorCode::InvalidLabel, name + ": references another series than the one given (series " +
                                             std::to_string(referenced.series_number) + ")");
  }
  Uint16 rows = 0, cols = 0;
  ds.findAndGetUint16(DCM_Rows, rows);
  ds.findAndGetUint16(DCM_Columns, cols);
  Uint16 max_fractional = 255;
  ds.findAndGetUint16(DCM_MaximumFractionalValue, max_fractional);
  if (max_fractional == 0) max_fractional = 255;

  DcmSegmentation* raw = nullptr;
  const OFCondition cond = DcmSegmentation::loadDataset(ds, raw);
  std::unique_ptr<DcmSegmentation> seg(raw);
  if (cond.bad() || !seg) {
    throw Error(ErrorCode::InvalidLabel, name + ": cannot read the segmentation (" + cond.text() + ")");
  }
  const Geometry& grid = referenced.geometry;
  LabelMap label(grid);

  if (rows != grid.size[1] || cols != grid.size[0]) {
    throw Error(ErrorCode::InvalidLabel, name + ": frames are " + std::to_string(cols) + "x" + std::to_string(rows) +
                                             ", the referenced grid is " + grid.describe());
  }
  const auto type = seg->getSegmentationType();
  if (type != DcmSegTypes::ST_BINARY && type != DcmSegTypes::ST_FRACTIONAL) {
    throw Error(ErrorCode::InvalidLabel, name + ": unknown SegmentationType");
  }
  const size_t plane = static_cast<size_t>(rows) * cols;
  FGInterface& fg = seg->getFunctionalGroups();
  const size_t frames = seg->getNumberOfFrames();
  for (size_t f = 0; f < frames; ++f) {
    const std::string where = name + ": frame " + std::to_string(f + 1);
    auto* seg_fg = dynamic_cast<FGSegmentation*>(fg.get(static_cast<Uint32>(f), DcmFGTypes::EFG_SEGMENTATION));
    Uint16 segment = 0;
    if (!seg_fg || seg_fg->getReferencedSegmentNumber(segment).bad() || segment == 0) {
      throw Error(ErrorCode::InvalidLabel, where + " has no referenced segment number");
    }
    if (segment > 255) {
      throw Error(ErrorCode::InvalidLabel, where + ": segment number " + std::to_string(segment) +
                                               " does not fit a uint8 label map (max 255)");
    }
    auto* pos = dynamic_cast<FGPlanePosPatient*>(fg.get(static_cast<Uint32>(f), DcmFGTypes::EFG_PLANEPOSPATIENT));
    Float64 x = 0, y = 0, z = 0;
    if (!pos || pos->getImagePositionPatient(x, y, z).bad()) {
      throw Error(ErrorCode::InvalidLabel, where + " has no plane position");
    }
    if (auto* ori = dynamic_cast<FGPlaneOrientationPatient*>(
            fg.get(static_cast<Uint32>(f), DcmFGTypes::EFG_PLANEORIENTPATIENT))) {
      Float64 r[3], c[3];
      if (ori->getImageOrientationPatient(r[0], r[1], r[2], c[0], c[1], c[2]).good()) {
        for (int a = 0; a < 3; ++a) {
          if (std::fabs(r[a] - grid.direction[a * 3 + 0]) > 1e-3 || std::fabs(c[a] - grid.direction[a * 3 + 1]) > 1e-3) {
            throw Error(ErrorCode::InvalidLabel, where + ": orientation differs from the referenced series");
          }
        }
      }
    }
    const IndexIJK idx = grid.physical_to_index({x, y, z});
    const double k_round = std::round(idx.k);
    if (std::fabs(idx.i) > 0.01 || std::fabs(idx.j) > 0.01 || std::fabs(idx.k - k_round) > 0.01 || k_round < 0 ||
        k_round >= static_cast<double>(grid.size[2])) {
      throw Error(ErrorCode::InvalidLabel, where + " lies off the referenced grid (index " + std::to_string(idx.i) +
                                               ", " + std::to_string(idx.j) + ", " + std::to_string(idx.k) + ")");
    }
    const int64_t k = static_cast<int64_t>(k_round);
    const DcmIODTypes::Frame* frame = seg->getFrame(f);
    if (!frame || !frame->pixData) throw Error(ErrorCode::InvalidLabel, where + " has no pixel data");
    std::unique_ptr<DcmIODTypes::Frame> unpacked;
    const Uint8* pixels = frame->pixData;
    if (type == DcmSegTypes::ST_BINARY && frame->length < plane) {
      if (frame->length < (plane + 7) / 8) throw Error(ErrorCode::InvalidLabel, where + " is truncated");
      unpacked.reset(DcmSegUtils::unpackBinaryFrame(frame, rows, cols));
      if (!unpacked || !unpacked->pixData || unpacked->length < plane) {
        throw Error(ErrorCode::InvalidLabel, where + ": cannot unpack the binary frame");
      }
      pixels = unpacked->pixData;
    } else if (frame->length < plane) {
      throw Error(ErrorCode::InvalidLabel, where + " is truncated");
    }
    uint8_t* out = label.data() + k * static_cast<int64_t>(plane);
    for (size_t p = 0; p < plane; ++p) {
      const bool on = type == DcmSegTypes::ST_BINARY ? pixels[p] != 0 : 2.0 * pixels[p] >= max_fractional;
      if (on && out[p] < segment) out[p] = static_cast<uint8_t>(segment);
    }
  }
  return label;
}

}  // namespace tumorlab::io
