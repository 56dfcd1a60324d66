// Opening, creating, refusing and upgrading the schema.
#include <filesystem>

#include "store_fixture.h"

using namespace tumorlab;
using namespace tumorlab::store;
using namespace tumorlab::store::testing;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

TEST(StoreSchema, MigrationsAreTheNumberedSqlFilesInOrder) {
  int files = 0;
  for (const auto& e : fs::directory_iterator(fs::path(TUMORLAB_SOURCE_DIR) / "src/store/migrations"))
    if (e.path().extension() == ".sql") ++files;
  EXPECT_GE(files, 2);
  EXPECT_EQ(Store::latest_schema_version(), files);
}

TEST(StoreSchema, FreshFolderGetsLatestSchemaWalAndLayout) {
  TempDir dir;
  const fs::path d = dir / "data";
  {
    Store s = Store::open(options_for(d));
    EXPECT_TRUE(s.open_report().created);
    EXPECT_EQ(s.open_report().schema_version_before, 0);
    EXPECT_EQ(s.open_report().schema_version, Store::latest_schema_version());
    EXPECT_EQ(s.db_path(), (d / "tumorlab.db").string());
  }
  EXPECT_TRUE(fs::is_directory(d / "images"));
  EXPECT_TRUE(fs::is_directory(d / "labels"));
  EXPECT_EQ(raw_scalar(d, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw_scalar(d, "SELECT count(*) FROM schema_version"), std::to_string(Store::latest_schema_version()));
  EXPECT_EQ(Store::schema_version_of(d.string()), Store::latest_schema_version());
  // Reopening changes nothing.
  Store s = Store::open(options_for(d));
  EXPECT_FALSE(s.open_report().created);
  EXPECT_EQ(s.open_report().schema_version_before, Store::latest_schema_version());
}

TEST(StoreSchema, ReferencesToMissingRowsAreNotFound) {
  TempDir dir;
  Store s = Store::open(options_for(dir.path()));
  // A case pointing at an image that does not exist, an assignee that does not exist.
  EXPECT_STORE_ERROR(s.write([](WriteTxn& t) { t.add_case(NewCase{"c1", 12345, std::nullopt}); }), NotFound);
  const Case c = make_case(s, "c2");
  EXPECT_STORE_ERROR(s.write([&](WriteTxn& t) { t.assign_case(c.id, Id{999}, std::nullopt); }), NotFound);
}

TEST(StoreSchema, OlderSchemaIsRefusedUntilUpgraded) {
  TempDir dir;
  {
    StoreOptions o = options_for(dir.path());
    o.target_schema_version = 1;  // what an older tumorlab would have made
    Store s = Store::open(o);
    EXPECT_EQ(s.open_report().schema_version, 1);
    s.write([](WriteTxn& t) { t.add_user("olduser", Role::Reviewer, hash_password("old-password")); });
  }
  const std::string msg = EXPECT_STORE_ERROR(Store::open(options_for(dir.path())), SchemaOutdated);
  EXPECT_NE(msg.find("schema version 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tumorlab db upgrade --data-dir"), std::string::npos) << msg;
  EXPECT_EQ(Store::schema_version_of(dir.path().string()), 1);  // refusal changed nothing

  StoreOptions up = options_for(dir.path());
  up.upgrade = true;
  up.create_if_missing = false;
  Store s = Store::open(up);
  EXPECT_EQ(s.open_report().schema_version_before, 1);
  EXPECT_EQ(s.open_report().schema_version, Store::latest_schema_version());
  // Data kept; the table of schema 2 works; a backup of schema 1 exists.
  EXPECT_TRUE(s.authenticate("olduser", "old-password").has_value());
  EXPECT_EQ(s.read([](ReadTxn& t) { return t.login_retry_after_ms("x", "1.2.3.4"); }), 0);
  int backups = 0;
  for (const auto& e : fs::directory_iterator(dir / "backups")) {
    ++backups;
    EXPECT_NE(e.path().filename().string().find("schema1"), std::string::npos);
  }
  EXPECT_EQ(backups, 1);
}

TEST(StoreSchema, NewerSchemaIsRefused) {
  TempDir dir;
  { Store s = Store::open(options_for(dir.path())); }
  raw_exec(dir.path(), "INSERT INTO schema_version (version, name, applied_ms) VALUES (99, '0099_future', 0)");
  const std::string msg = EXPECT_STORE_ERROR(Store::open(options_for(dir.path())), SchemaTooNew);
  EXPECT_NE(msg.find("99"), std::string::npos) << msg;
  StoreOptions up = options_for(dir.path());
  up.upgrade = true;  // upgrading cannot go backwards either
  EXPECT_STORE_ERROR(Store::open(up), SchemaTooNew);
}

TEST(StoreSchema, ForeignSqliteFileIsRefused) {
  TempDir dir;
  fs::create_directories(dir.path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "tumorlab.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE something (x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_STORE_ERROR(Store::open(options_for(dir.path())), CorruptFile);
}

TEST(StoreSchema, NotADatabaseIsCorruptFile) {
  TempDir dir;
  std::ofstream(dir / "tumorlab.db") << "this is not an SQLite database, just some text that is long enough"
                                     << std::string(200, 'x');
  EXPECT_STORE_ERROR(Store::open(options_for(dir.path())), CorruptFile);
}

TEST(StoreSchema, MissingDatabaseWithoutCreateIsFileNotFound) {
  TempDir dir;
  StoreOptions o = options_for(dir / "nothing-here");
  o.create_if_missing = false;
  o.upgrade = true;
  const std::string msg = EXPECT_STORE_ERROR(Store::open(o), FileNotFound);
  EXPECT_NE(msg.find("tumorlab.db"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "nothing-here"));
}

TEST(StoreSchema, DataDirThatIsAFileIsBadArgument) {
  TempDir dir;
  std::ofstream(dir / "file") << "x";
  EXPECT_STORE_ERROR(Store::open(options_for(dir / "file")), BadArgument);
  EXPECT_STORE_ERROR(Store::open(StoreOptions{}), BadArgument);
}

TEST(StoreSchema, UpgradeIsRefusedWhileAServerHoldsTheFolder) {
  TempDir dir;
  StoreOptions old_server = options_for(dir.path());
  old_server.target_schema_version = 1;
  old_server.recover_jobs = true;  // an older server, still running
  Store running = Store::open(old_server);
  StoreOptions up = options_for(dir.path());
  up.upgrade = true;
  const std::string msg = EXPECT_STORE_ERROR(Store::open(up), Unavailable);
  EXPECT_NE(msg.find("stop it before upgrading"), std::string::npos) << msg;
  EXPECT_EQ(Store::schema_version_of(dir.path().string()), 1);
}
