// The real binary on a real data folder: db upgrade, user add|list|passwd|disable|enable,
// audit verify, with their exit codes.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "test_support.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using namespace tumorlab::testing::cli;

void raw_exec(const fs::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "tumorlab.db").c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

bool can_login(const fs::path& dir, const std::string& user, const std::string& pw) {
  store::StoreOptions o;
  o.data_dir = dir.string();
  return store::Store::open(o).authenticate(user, pw).has_value();
}

}  // namespace

TEST(UserCli, AddListPasswdDisableEnable) {
  TempDir tmp;
  const fs::path d = tmp / "data";
  const std::string dir = " --data-dir " + quote(d.string());
  Result r = run("user add --password-stdin" + dir + " --role admin root1", "first-admin-pw\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("added user root1 (admin)"), std::string::npos) << r.out;
  r = run("user add --password-stdin" + dir + " --role annotator ann", "annotator-pw\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(can_login(d, "ann", "annotator-pw"));

  r = run("user list" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("root1"), std::string::npos);
  EXPECT_NE(r.out.find("2 users"), std::string::npos) << r.out;
  r = run("user list --json" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["username"], "ann");
  EXPECT_EQ(j[0]["role"], "annotator");
  EXPECT_EQ(j[0]["disabled"], false);

  // Name taken, bad role, short password: bad input.
  r = run("user add --password-stdin" + dir + " ann", "another-password\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(run("user add --password-stdin" + dir + " --role superuser bob", "bob-password\n").exit_code, 2);
  r = run("user add --password-stdin" + dir + " bob", "short\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("password"), std::string::npos) << r.err;
  // No terminal and no --password-stdin: refused with a hint, not a hang.
  r = run("user add" + dir + " bob");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--password-stdin"), std::string::npos) << r.err;

  r = run("user passwd --password-stdin" + dir + " ann", "annotator-pw-2\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(can_login(d, "ann", "annotator-pw"));
  EXPECT_TRUE(can_login(d, "ann", "annotator-pw-2"));
  EXPECT_EQ(run("user passwd --password-stdin" + dir + " nobody", "whatever-pw\n").exit_code, 2);

  r = run("user disable" + dir + " root1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("last enabled admin"), std::string::npos) << r.err;
  ASSERT_EQ(run("user disable" + dir + " ann").exit_code, 0);
  EXPECT_FALSE(can_login(d, "ann", "annotator-pw-2"));
  EXPECT_NE(run("user list" + dir).out.find("disabled"), std::string::npos);
  ASSERT_EQ(run("user enable" + dir + " ann").exit_code, 0);
  EXPECT_TRUE(can_login(d, "ann", "annotator-pw-2"));

  // Every change is in the audit trail, which verifies.
  r = run("audit verify" + dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("intact: 5 rows"), std::string::npos) << r.out;  // 2 adds, passwd, disable, enable
}

TEST(UserCli, MissingDataFolderIsBadInput) {
  TempDir tmp;
  const Result r = run("user list --data-dir " + quote((tmp / "none").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("tumorlab.db"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "none"));
}

TEST(DbCli, OldSchemaIsRefusedUntilUpgrade) {
  TempDir tmp;
  const fs::path d = tmp / "data";
  {
    store::StoreOptions o;
    o.data_dir = d.string();
    o.target_schema_version = 1;
    store::Store::open(o).create_user("ann", store::Role::Annotator, "annotator-pw");
  }
  const std::string dir = " --data-dir " + quote(d.string());
  Result r = run("user list" + dir);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("tumorlab db upgrade --data-dir"), std::string::npos) << r.err;

  r = run("db upgrade" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("from schema 1 to " + std::to_string(store::Store::latest_schema_version())), std::string::npos)
      << r.out;
  r = run("db upgrade" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already at schema"), std::string::npos) << r.out;
  r = run("user list" + dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ann"), std::string::npos);
  EXPECT_TRUE(fs::is_directory(d / "backups"));

  // Newer than this tumorlab: environment error, not silently used.
  raw_exec(d, "INSERT INTO schema_version (version, name, applied_ms) VALUES (50, '0050_future', 0)");
  r = run("db upgrade" + dir);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("newer tumorlab"), std::string::npos) << r.err;

  EXPECT_EQ(run("db upgrade --data-dir " + quote((tmp / "empty").string())).exit_code, 2);
}

TEST(AuditCli, TamperingIsReportedWithTheRow) {
  TempDir tmp;
  const fs::path d = tmp / "data";
  const std::string dir = " --data-dir " + quote(d.string());
  for (const char* name : {"u1", "u2", "u3", "u4"})
    ASSERT_EQ(run("user add --password-stdin" + dir + " " + name, "password-123\n").exit_code, 0);
  ASSERT_EQ(run("audit verify" + dir).exit_code, 0);
  raw_exec(d, "DROP TRIGGER audit_append_only_update");
  raw_exec(d, "UPDATE audit SET actor = 'someone-else' WHERE seq = 3");
  const Result r = run("audit verify" + dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("BROKEN at row 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 rows before it verified"), std::string::npos) << r.out;
}
