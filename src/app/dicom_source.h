#pragma once
// The DICOM source of a case, kept so that labels can be given back as DICOM SEG objects that
// reference the images they were drawn on (MONAI Label's /infer/{model}?output=dicom_seg).
//
// When the importer stores an image read from a DICOM series, it also writes the identifiers of
// the de-identified series (io::DicomSourceRef: pseudonym as PatientID/PatientName, the
// de-identified Study/Series/FrameOfReference/SOP instance UIDs per slice, the shifted study
// date) to DIR/dicom/<image sha256>.json, durably (temp file, fsync, rename, fsync folder). The
// original identifiers never get there: these are the values of the cleaned copies. Images
// imported from other formats, or from DICOM before this file existed, have none (importing the
// same series again writes it: the image is the same, so the case is reported as skipped).

#include <optional>
#include <string>

#include "tumorlab/app/lab.h"
#include "tumorlab/io/dicom.h"

namespace tumorlab::app {

// Writes DIR/dicom/<image_sha256>.json. Error(IoFailure) when it cannot be written durably.
void save_dicom_source(Lab& lab, const std::string& image_sha256, const io::DicomSourceRef& source);

// The DICOM source of a stored image; nullopt when it has none. Error(IoFailure) naming the
// file when it exists but cannot be read or parsed.
std::optional<io::DicomSourceRef> load_dicom_source(Lab& lab, const std::string& image_sha256);

}  // namespace tumorlab::app
