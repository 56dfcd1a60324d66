// Zip archives (src/io/archive.h): entry names are never trusted (no path leaves the
// destination), caps on size and entry count, errors naming the upload, and zip_folder ->
// extract_zip round trips. Also writes the seed corpus of the zip fuzzer (tests/fuzz/fuzz_zip.cpp).
#include "tumorlab/io/archive.h"

#include <gtest/gtest.h>
#include <zip.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "test_support.h"
#include "tumorlab/core/error.h"

using tumorlab::Error;
using tumorlab::ErrorCode;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;
namespace io = tumorlab::io;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A zip with the given entries (names written as given, the way a hostile client could).
void make_zip(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& entries,
              bool compress = true) {
  int err = 0;
  zip_t* z = zip_open(path.string().c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr) << err;
  for (const auto& [name, bytes] : entries) {
    // libzip copies nothing until zip_close: keep the buffer alive by letting libzip own a copy.
    void* copy = std::malloc(bytes.size() + 1);
    std::memcpy(copy, bytes.data(), bytes.size());
    zip_source_t* src = zip_source_buffer(z, copy, bytes.size(), 1);
    ASSERT_NE(src, nullptr);
    const zip_int64_t idx = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_RAW);
    ASSERT_GE(idx, 0) << name << ": " << zip_strerror(z);
    if (!compress) zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

// Every regular file under `dir`, relative, with its bytes.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).generic_string()] = slurp(e.path());
  return out;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return ErrorCode::Internal;
}

}  // namespace

TEST(Archive, HostileEntryNames_NothingLeavesTheDestination) {
  TempDir tmp;
  const fs::path zip = tmp / "in.zip";
  make_zip(zip, {{"../escape.txt", "x"},
                 {"/abs.txt", "x"},
                 {"a/../../up.txt", "x"},
                 {"a\\..\\..\\win.txt", "x"},
                 {".hidden/x.txt", "x"},
                 {"__MACOSX/._scan.nii.gz", "x"},
                 {"folder/", ""},
                 {"ok/dir/scan.nii.gz", "scan"},
                 {"we ird$name.txt", "weird"}});
  const fs::path dest = tmp / "sub" / "dest";
  const auto files = io::extract_zip(zip, dest, "in.zip", 1 << 20);
  EXPECT_EQ(files.size(), 2u);
  for (const auto& f : files) EXPECT_EQ(f.string().rfind(dest.string() + "/", 0), 0u) << f;
  EXPECT_EQ(tree(dest),
            (std::map<std::string, std::string>{{"ok/dir/scan.nii.gz", "scan"}, {"we_ird_name.txt", "weird"}}));
  // Nothing beside the destination or above it.
  EXPECT_EQ(tree(tmp / "sub").size(), 2u);
  EXPECT_FALSE(fs::exists(tmp / "escape.txt"));
  EXPECT_FALSE(fs::exists(tmp / "sub" / "escape.txt"));
  EXPECT_FALSE(fs::exists("/abs.txt"));
}

TEST(Archive, SameNameAfterSanitising_BothKept) {
  TempDir tmp;
  make_zip(tmp / "in.zip", {{"a b.nii", "first"}, {"a_b.nii", "second"}});
  const auto files = io::extract_zip(tmp / "in.zip", tmp / "out", "in.zip", 1 << 20);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(slurp(files[0]), "first");
  EXPECT_EQ(slurp(files[1]), "second");
  EXPECT_NE(files[0], files[1]);
}

// Regression: an entry named like a folder another entry lives in ("x" then "x/y") made the
// extraction fail with IoFailure (a 503, "retry later") instead of an input error.
TEST(Archive, FileThenFolderOfTheSameName_InputErrorOrKept) {
  TempDir tmp;
  make_zip(tmp / "in.zip", {{"x", "file"}, {"x/y.nii", "inside"}});
  try {
    const auto files = io::extract_zip(tmp / "in.zip", tmp / "out", "in.zip", 1 << 20);
    for (const auto& f : files) EXPECT_EQ(f.string().rfind((tmp / "out").string() + "/", 0), 0u) << f;
  } catch (const Error& e) {
    EXPECT_EQ(e.info().kind, tumorlab::ErrorKind::Input) << e.what();
    EXPECT_NE(std::string(e.what()).find("in.zip"), std::string::npos) << e.what();
  }
}

TEST(Archive, Caps_TooLarge) {
  TempDir tmp;
  make_zip(tmp / "big.zip", {{"a.nii", std::string(300000, 'a')}});
  EXPECT_EQ(code_of([&] { io::extract_zip(tmp / "big.zip", tmp / "o1", "big.zip", 100000); }), ErrorCode::TooLarge);
  make_zip(tmp / "many.zip", {{"1.nii", "1"}, {"2.nii", "2"}, {"3.nii", "3"}});
  EXPECT_EQ(code_of([&] { io::extract_zip(tmp / "many.zip", tmp / "o2", "many.zip", 1 << 20, 2); }),
            ErrorCode::TooLarge);
  EXPECT_EQ(io::extract_zip(tmp / "many.zip", tmp / "o3", "many.zip", 1 << 20, 3).size(), 3u);
}

TEST(Archive, NotAZip_CorruptFileNamingTheUpload) {
  TempDir tmp;
  std::ofstream(tmp / "fake.zip") << "PK\x03\x04 but nothing else of a zip";
  EXPECT_TRUE(io::is_zip_file(tmp / "fake.zip"));
  try {
    io::extract_zip(tmp / "fake.zip", tmp / "out", "my-upload.zip", 1 << 20);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::CorruptFile);
    EXPECT_NE(std::string(e.what()).find("my-upload.zip"), std::string::npos) << e.what();
  }
  // Truncated inside an entry's data.
  make_zip(tmp / "good.zip", {{"a.nii", std::string(5000, 'z') + "tail"}}, false);
  const std::string bytes = slurp(tmp / "good.zip");
  std::ofstream(tmp / "cut.zip", std::ios::binary) << bytes.substr(0, 2000);
  EXPECT_EQ(code_of([&] { io::extract_zip(tmp / "cut.zip", tmp / "out2", "cut.zip", 1 << 20); }),
            ErrorCode::CorruptFile);
}

TEST(Archive, ZipFolder_ExtractRoundTrip_AndFuzzSeeds) {
  TempDir tmp;
  const fs::path folder = tmp / "Dataset500_x";
  fs::create_directories(folder / "imagesTr");
  std::ofstream(folder / "dataset.json") << R"({"name": "x"})";
  std::ofstream(folder / "imagesTr" / "c_0000.nii.gz", std::ios::binary) << std::string("\x1f\x8b binary\0x", 12);
  io::zip_folder(folder, tmp / "out.zip");
  EXPECT_TRUE(io::is_zip_file(tmp / "out.zip"));
  io::extract_zip(tmp / "out.zip", tmp / "back", "out.zip", 1 << 20);
  EXPECT_EQ(tree(tmp / "back"), (std::map<std::string, std::string>{
                                    {"Dataset500_x/dataset.json", R"({"name": "x"})"},
                                    {"Dataset500_x/imagesTr/c_0000.nii.gz", std::string("\x1f\x8b binary\0x", 12)}}));
  // Seeds for tests/fuzz/fuzz_zip.cpp: a well-formed archive, a hostile one, a stored one.
  const fs::path seeds = tumorlab::testing::fuzz_seed_dir("zip");
  fs::copy_file(tmp / "out.zip", seeds / "dataset.zip", fs::copy_options::overwrite_existing);
  make_zip(seeds / "hostile.zip", {{"../escape.txt", "x"}, {"a/b/../c.nii", "y"}, {"x", "f"}, {"x/y", "g"}});
  make_zip(seeds / "stored.zip", {{"scan.nii", std::string(64, 's')}, {"dir/seg.dcm", "DICM"}}, false);
}
