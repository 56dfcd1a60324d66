#pragma once
// Writes a fuzzer input to a private temporary file, since ITK, GDCM and DCMTK read files.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace tumorlab::fuzz {

class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size, const std::string& extension) {
    path_ = std::filesystem::temp_directory_path() /
            ("tumorlab-fuzz-" + std::to_string(::getpid()) + extension);
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  ~InputFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace tumorlab::fuzz
