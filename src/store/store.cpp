// Store: opening (schema creation, refusal or upgrade), the connection pool, the transaction
// runner with busy retry, the SQLite wrapper and the enum names.
#include "tumorlab/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "tumorlab/core/log.h"
#include "tumorlab/store/internal.h"
#include "tumorlab/store/migrations.h"
#include "tumorlab/store/sqlite.h"

namespace fs = std::filesystem;

namespace tumorlab::store {

// ---------------------------------------------------------------------------------------------
// SQLite wrapper

namespace detail {

void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw Error(ErrorCode::StoreBusy, msg);
    case SQLITE_CONSTRAINT:
      throw Error(ErrorCode::Conflict, msg);
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOMEM:
      throw Error(ErrorCode::IoFailure, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      throw Error(ErrorCode::CorruptFile, msg);
    default:
      throw Error(ErrorCode::Internal, msg);
  }
}

Connection::Connection(const std::string& p, int flags, int busy_timeout_ms) : path(p) {
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg =
        "opening database " + path + ": " + (db ? std::string(sqlite3_errmsg(db)) : std::string(sqlite3_errstr(rc)));
    sqlite3_close_v2(db);
    db = nullptr;
    throw Error(ErrorCode::IoFailure, msg);
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  try {
    // Durability of acknowledged commits (WAL + FULL syncs the WAL on every commit).
    exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA trusted_schema = OFF;");
  } catch (...) {
    sqlite3_close_v2(db);
    db = nullptr;
    throw;
  }
}

Connection::~Connection() {
  for (auto& [sql, s] : cache) sqlite3_finalize(s);
  if (db) sqlite3_close_v2(db);
}

void Connection::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    sqlite3_free(err);
    throw_sqlite(db, rc, std::string("database ") + path);
  }
}

Stmt Connection::prepare(std::string_view sql) {
  auto it = cache.find(sql);
  if (it == cache.end()) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db, rc, "preparing statement");
    it = cache.emplace(std::string(sql), s).first;
  }
  return Stmt(*this, it->second);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  int rc = sqlite3_bind_int64(s_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(c_->db, rc, "binding a parameter");
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  int rc = sqlite3_bind_double(s_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(c_->db, rc, "binding a parameter");
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  // An empty string_view may have a null data pointer, which SQLite would bind as NULL.
  const char* p = v.data() ? v.data() : "";
  int rc = sqlite3_bind_text64(s_, i, p, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_sqlite(c_->db, rc, "binding a parameter");
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  int rc = sqlite3_bind_null(s_, i);
  if (rc != SQLITE_OK) throw_sqlite(c_->db, rc, "binding a parameter");
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_sqlite(c_->db, rc, "database " + c_->path);
}

void Stmt::run() {
  while (step()) {
  }
}

std::string Stmt::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
  if (!p) return {};
  return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col)));
}

void throw_not_found(std::string_view what, Id id) {
  throw Error(ErrorCode::NotFound, std::string(what) + " " + std::to_string(id) + " not found");
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

std::string content_path(const std::string& data_dir, const char* sub, std::string_view sha256) {
  if (!is_sha256_hex(sha256))
    throw Error(ErrorCode::BadArgument,
                "sha256: expected 64 lower-case hex digits, got '" + std::string(sha256.substr(0, 80)) + "'");
  return data_dir + "/" + sub + "/" + std::string(sha256) + kFileSuffix;
}

}  // namespace detail

using detail::Connection;

// ---------------------------------------------------------------------------------------------
// Enum names

namespace {
template <class E, std::size_t N>
E parse_enum(std::string_view s, const char* const (&names)[N], const char* what) {
  for (std::size_t i = 0; i < N; ++i)
    if (s == names[i]) return static_cast<E>(i);
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) expected += (i ? ", " : "") + std::string(names[i]);
  throw Error(ErrorCode::BadArgument,
              std::string(what) + ": expected one of " + expected + ", got '" + std::string(s.substr(0, 64)) + "'");
}
const char* const kRoles[] = {"admin", "reviewer", "annotator"};
const char* const kStatuses[] = {"new", "presegmented", "in_progress", "submitted", "validated", "rejected"};
const char* const kKinds[] = {"ai", "manual", "refined", "imported"};
const char* const kJobTypes[] = {"presegment", "predict_batch", "train", "import", "export"};
const char* const kJobStates[] = {"queued", "running", "succeeded", "failed", "cancelled"};
}  // namespace

std::string_view to_string(Role r) {
  return kRoles[static_cast<int>(r)];
}
std::string_view to_string(CaseStatus s) {
  return kStatuses[static_cast<int>(s)];
}
std::string_view to_string(RevisionKind k) {
  return kKinds[static_cast<int>(k)];
}
std::string_view to_string(JobType t) {
  return kJobTypes[static_cast<int>(t)];
}
std::string_view to_string(JobState s) {
  return kJobStates[static_cast<int>(s)];
}
Role parse_role(std::string_view s) {
  return parse_enum<Role>(s, kRoles, "role");
}
CaseStatus parse_case_status(std::string_view s) {
  return parse_enum<CaseStatus>(s, kStatuses, "status");
}
RevisionKind parse_revision_kind(std::string_view s) {
  return parse_enum<RevisionKind>(s, kKinds, "revision kind");
}
JobType parse_job_type(std::string_view s) {
  return parse_enum<JobType>(s, kJobTypes, "job type");
}
JobState parse_job_state(std::string_view s) {
  return parse_enum<JobState>(s, kJobStates, "job state");
}

bool is_allowed_transition(CaseStatus from, CaseStatus to) {
  using S = CaseStatus;
  switch (from) {
    case S::New:
      return to == S::Presegmented || to == S::InProgress;
    case S::Presegmented:
      return to == S::InProgress;
    case S::InProgress:
      return to == S::Submitted;
    case S::Submitted:
      return to == S::Validated || to == S::Rejected || to == S::InProgress;
    case S::Rejected:
      return to == S::InProgress;
    case S::Validated:
      return to == S::InProgress;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Transactions

ReadTxn::ReadTxn(detail::Connection& c, const std::string& data_dir, TimeMs now_ms)
    : c_(c), data_dir_(data_dir), now_ms_(now_ms) {}

// ---------------------------------------------------------------------------------------------
// Store

struct Store::Impl {
  StoreOptions options;
  std::string data_dir;  // absolute
  std::string db_path;
  OpenReport report;
  int lock_fd = -1;
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Connection>> pool;

  ~Impl() {
    pool.clear();
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }

  TimeMs now() const {
    if (options.now_ms) return options.now_ms();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  std::unique_ptr<Connection> acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mutex);
      if (!pool.empty()) {
        auto c = std::move(pool.back());
        pool.pop_back();
        return c;
      }
    }
    return std::make_unique<Connection>(db_path, SQLITE_OPEN_READWRITE, options.busy_timeout_ms);
  }
  void release(std::unique_ptr<Connection> c) {
    if (!c || !sqlite3_get_autocommit(c->db)) return;  // a connection stuck in a txn is dropped
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (pool.size() < 16) pool.push_back(std::move(c));
  }
  // Runs f in a transaction opened with `begin`, retrying on StoreBusy with jittered backoff.
  template <class Txn, class Fn>
  void run(const char* begin, const Fn& f);
};

namespace {

void rollback_quietly(Connection& c) {
  if (!sqlite3_get_autocommit(c.db)) sqlite3_exec(c.db, "ROLLBACK", nullptr, nullptr, nullptr);
}

bool table_exists(Connection& c, const char* name) {
  auto s = c.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1");
  s.bind(1, name);
  return s.step();
}

int user_table_count(Connection& c) {
  auto s = c.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'");
  s.step();
  return static_cast<int>(s.i64(0));
}

int read_schema_version(Connection& c) {
  if (!table_exists(c, "schema_version")) return 0;
  auto s = c.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  s.step();
  return static_cast<int>(s.i64(0));
}

int latest_version() {
  const auto& m = detail::migrations();
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m[i].version != static_cast<int>(i) + 1)
      throw Error(ErrorCode::Internal, std::string("store migrations are not numbered 1..N: ") + m[i].name);
  return static_cast<int>(m.size());
}

void apply_migrations(Connection& c, int from, int to, TimeMs now) {
  for (const auto& m : detail::migrations()) {
    if (m.version <= from || m.version > to) continue;
    c.exec("BEGIN IMMEDIATE");
    try {
      c.exec(
          "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT "
          "NULL, applied_ms INTEGER NOT NULL)");
      c.exec(m.sql);
      auto s = c.prepare("INSERT INTO schema_version (version, name, applied_ms) VALUES (?1, ?2, ?3)");
      s.bind(1, m.version).bind(2, m.name).bind(3, now).run();
      c.exec("COMMIT");
    } catch (const Error& e) {
      rollback_quietly(c);
      throw Error(e.code(), std::string("applying schema migration ") + m.name + ": " + e.what());
    }
    log_debug(std::string("store: applied schema migration ") + m.name);
  }
}

std::string upgrade_hint(const std::string& dir) {
  return "run `tumorlab db upgrade --data-dir " + dir + "`";
}

}  // namespace

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

int Store::latest_schema_version() {
  return latest_version();
}

int Store::schema_version_of(const std::string& data_dir) {
  const std::string path = data_dir + "/" + detail::kDbFileName;
  if (!fs::exists(path)) return 0;
  Connection c(path, SQLITE_OPEN_READONLY, 5000);
  return read_schema_version(c);
}

Store Store::open(const StoreOptions& options) {
  if (options.data_dir.empty()) throw Error(ErrorCode::BadArgument, "--data-dir: a folder is required");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::error_code ec;
  fs::path dir = fs::absolute(options.data_dir, ec);
  if (ec) throw Error(ErrorCode::BadArgument, "--data-dir " + options.data_dir + ": " + ec.message());
  dir = dir.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  impl->data_dir = dir.string();
  impl->db_path = (dir / detail::kDbFileName).string();
  const std::string& d = impl->data_dir;

  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(ErrorCode::BadArgument, "--data-dir " + d + ": not a folder");
  const bool db_exists = fs::exists(impl->db_path);
  if (!db_exists && !options.create_if_missing)
    throw Error(ErrorCode::FileNotFound,
                "no tumorlab database at " + impl->db_path + " (expected a data folder made by tumorlab)");
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "creating data folder " + d + ": " + ec.message());
  for (const char* sub : {detail::kImagesDir, detail::kLabelsDir}) {
    fs::create_directories(dir / sub, ec);
    if (ec) throw Error(ErrorCode::IoFailure, "creating folder " + (dir / sub).string() + ": " + ec.message());
  }

  // DIR/server.lock: held by a server (recover_jobs) for its lifetime, and by a schema upgrade
  // while it migrates, so neither runs under the other.
  auto take_server_lock = [&](const std::string& what) {
    if (impl->lock_fd >= 0) return;
    const std::string lock_path = (dir / "server.lock").string();
    impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (impl->lock_fd < 0) throw Error(ErrorCode::IoFailure, "opening " + lock_path + ": " + std::strerror(errno));
    if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0)
      throw Error(ErrorCode::Unavailable,
                  "data folder " + d + " is in use by a tumorlab server (" + lock_path + " is locked): " + what);
  };
  if (options.recover_jobs) take_server_lock("only one server may use a data folder");

  const int latest = latest_version();
  const int target = options.target_schema_version > 0 ? options.target_schema_version : latest;
  if (target > latest)
    throw Error(ErrorCode::BadArgument, "target schema version " + std::to_string(target) +
                                            " is newer than this tumorlab (" + std::to_string(latest) + ")");
  {
    Connection admin(impl->db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout_ms);
    admin.exec("PRAGMA journal_mode = WAL");
    const int version = read_schema_version(admin);
    impl->report.schema_version_before = version;
    if (version == 0 && user_table_count(admin) > 0)
      throw Error(ErrorCode::CorruptFile,
                  impl->db_path + ": an SQLite database without tumorlab's schema_version table");
    if (version > target)
      throw Error(ErrorCode::SchemaTooNew, impl->db_path + " has schema version " + std::to_string(version) +
                                               "; this tumorlab knows versions up to " + std::to_string(target) +
                                               ": use a newer tumorlab");
    if (version == 0) {
      apply_migrations(admin, 0, target, impl->now());
      impl->report.created = true;
    } else if (version < target) {
      if (!options.upgrade)
        throw Error(ErrorCode::SchemaOutdated, impl->db_path + " has schema version " + std::to_string(version) +
                                                   ", this tumorlab needs " + std::to_string(target) + ": " +
                                                   upgrade_hint(d) + " (it keeps a backup copy first)");
      take_server_lock("stop it before upgrading the schema");
      // A consistent copy of the old database before migrating.
      const fs::path backups = dir / "backups";
      fs::create_directories(backups, ec);
      const std::string backup =
          (backups / ("tumorlab-schema" + std::to_string(version) + "-" + std::to_string(impl->now()) + ".db"))
              .string();
      auto s = admin.prepare("VACUUM INTO ?1");
      s.bind(1, backup).run();
      log_info("store: backup of schema " + std::to_string(version) + " written to " + backup);
      apply_migrations(admin, version, target, impl->now());
    }
    impl->report.schema_version = read_schema_version(admin);
  }

  Store store(std::move(impl));
  if (options.recover_jobs) {
    // Jobs left running by a crash: re-queue (or fail) them, each with an audit row.
    store.write([&](WriteTxn& t) {
      store.impl_->report.jobs_requeued = 0;
      store.impl_->report.jobs_failed = 0;
      auto running = t.list_jobs(JobFilter{JobState::Running, std::nullopt, std::nullopt, std::nullopt, 1000000, 0});
      for (const Job& j : running) {
        const bool cancel = j.cancel_requested;
        const bool requeue = j.restartable && !cancel;
        auto s = t.c_.prepare(
            "UPDATE jobs SET state = ?2, progress = CASE WHEN ?2 = 'queued' THEN 0 ELSE progress END, "
            "message = ?3, error = ?4, started_ms = CASE WHEN ?2 = 'queued' THEN NULL ELSE started_ms END, "
            "finished_ms = CASE WHEN ?2 = 'queued' THEN NULL ELSE ?5 END WHERE id = ?1");
        const char* state = requeue ? "queued" : (cancel ? "cancelled" : "failed");
        s.bind(1, j.id)
            .bind(2, state)
            .bind(3, requeue ? "re-queued after the server stopped while it ran" : "")
            .bind(4, requeue || cancel ? "" : "interrupted: the server stopped while it ran (not restartable)")
            .bind(5, t.now_ms_)
            .run();
        if (requeue)
          ++store.impl_->report.jobs_requeued;
        else
          ++store.impl_->report.jobs_failed;
        AuditEntry a;
        a.actor = "system";
        a.action = "job.recover";
        a.case_id = j.case_id;
        a.outcome = requeue ? "ok" : "failed";
        a.detail_json = std::string("{\"job_id\":") + std::to_string(j.id) + ",\"type\":\"" +
                        std::string(to_string(j.type)) + "\",\"state\":\"" + state + "\"}";
        t.append_audit(a);
      }
    });
    if (store.impl_->report.jobs_requeued || store.impl_->report.jobs_failed)
      log_info("store: after restart, " + std::to_string(store.impl_->report.jobs_requeued) + " job(s) re-queued, " +
               std::to_string(store.impl_->report.jobs_failed) + " marked failed/cancelled");
  }
  return store;
}

const OpenReport& Store::open_report() const {
  return impl_->report;
}
const std::string& Store::data_dir() const {
  return impl_->data_dir;
}
std::string Store::db_path() const {
  return impl_->db_path;
}
TimeMs Store::now_ms() const {
  return impl_->now();
}

template <class Txn, class Fn>
void Store::Impl::run(const char* begin, const Fn& f) {
  Impl& impl = *this;
  const auto start = std::chrono::steady_clock::now();
  const auto budget = std::chrono::milliseconds(impl.options.busy_retry_ms);
  std::minstd_rand rng(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
                                             static_cast<unsigned>(start.time_since_epoch().count())));
  int attempt = 0;
  for (;;) {
    auto conn = impl.acquire();
    try {
      conn->exec(begin);
      Txn t(*conn, impl.data_dir, impl.now());
      f(t);
      conn->exec("COMMIT");
      impl.release(std::move(conn));
      return;
    } catch (const Error& e) {
      rollback_quietly(*conn);
      impl.release(std::move(conn));
      if (e.code() != ErrorCode::StoreBusy) throw;
      if (std::chrono::steady_clock::now() - start > budget)
        throw Error(ErrorCode::StoreBusy, std::string(e.what()) + " (gave up after " + std::to_string(attempt + 1) +
                                              " attempts in " + std::to_string(impl.options.busy_retry_ms) + " ms)");
      ++attempt;
      const int cap = std::min(100, 1 << std::min(attempt, 7));
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + static_cast<int>(rng() % cap)));
    } catch (...) {
      rollback_quietly(*conn);
      impl.release(std::move(conn));
      throw;
    }
  }
}

void Store::run_read(const std::function<void(ReadTxn&)>& f) {
  impl_->run<ReadTxn>("BEGIN DEFERRED", f);
}
void Store::run_write(const std::function<void(WriteTxn&)>& f) {
  impl_->run<WriteTxn>("BEGIN IMMEDIATE", f);
}

std::string Store::image_path(std::string_view sha256) const {
  return detail::content_path(impl_->data_dir, detail::kImagesDir, sha256);
}
std::string Store::label_path(std::string_view sha256) const {
  return detail::content_path(impl_->data_dir, detail::kLabelsDir, sha256);
}
StoredFile Store::put_image_bytes(const std::string& bytes) {
  return detail::write_content_addressed(impl_->data_dir, detail::kImagesDir, bytes);
}
StoredFile Store::put_image_file(const std::string& source_path) {
  return detail::copy_content_addressed(impl_->data_dir, detail::kImagesDir, source_path);
}
StoredFile Store::put_label_bytes(const std::string& bytes) {
  return detail::write_content_addressed(impl_->data_dir, detail::kLabelsDir, bytes);
}

LabelRevision Store::save_revision(const NewRevision& r, const std::string& bytes,
                                   const std::optional<AuditEntry>& audit) {
  if (bytes.empty()) throw Error(ErrorCode::InvalidLabel, "label upload: no bytes");
  const StoredFile f = put_label_bytes(bytes);  // durable before the row exists
  NewRevision row = r;
  row.sha256 = f.sha256;
  return write([&](WriteTxn& t) {
    LabelRevision rev = t.add_revision(row);
    if (audit) {
      AuditEntry a = *audit;
      a.case_id = rev.case_id;
      std::string detail = detail::canonical_json_object(a.detail_json, "audit detail");
      std::string extra = "\"revision_id\":" + std::to_string(rev.id) + ",\"sha256\":\"" + rev.sha256 + "\"";
      a.detail_json = detail == "{}" ? "{" + extra + "}" : detail.substr(0, detail.size() - 1) + "," + extra + "}";
      t.append_audit(a);
    }
    return rev;
  });
}

User Store::create_user(std::string_view username, Role role, const std::string& password) {
  const std::string hash = hash_password(password);
  return write([&](WriteTxn& t) { return t.add_user(username, role, hash); });
}

void Store::change_password(std::string_view username, const std::string& password) {
  const std::string hash = hash_password(password);
  write([&](WriteTxn& t) {
    auto u = t.find_user(username);
    if (!u) throw Error(ErrorCode::NotFound, "user '" + std::string(username) + "' not found");
    t.set_password_hash(u->id, hash);
  });
}

InitialAdmin Store::ensure_initial_admin() {
  InitialAdmin out;
  out.username = "admin";
  if (read([](ReadTxn& t) { return t.any_admin(); })) return out;
  std::string password;
  if (const char* env = std::getenv("TUMORLAB_ADMIN_PASSWORD"); env && *env) {
    password = env;
    if (password.size() < 8)
      throw Error(ErrorCode::BadArgument,
                  "TUMORLAB_ADMIN_PASSWORD: expected at least 8 bytes, got " + std::to_string(password.size()));
  } else {
    password = random_password(20);
    out.generated_password = password;
  }
  const std::string hash = hash_password(password);
  const bool created = write([&](WriteTxn& t) {
    if (t.any_admin()) return false;
    if (t.find_user("admin"))
      throw Error(ErrorCode::Conflict,
                  "no admin exists but the username 'admin' is taken by a non-admin account: "
                  "create an admin with `tumorlab user add --role admin`");
    t.add_user("admin", Role::Admin, hash);
    AuditEntry a;
    a.actor = "system";
    a.action = "admin.bootstrap";
    a.detail_json = std::string("{\"username\":\"admin\",\"password\":\"") +
                    (out.generated_password.empty() ? "from TUMORLAB_ADMIN_PASSWORD" : "generated") + "\"}";
    t.append_audit(a);
    return true;
  });
  out.created = created;
  if (!created) out.generated_password.clear();
  return out;
}

AuditRecord Store::audit(const AuditEntry& e) {
  return write([&](WriteTxn& t) { return t.append_audit(e); });
}

}  // namespace tumorlab::store
