// Scratch files and folders of requests and jobs (app/scratch.h) on a real data folder: unique
// names in DIR/tmp, removal at the end of scope (also after an exception), owner-only folders,
// whole-file reads and writes with errors that name the file but not its folder.
#include "tumorlab/app/scratch.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "test_support.h"
#include "tumorlab/app/lab.h"
#include "tumorlab/core/error.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// The error code and message of what `f` throws; fails the test when it throws nothing.
template <class F>
Error thrown_error(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no tumorlab::Error thrown";
  return Error(ErrorCode::Internal, "");
}

}  // namespace

TEST(Scratch, FilePath_UniqueInScratchFolder_RemovedAtEndOfScope) {
  TempDir tmp;
  auto lab = app::Lab::open_beside_server(tmp / "data");
  std::set<fs::path> seen;
  for (int n = 0; n < 50; ++n) {
    const app::ScratchFile f(*lab, "req", ".nii.gz");
    EXPECT_EQ(f.path().parent_path(), lab->scratch_dir());
    const std::string name = f.path().filename().string();
    EXPECT_EQ(name.rfind("req-", 0), 0u) << name;
    EXPECT_EQ(name.substr(name.size() - 7), ".nii.gz") << name;
    EXPECT_TRUE(seen.insert(f.path()).second) << "path given twice: " << name;
    EXPECT_FALSE(fs::exists(f.path())) << "a scratch file path is not created";
    if (n % 2 == 0) app::write_file(f.path(), "x");  // the others are never written: removal is harmless
  }
  for (const auto& p : seen) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(fs::is_empty(lab->scratch_dir()));
}

TEST(Scratch, File_RemovedWhenAnExceptionLeavesTheScope) {
  TempDir tmp;
  auto lab = app::Lab::open_beside_server(tmp / "data");
  fs::path written;
  try {
    const app::ScratchFile f(*lab, "monai", ".dcm");
    written = f.path();
    app::write_file(f.path(), "partial");
    ASSERT_TRUE(fs::exists(written));
    throw std::runtime_error("the request failed half way");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(written));
}

TEST(Scratch, Dir_OwnerOnly_RemovedWithEverythingInIt) {
  TempDir tmp;
  auto lab = app::Lab::open_beside_server(tmp / "data");
  fs::path dir;
  {
    const app::ScratchDir d(*lab, "upload");
    dir = d.path();
    ASSERT_TRUE(fs::is_directory(dir));
    EXPECT_EQ(dir.parent_path(), lab->scratch_dir());
    EXPECT_EQ(dir.filename().string().rfind("upload-", 0), 0u) << dir;
    EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
    const app::ScratchDir other(*lab, "upload");
    EXPECT_NE(other.path(), dir);
    fs::create_directories(dir / "zip1" / "nested");
    app::write_file(dir / "zip1" / "nested" / "a.dcm", "DICM");
    app::write_file(dir / "u0.nii.gz", "bytes");
  }
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(fs::is_empty(lab->scratch_dir()));
}

TEST(Scratch, Dir_CannotBeCreated_IoFailure) {
  TempDir tmp;
  auto lab = app::Lab::open_beside_server(tmp / "data");
  // A file where the scratch folder should be: nothing can be created below it.
  fs::remove_all(lab->scratch_dir());
  app::write_file(lab->scratch_dir(), "not a folder");
  const Error e = thrown_error([&] { app::ScratchDir d(*lab, "export"); });
  EXPECT_EQ(e.code(), ErrorCode::IoFailure);
  EXPECT_NE(std::string(e.what()).find("cannot create scratch folder export-"), std::string::npos) << e.what();
}

TEST(Scratch, ReadWriteFile_BinaryRoundTrip_Truncates_EmptyFile) {
  TempDir tmp;
  const fs::path p = tmp / "blob.bin";
  std::string bytes("\x1f\x8b\0\x01\xff tail", 9);
  app::write_file(p, bytes);
  EXPECT_EQ(app::read_file(p), bytes);
  EXPECT_EQ(fs::file_size(p), 9u);
  app::write_file(p, "ab");
  EXPECT_EQ(app::read_file(p), "ab") << "a write replaces the whole file";
  app::write_file(p, "");
  EXPECT_EQ(app::read_file(p), "");
}

TEST(Scratch, ReadWriteFile_Errors_NameTheFileNotItsFolder) {
  TempDir tmp;
  const fs::path folder = tmp / "private-folder";
  const Error missing = thrown_error([&] { app::read_file(folder / "absent.json"); });
  EXPECT_EQ(missing.code(), ErrorCode::IoFailure);
  EXPECT_EQ(std::string(missing.what()), "cannot read absent.json");
  const Error unwritable = thrown_error([&] { app::write_file(folder / "out.nii.gz", "x"); });
  EXPECT_EQ(unwritable.code(), ErrorCode::IoFailure);
  EXPECT_EQ(std::string(unwritable.what()), "cannot write out.nii.gz");
  EXPECT_FALSE(fs::exists(folder));
}

TEST(Scratch, RenameInMessage_FullPathAndBaseName) {
  const fs::path p = "/data/tmp/req-12-3-abcd.nii.gz";
  EXPECT_EQ(app::rename_in_message("cannot read /data/tmp/req-12-3-abcd.nii.gz: not NIfTI", p, "label"),
            "cannot read label: not NIfTI");
  EXPECT_EQ(app::rename_in_message("req-12-3-abcd.nii.gz: size 4x4x1, expected 4x4x2", p, "label"),
            "label: size 4x4x1, expected 4x4x2");
  EXPECT_EQ(app::rename_in_message("no mention", p, "label"), "no mention");
  // A display name that contains the scratch name is not replaced again (no endless loop).
  EXPECT_EQ(app::rename_in_message("bad req-12-3-abcd.nii.gz", p, "upload req-12-3-abcd.nii.gz"),
            "bad upload req-12-3-abcd.nii.gz");
}
