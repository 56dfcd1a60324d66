#pragma once
// The persistent store: one SQLite database (DIR/tumorlab.db, WAL) plus content-addressed
// files beside it (DIR/images/<sha256>.nii.gz, DIR/labels/<sha256>.nii.gz).
//
// All domain reads and writes happen inside a transaction object:
//   auto c = store.read([&](store::ReadTxn& t) { return t.get_case(id); });
//   store.write([&](store::WriteTxn& t) { t.set_case_status(...); t.append_audit(...); });
// A read transaction sees one consistent snapshot; a write transaction holds the single
// writer lock (BEGIN IMMEDIATE). Both retry on SQLITE_BUSY, so the function passed in may run
// more than once: it must touch nothing but the transaction (and its own locals) until it
// returns. Do not open a transaction inside another on the same thread.
// Password hashing (Argon2id, slow on purpose) and file writes happen outside transactions;
// Store's convenience members below do that for you.
//
// Store is thread-safe: each transaction borrows its own SQLite connection from a pool.
// Every SQLite error becomes a tumorlab::Error (Conflict, NotFound, StoreBusy, IoFailure, ...).
// Times are Unix epoch milliseconds (UTC), from StoreOptions::now_ms.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tumorlab::store {

using Id = std::int64_t;
using TimeMs = std::int64_t;  // Unix epoch milliseconds, UTC

// ---------------------------------------------------------------------------------------------
// Enumerations (stored as the lower-case strings that to_string returns; parse_* throws
// Error(BadArgument) naming the value on anything else).

enum class Role { Admin, Reviewer, Annotator };
enum class CaseStatus { New, Presegmented, InProgress, Submitted, Validated, Rejected };
enum class RevisionKind { Ai, Manual, Refined, Imported };
enum class JobType { Presegment, PredictBatch, Train, Import, Export };
enum class JobState { Queued, Running, Succeeded, Failed, Cancelled };
// Lower runs first.
enum class JobPriority : int { Interactive = 0, Presegment = 1, Batch = 2, Train = 3 };

// Role: "admin" | "reviewer" | "annotator".
// CaseStatus: "new" | "presegmented" | "in_progress" | "submitted" | "validated" | "rejected".
// RevisionKind: "ai" | "manual" | "refined" | "imported".
// JobType: "presegment" | "predict_batch" | "train" | "import" | "export".
// JobState: "queued" | "running" | "succeeded" | "failed" | "cancelled".
std::string_view to_string(Role r);
std::string_view to_string(CaseStatus s);
std::string_view to_string(RevisionKind k);
std::string_view to_string(JobType t);
std::string_view to_string(JobState s);
Role parse_role(std::string_view s);
CaseStatus parse_case_status(std::string_view s);
RevisionKind parse_revision_kind(std::string_view s);
JobType parse_job_type(std::string_view s);
JobState parse_job_state(std::string_view s);

// Case workflow. Allowed: new -> presegmented | in_progress; presegmented -> in_progress;
// in_progress -> submitted; submitted -> validated | rejected | in_progress (withdrawn);
// rejected -> in_progress; validated -> in_progress (reopened). Anything else is a Conflict.
// (Who may make a transition is the caller's permission check, not the store's.)
bool is_allowed_transition(CaseStatus from, CaseStatus to);

// ---------------------------------------------------------------------------------------------
// Records

struct User {
  Id id = 0;
  std::string username;  // [A-Za-z0-9._-], 1..64 characters, unique
  Role role = Role::Annotator;
  bool disabled = false;
  TimeMs created_ms = 0;
  TimeMs password_changed_ms = 0;
};

struct Session {
  Id id = 0;
  Id user_id = 0;
  TimeMs created_ms = 0;
  TimeMs expires_ms = 0;
  std::string csrf_token;  // compare in constant time (constant_time_equal)
};

// Returned once, at creation: the plain token is never stored (only its SHA-256).
struct NewSession {
  std::string token;  // 43 characters of URL-safe base64 (256 random bits)
  Session session;
};

struct SessionUser {
  Session session;
  User user;
};

struct Patient {
  Id id = 0;
  std::string pseudonym;  // unique; never a real identifier
  TimeMs created_ms = 0;
};

struct Study {
  Id id = 0;
  Id patient_id = 0;
  std::string study_key;    // pseudonymous key, unique per patient (e.g. a hashed StudyInstanceUID)
  std::string description;  // free text already stripped of identifiers by the caller
  TimeMs created_ms = 0;
};

struct Image {
  Id id = 0;
  std::optional<Id> study_id;
  std::string sha256;  // hex of the stored .nii.gz bytes; unique: each image is stored once
  std::string path;    // absolute: DIR/images/<sha256>.nii.gz
  std::int64_t file_bytes = 0;
  std::string modality;                    // "CT", "MR", "PT", ... (free text, upper case)
  std::vector<std::string> channel_names;  // one per channel, in order
  std::array<std::int64_t, 3> size{{0, 0, 0}};
  std::array<double, 3> spacing_mm{{0, 0, 0}};
  bool demo = false;  // synthetic demo data, clearly marked
  TimeMs created_ms = 0;
};

struct NewImage {
  std::optional<Id> study_id;
  std::string sha256;  // from Store::put_image_bytes / put_image_file (file must already exist)
  std::string modality;
  std::vector<std::string> channel_names;
  std::array<std::int64_t, 3> size{{0, 0, 0}};
  std::array<double, 3> spacing_mm{{0, 0, 0}};
  bool demo = false;
};

struct Case {
  Id id = 0;
  std::string name;  // unique display name ("demo_ct_001", nnU-Net case id); no identifiers
  Id image_id = 0;
  CaseStatus status = CaseStatus::New;
  std::optional<Id> assignee_user_id;
  double editing_seconds = 0;
  std::optional<double> uncertainty;  // case score from the model (higher = less sure)
  std::optional<double> al_rank;      // active-learning rank (lower = label first)
  std::optional<Id> current_revision_id;
  std::string status_comment;  // comment of the last status change (reason for rejection)
  bool demo = false;           // copied from the image
  TimeMs created_ms = 0;
  TimeMs updated_ms = 0;
};

struct NewCase {
  std::string name;
  Id image_id = 0;
  std::optional<Id> assignee_user_id;
};

// One row per status change (and assignment change), oldest first.
struct CaseEvent {
  Id id = 0;
  Id case_id = 0;
  std::string event;  // "status" | "assign"
  std::optional<CaseStatus> from_status;
  std::optional<CaseStatus> to_status;
  std::optional<Id> assignee_user_id;  // for "assign"
  std::optional<Id> user_id;           // who did it (nullopt: system / a job)
  std::string comment;
  TimeMs time_ms = 0;
};

enum class CaseSort { Id, Name, Updated, Uncertainty, AlRank, Status };

struct CaseFilter {
  std::optional<CaseStatus> status;
  std::optional<Id> assignee_user_id;
  bool unassigned_only = false;
  std::optional<bool> demo;
  CaseSort sort = CaseSort::Id;
  bool descending = false;  // nulls always sort last
  int limit = 100;          // 1..1000
  int offset = 0;
};

struct CaseList {
  std::vector<Case> items;
  std::int64_t total = 0;  // matching rows ignoring limit/offset
};

struct LabelRevision {
  Id id = 0;
  Id case_id = 0;
  Id image_id = 0;
  std::optional<Id> parent_id;
  std::optional<Id> author_user_id;  // a person, or
  std::string model_name;            // a model (kind ai): name + version
  std::string model_version;
  RevisionKind kind = RevisionKind::Manual;
  TimeMs created_ms = 0;
  std::int64_t voxel_count = 0;  // foreground voxels
  double volume_ml = 0;
  std::string sha256;  // of the stored .nii.gz bytes
  std::string path;    // absolute: DIR/labels/<sha256>.nii.gz
  std::int64_t file_bytes = 0;
  std::string note;
};

struct NewRevision {
  Id case_id = 0;
  // Optimistic concurrency: must equal the case's current revision (nullopt: the case has none
  // yet), else Error(Conflict). The new revision's parent is that revision; it becomes current.
  std::optional<Id> expected_parent_id;
  std::optional<Id> author_user_id;
  std::string model_name;
  std::string model_version;
  RevisionKind kind = RevisionKind::Manual;
  std::int64_t voxel_count = 0;
  double volume_ml = 0;
  std::string sha256;  // from Store::put_label_bytes (file must already exist and be durable)
  std::string note;
};

struct Job {
  Id id = 0;
  JobType type = JobType::Presegment;
  JobState state = JobState::Queued;
  int priority = 0;     // JobPriority value; lower runs first
  double progress = 0;  // 0..1
  std::string message;  // latest progress message
  std::string error;    // set when failed
  std::optional<Id> owner_user_id;
  std::optional<Id> case_id;
  bool cancel_requested = false;
  bool restartable = true;  // re-queued (not failed) when found running after a crash
  int attempts = 0;         // times it was claimed
  TimeMs created_ms = 0;
  std::optional<TimeMs> started_ms;
  std::optional<TimeMs> finished_ms;
  std::string params_json = "{}";
  std::string result_json = "{}";
};

struct NewJob {
  JobType type = JobType::Presegment;
  JobPriority priority = JobPriority::Presegment;
  std::optional<Id> owner_user_id;
  std::optional<Id> case_id;
  bool restartable = true;
  std::string params_json = "{}";  // must be a JSON object
};

struct JobFilter {
  std::optional<JobState> state;
  std::optional<JobType> type;
  std::optional<Id> owner_user_id;
  std::optional<Id> case_id;
  int limit = 100;  // newest first
  int offset = 0;
};

struct Model {
  Id id = 0;
  std::string name;                  // family, e.g. "lgg-flair-3d"
  std::string version;               // unique with name
  std::string path;                  // model bundle folder
  std::string metadata_json = "{}";  // modality, channels, labels, ... (from bundle.json)
  bool active = false;               // at most one active version per name
  TimeMs created_ms = 0;
};

struct AuditEntry {
  std::optional<Id> user_id;
  std::string actor;   // username, "system", or model name@version; who acted
  std::string action;  // "login", "logout", "view", "download", "save", "status", "export", "admin.user_add", ...
  std::optional<Id> case_id;
  std::string outcome = "ok";      // "ok" | "denied" | "failed" | "error"
  std::string detail_json = "{}";  // a JSON object; never patient identifiers
};

struct AuditRecord {
  std::int64_t seq = 0;  // 1, 2, 3, ... without gaps
  TimeMs time_ms = 0;
  std::optional<Id> user_id;
  std::string actor;
  std::string action;
  std::optional<Id> case_id;
  std::string outcome;
  std::string detail_json;
  std::string prev_hash;  // hex; 64 zeros for seq 1
  std::string hash;       // hex SHA-256(prev_hash || canonical row)
};

struct AuditQuery {
  std::optional<Id> user_id;
  std::optional<Id> case_id;
  std::string action;  // exact match when non-empty
  std::optional<std::int64_t> after_seq;
  int limit = 100;  // newest first
};

struct AuditVerifyResult {
  bool intact = true;
  std::int64_t rows_checked = 0;
  std::optional<std::int64_t> first_broken_seq;  // set when !intact
  std::string reason;                            // what is wrong with that row
};

// A file stored durably (temp file in the same folder, fsync, rename, fsync folder).
struct StoredFile {
  std::string sha256;  // hex
  std::string path;    // absolute
  std::int64_t file_bytes = 0;
};

// ---------------------------------------------------------------------------------------------
// Transactions

namespace detail {
struct Connection;
}

class ReadTxn {
 public:
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;

  // Users. get_* throw Error(NotFound) naming the id; find_* return nullopt.
  User get_user(Id id);
  std::optional<User> find_user(std::string_view username);
  std::vector<User> list_users();
  bool any_admin();

  // Sessions: nullopt when the token is unknown, expired, or its user is disabled.
  std::optional<SessionUser> find_session(std::string_view token);

  // Login throttling: milliseconds until another attempt for this username or this IP is
  // accepted (0 = now). Five failures are free; then 1 s, 2 s, 4 s, ... capped at 15 min.
  std::int64_t login_retry_after_ms(std::string_view username, std::string_view ip);

  Patient get_patient(Id id);
  std::optional<Patient> find_patient(std::string_view pseudonym);
  Study get_study(Id id);
  std::vector<Study> list_studies(Id patient_id);
  Image get_image(Id id);
  std::optional<Image> find_image_by_hash(std::string_view sha256);

  Case get_case(Id id);
  std::optional<Case> find_case(std::string_view name);
  CaseList list_cases(const CaseFilter& filter);
  // Next case for this user: their own open cases first (in_progress, rejected, presegmented,
  // new), then unassigned ones; by active-learning rank, then uncertainty (highest first), then id.
  std::optional<Case> next_case(Id user_id);
  std::vector<CaseEvent> case_history(Id case_id);

  LabelRevision get_revision(Id id);
  std::vector<LabelRevision> list_revisions(Id case_id);  // oldest first
  // The first revision of the case with kind ai (the AI original), if any.
  std::optional<LabelRevision> first_ai_revision(Id case_id);

  Job get_job(Id id);
  std::vector<Job> list_jobs(const JobFilter& filter);
  // Jobs in `state`, of the given types only when `types` is not empty (a worker's lane).
  std::int64_t count_jobs(JobState state, const std::vector<JobType>& types = {});

  Model get_model(Id id);
  std::vector<Model> list_models();
  std::optional<Model> active_model(std::string_view name);

  std::vector<AuditRecord> list_audit(const AuditQuery& query);

 protected:
  friend class Store;
  ReadTxn(detail::Connection& c, const std::string& data_dir, TimeMs now_ms);
  detail::Connection& c_;
  const std::string& data_dir_;
  TimeMs now_ms_;  // one clock reading per transaction attempt
};

class WriteTxn : public ReadTxn {
 public:
  // Users. password_hash comes from hash_password(). Duplicate username -> Conflict.
  User add_user(std::string_view username, Role role, const std::string& password_hash);
  void set_password_hash(Id user_id, const std::string& password_hash);  // also ends their sessions
  void set_user_disabled(Id user_id, bool disabled);                     // disabling ends sessions
  void set_user_role(Id user_id, Role role);

  NewSession create_session(Id user_id, std::int64_t ttl_ms);
  void delete_session(std::string_view token);  // logout; unknown token is not an error
  int delete_user_sessions(Id user_id);
  int purge_expired_sessions();

  void record_login_failure(std::string_view username, std::string_view ip);
  // After a successful login: clears the username's counter (the address's counter decays by
  // itself, so one's own login cannot reset an address that guesses other accounts).
  void clear_login_failures(std::string_view username, std::string_view ip);

  Patient add_patient(std::string_view pseudonym);  // returns the existing row if present
  Study add_study(Id patient_id, std::string_view study_key, std::string_view description);  // idem
  // Returns the existing image when one with this sha256 is already stored (stored once).
  Image add_image(const NewImage& image);
  void set_image_demo(Id image_id, bool demo);

  Case add_case(const NewCase& c);  // duplicate name -> Conflict
  // Enforces is_allowed_transition (Conflict otherwise; rejected needs a non-empty comment ->
  // BadArgument). If expected_from is set and differs from the current status -> Conflict.
  Case set_case_status(Id case_id, CaseStatus to, std::optional<Id> by_user_id, std::string_view comment = {},
                       std::optional<CaseStatus> expected_from = std::nullopt);
  Case assign_case(Id case_id, std::optional<Id> assignee_user_id, std::optional<Id> by_user_id);
  void add_editing_seconds(Id case_id, double seconds);  // seconds in [0, 86400]
  void set_case_scores(Id case_id, std::optional<double> uncertainty, std::optional<double> al_rank);

  // Inserts an immutable revision and points the case at it (see NewRevision). The label file
  // DIR/labels/<sha256>.nii.gz must exist (written by Store::put_label_bytes) -> else IoFailure.
  LabelRevision add_revision(const NewRevision& r);
  // Moves the "current" pointer to an existing revision of the case (revert), nothing is
  // deleted; expected_current as in NewRevision::expected_parent_id.
  Case set_current_revision(Id case_id, Id revision_id, std::optional<Id> expected_current);

  Job enqueue_job(const NewJob& job);
  // Atomically takes the queued job with the lowest priority value (oldest first), optionally
  // only of the given types, and marks it running. nullopt when none is queued.
  std::optional<Job> claim_next_job(const std::vector<JobType>& types = {});
  // Progress in [0,1] (clamped); returns the row so the worker sees cancel_requested.
  Job update_job_progress(Id job_id, double progress, std::string_view message);
  // Final state: succeeded (result_json), failed (error), cancelled. Only from queued/running.
  Job finish_job(Id job_id, JobState state, std::string_view error = {}, std::string_view result_json = "{}");
  // Queued jobs are cancelled at once; running ones get cancel_requested for the worker.
  Job request_job_cancel(Id job_id);

  Model add_model(std::string_view name, std::string_view version, std::string_view path,
                  std::string_view metadata_json = "{}");  // duplicate name+version -> Conflict
  Model activate_model(Id model_id);                       // deactivates the other versions of the same name

  // Appends one hash-chained audit row (in this transaction: it commits with the action).
  AuditRecord append_audit(const AuditEntry& e);

 private:
  friend class Store;
  WriteTxn(detail::Connection& c, const std::string& data_dir, TimeMs now_ms) : ReadTxn(c, data_dir, now_ms) {}
};

// ---------------------------------------------------------------------------------------------
// The store

struct StoreOptions {
  std::string data_dir;
  bool create_if_missing = true;  // a missing/empty DIR gets the latest schema
  // Migrate an older schema (what `tumorlab db upgrade` does). When false, an older schema is
  // Error(SchemaOutdated) naming the versions and the upgrade command; newer is SchemaTooNew.
  bool upgrade = false;
  // Tests only: create/upgrade to this schema version instead of the latest (0 = latest).
  int target_schema_version = 0;
  int busy_timeout_ms = 5000;  // SQLite's own wait per statement
  int busy_retry_ms = 30000;   // total time a transaction keeps retrying before StoreBusy
  // Server mode (what `tumorlab serve` sets): takes an exclusive lock on DIR/server.lock for
  // the Store's lifetime (a second holder -> Error(Unavailable)), then recovers jobs: running
  // ones left by a crash are re-queued, or failed when not restartable (each with an audit
  // row). Off for short-lived tools (`tumorlab user ...`) that may run beside a server.
  bool recover_jobs = false;
  std::function<TimeMs()> now_ms;  // clock; default: system clock
};

struct OpenReport {
  int schema_version = 0;
  int schema_version_before = 0;  // differs when created or upgraded by this open
  bool created = false;
  int jobs_requeued = 0;
  int jobs_failed = 0;
};

struct InitialAdmin {
  bool created = false;
  std::string username;            // "admin"
  std::string generated_password;  // non-empty only when generated: print it once
};

class Store {
 public:
  // Opens (and with create_if_missing creates) DIR/tumorlab.db, DIR/images/, DIR/labels/.
  static Store open(const StoreOptions& options);
  static int latest_schema_version();
  // Schema version of DIR/tumorlab.db without migrating (0 when there is no database).
  static int schema_version_of(const std::string& data_dir);

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const OpenReport& open_report() const;
  const std::string& data_dir() const;
  std::string db_path() const;
  TimeMs now_ms() const;

  template <class F>
  auto read(F&& f) -> std::invoke_result_t<F&, ReadTxn&> {
    using R = std::invoke_result_t<F&, ReadTxn&>;
    if constexpr (std::is_void_v<R>) {
      run_read([&](ReadTxn& t) { f(t); });
    } else {
      std::optional<R> out;
      run_read([&](ReadTxn& t) { out.emplace(f(t)); });
      return std::move(*out);
    }
  }
  template <class F>
  auto write(F&& f) -> std::invoke_result_t<F&, WriteTxn&> {
    using R = std::invoke_result_t<F&, WriteTxn&>;
    if constexpr (std::is_void_v<R>) {
      run_write([&](WriteTxn& t) { f(t); });
    } else {
      std::optional<R> out;
      run_write([&](WriteTxn& t) { out.emplace(f(t)); });
      return std::move(*out);
    }
  }

  // Content-addressed durable files (no transaction; safe to call concurrently; an existing
  // file with the same hash is reused). Use before add_image / add_revision. A crash between
  // the file and its row leaves an unreferenced file (harmless); never a row without its file.
  StoredFile put_image_bytes(const std::string& nii_gz_bytes);
  StoredFile put_image_file(const std::string& source_path);  // copies, hashing as it goes
  StoredFile put_label_bytes(const std::string& nii_gz_bytes);
  std::string image_path(std::string_view sha256) const;
  std::string label_path(std::string_view sha256) const;

  // Convenience: durable label file, then one write transaction with add_revision and, when
  // audit is given, its audit row (case_id filled in, detail gains revision id and sha256).
  LabelRevision save_revision(const NewRevision& r, const std::string& nii_gz_bytes,
                              const std::optional<AuditEntry>& audit = std::nullopt);

  // Users with password hashing done outside the transaction.
  User create_user(std::string_view username, Role role, const std::string& password);
  void change_password(std::string_view username, const std::string& password);
  // The user when the password matches and the account is enabled, else nullopt (the same
  // amount of hashing work is done for unknown users).
  std::optional<User> authenticate(std::string_view username, const std::string& password);
  // When no admin exists: creates "admin" with $TUMORLAB_ADMIN_PASSWORD, or a generated one.
  InitialAdmin ensure_initial_admin();

  AuditRecord audit(const AuditEntry& e);  // one write transaction with one audit row
  AuditVerifyResult verify_audit();        // walks the whole chain in one read transaction

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  void run_read(const std::function<void(ReadTxn&)>& f);
  void run_write(const std::function<void(WriteTxn&)>& f);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Helpers (libsodium)

// Argon2id (crypto_pwhash_str, interactive limits). Passwords: 8..1024 bytes, else BadArgument.
std::string hash_password(const std::string& password);
bool verify_password(const std::string& hash, const std::string& password);
// n characters from [A-Za-z0-9] (no look-alikes removed), from libsodium's CSPRNG.
std::string random_password(int n = 20);
std::string random_token();  // 256 random bits, URL-safe base64 without padding
std::string sha256_hex(std::string_view bytes);
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace tumorlab::store
