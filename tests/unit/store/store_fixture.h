#pragma once
// Helpers for the store tests: a real SQLite store in a temp folder, a settable clock, raw
// SQLite access for what only an attacker or an old tumorlab would do.
#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <string>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store::testing {

struct TestClock {
  std::atomic<TimeMs> now{1'700'000'000'000};
  std::function<TimeMs()> fn() {
    return [this] { return now.load(); };
  }
};

inline StoreOptions options_for(const std::filesystem::path& dir, TestClock* clock = nullptr) {
  StoreOptions o;
  o.data_dir = dir.string();
  if (clock) o.now_ms = clock->fn();
  return o;
}

// Runs SQL on the database file directly (a separate connection, as a tamperer would).
inline void raw_exec(const std::filesystem::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  const std::string path = (dir / "tumorlab.db").string();
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << msg;
}

// Runs SQL and returns SQLite's result code (for statements expected to fail).
inline int raw_exec_rc(const std::filesystem::path& dir, const std::string& sql, std::string* message = nullptr) {
  sqlite3* db = nullptr;
  const std::string path = (dir / "tumorlab.db").string();
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return -1;
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (message) *message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  return rc;
}

inline std::string raw_scalar(const std::filesystem::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  const std::string path = (dir / "tumorlab.db").string();
  std::string out;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return "<open failed>";
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    const auto* t = sqlite3_column_text(s, 0);
    out = t ? reinterpret_cast<const char*>(t) : "<null>";
  } else {
    out = "<no row>";
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Expects `expr` to throw tumorlab::Error with `code`; returns the message.
#define EXPECT_STORE_ERROR(expr, code_)                                           \
  [&]() -> std::string {                                                          \
    try {                                                                         \
      (void)(expr);                                                               \
    } catch (const ::tumorlab::Error& e) {                                        \
      EXPECT_EQ(e.code(), ::tumorlab::ErrorCode::code_) << e.what();              \
      return e.what();                                                            \
    }                                                                             \
    ADD_FAILURE() << #expr << ": expected Error(" #code_ "), nothing was thrown"; \
    return std::string();                                                         \
  }()

// A case with an image file, ready for revisions.
inline Case make_case(Store& s, const std::string& name, const std::string& image_bytes = "") {
  const StoredFile f = s.put_image_bytes(image_bytes.empty() ? "image-bytes-of-" + name : image_bytes);
  return s.write([&](WriteTxn& t) {
    NewImage im;
    im.sha256 = f.sha256;
    im.modality = "MR";
    im.channel_names = {"FLAIR"};
    im.size = {64, 64, 20};
    im.spacing_mm = {1, 1, 3};
    const Image image = t.add_image(im);
    return t.add_case(NewCase{name, image.id, std::nullopt});
  });
}

}  // namespace tumorlab::store::testing
