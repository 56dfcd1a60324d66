#pragma once
// Lab: one open data folder (the store plus the files beside it), shared by the use cases that
// the server and the command line call. Use cases take a Lab and an Actor (who is asking), do
// their permission checks, combine store + io + imaging + edit, and write the audit trail.
// Their results are JSON objects in the shape of the REST API (docs/api.md), so the server
// stays a thin layer and never sees the store's types.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tumorlab/core/geometry.h"

namespace tumorlab::store {
class Store;
struct AuditEntry;
}

namespace tumorlab::app {

struct LabOptions {
  std::filesystem::path data_dir;
  // Server mode: exclusive lock on the folder and recovery of jobs a crash left running.
  bool server_mode = true;
  // Create the first admin when there is none ($TUMORLAB_ADMIN_PASSWORD or a generated one).
  bool ensure_admin = true;
  // How long a login session lasts (milliseconds; sessions also end at logout).
  std::int64_t session_ttl_ms = 12ll * 3600 * 1000;
};

struct LabOpened {
  bool created = false;  // the database was created by this open
  int schema_version = 0;
  int jobs_requeued = 0;
  int jobs_failed = 0;
  bool admin_created = false;
  std::string admin_username;
  std::string admin_generated_password;  // non-empty once, when generated: print it once
};

// Who is asking: the logged-in user (from the session) and the client address.
struct Actor {
  std::int64_t user_id = 0;
  std::string username;
  std::string role;  // "admin" | "reviewer" | "annotator"
  std::string ip;
  bool is_admin() const { return role == "admin"; }
  bool is_reviewer_or_admin() const { return role == "admin" || role == "reviewer"; }
};

// The audit row of an action by `actor`: its user id (when a user), its name ("anonymous" when it
// has none), the case, the outcome ("ok", "denied", "failed") and `detail` (a JSON object, never
// patient identifiers), with the client's address added when the action came over HTTP.
store::AuditEntry audit_entry(const Actor& actor, std::string action, std::optional<std::int64_t> case_id = std::nullopt,
                              nlohmann::json detail = nlohmann::json::object(), std::string outcome = "ok");

class Lab {
 public:
  // Errors: IoFailure (cannot create the folder), Unavailable (another server holds it),
  // SchemaOutdated / SchemaTooNew, BadArgument (TUMORLAB_ADMIN_PASSWORD too short).
  static std::unique_ptr<Lab> open(const LabOptions& options);
  // The data folder as a command-line verb or a test opens it, beside a server that may be
  // running on it: no folder lock, no job recovery, no first admin (server_mode and ensure_admin
  // false). The same errors.
  static std::unique_ptr<Lab> open_beside_server(const std::filesystem::path& data_dir);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const LabOpened& opened() const;
  const std::filesystem::path& data_dir() const;
  std::int64_t session_ttl_ms() const;
  store::Store& store();
  // Folder for request scratch files (inside the data folder, so renames stay on one disk).
  std::filesystem::path scratch_dir() const;
  // Grid of a stored image, read once and cached (labels are validated against it).
  Geometry image_geometry(std::int64_t image_id);

 private:
  struct Impl;
  explicit Lab(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tumorlab::app
