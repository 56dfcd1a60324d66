// Fuzzes the DICOM reader: scanning, grouping and pixel decoding of one file.
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("TUMORLAB_MAX_VOLUME_BYTES", "67108864", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tumorlab::fuzz::InputFile file(data, size, ".dcm");
  try {
    for (const auto& series : tumorlab::io::scan_dicom(file.path())) {
      if (!series.readable) continue;
      tumorlab::io::DicomReadOptions options;
      options.allow_incomplete = true;
      tumorlab::Volume v = tumorlab::io::read_dicom_series(series, options);
      (void)v.intensity_range();
    }
  } catch (const tumorlab::Error&) {
  }
  return 0;
}
