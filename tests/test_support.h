#pragma once
// Shared helpers for tumorlab's GoogleTest suites.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace tumorlab::testing {

// ../shared/data as seen from the project root, or $TUMORLAB_SHARED_DATA.
inline std::filesystem::path shared_data_dir() {
  if (const char* env = std::getenv("TUMORLAB_SHARED_DATA")) return env;
  return std::filesystem::path(TUMORLAB_SOURCE_DIR) / ".." / "shared" / "data";
}

inline bool have_shared_data() { return std::filesystem::is_directory(shared_data_dir()); }

// Every byte of a file ("" when it cannot be read).
inline std::string slurp_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh, empty temporary folder removed when the object goes out of scope.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "tumorlab";
    path_ = std::filesystem::temp_directory_path() /
            ("tumorlab-test-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path path_;
};

// Folder where tests leave files for the fuzzers' seed corpora (build/<preset>/fuzz-seeds/<name>).
inline std::filesystem::path fuzz_seed_dir(const std::string& name) {
  auto dir = std::filesystem::path(TUMORLAB_BINARY_DIR) / "fuzz-seeds" / name;
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace tumorlab::testing

// Skips the current test with a clear message when ../shared/data is absent.
#define TUMORLAB_REQUIRE_SHARED_DATA()                                                              \
  do {                                                                                              \
    if (!::tumorlab::testing::have_shared_data())                                                   \
      GTEST_SKIP() << "needs ../shared/data (real patient data; set TUMORLAB_SHARED_DATA to point " \
                      "elsewhere): not found at "                                                   \
                   << ::tumorlab::testing::shared_data_dir();                                       \
  } while (0)
