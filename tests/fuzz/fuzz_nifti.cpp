// Fuzzes the NIfTI reader (plain and gzip-compressed): any input must give a Volume or a
// tumorlab::Error, never a crash, a hang or a sanitizer report.
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Keep allocations within what the fuzzer's RSS limit tolerates.
  setenv("TUMORLAB_MAX_VOLUME_BYTES", "67108864", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  tumorlab::fuzz::InputFile file(data, size, gz ? ".nii.gz" : ".nii");
  try {
    tumorlab::Volume v = tumorlab::io::read_image(file.path());
    (void)v.intensity_range();
  } catch (const tumorlab::Error&) {
  }
  return 0;
}
