// Fuzzes the zip extraction of uploads and `tumorlab import` (io::extract_zip, libzip underneath):
// any input must extract or end in a tumorlab::Error of kind Input (a hostile archive is the
// caller's fault, never a 5xx), and every file written must lie inside the destination folder.
// A crash, a sanitizer report, an Environment/Internal error or a file outside is a bug (abort).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "fuzz_input.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/archive.h"

namespace fs = std::filesystem;

namespace {

fs::path work_root() {
  static const fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("tumorlab-fuzz-zip-" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("tumorlab-fuzz-zip-" + std::to_string(::getpid())), ec);
    });
    return p;
  }();
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tumorlab::fuzz::InputFile file(data, size, ".zip");
  const fs::path dest = work_root() / "out";
  std::error_code ec;
  fs::remove_all(work_root() / "out", ec);
  try {
    const auto files = tumorlab::io::extract_zip(file.path(), dest, "upload.zip", 8u << 20, 2000);
    const std::string prefix = fs::weakly_canonical(dest).string() + "/";
    for (const auto& f : files) {
      const std::string real = fs::weakly_canonical(f).string();
      if (real.rfind(prefix, 0) != 0 || !fs::is_regular_file(fs::symlink_status(f))) {
        std::fprintf(stderr, "fuzz_zip: entry written outside the destination or not a regular file: %s\n",
                     real.c_str());
        std::abort();
      }
    }
  } catch (const tumorlab::Error& e) {
    if (e.info().kind != tumorlab::ErrorKind::Input) {
      std::fprintf(stderr, "fuzz_zip: a hostile archive gave a non-input error: %s\n", e.what());
      std::abort();
    }
  }
  // Nothing may appear beside the destination either.
  for (const auto& e : fs::directory_iterator(work_root()))
    if (e.path().filename() != "out") {
      std::fprintf(stderr, "fuzz_zip: unexpected file beside the destination: %s\n", e.path().c_str());
      std::abort();
    }
  return 0;
}
