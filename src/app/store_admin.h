#pragma once
// Administration of a data folder from the command line: schema upgrade, user accounts and
// audit verification. Each call opens the store for just that task (no server lock, so it
// may run beside `tumorlab serve`), and every change is written to the audit trail.

#include <string>
#include <vector>

#include "tumorlab/store/store.h"

namespace tumorlab::app {

struct DbUpgradeReport {
  int schema_before = 0;
  int schema_after = 0;
  bool upgraded = false;  // false: it was already at the latest version
};

// `tumorlab db upgrade`: migrates DIR/tumorlab.db to this tumorlab's schema (after a backup
// copy in DIR/backups/). FileNotFound when there is no database; SchemaTooNew when newer.
DbUpgradeReport db_upgrade(const std::string& data_dir);

// Who runs the command, for the audit trail ("cli:<login name>").
std::string cli_actor();

// `tumorlab user add`: creates the data folder's store if missing. Conflict if the name exists.
store::User user_add(const std::string& data_dir, const std::string& username, const std::string& role,
                     const std::string& password);
std::vector<store::User> user_list(const std::string& data_dir);
void user_passwd(const std::string& data_dir, const std::string& username, const std::string& password);
// Disabling also ends the user's sessions. Refuses to disable the last enabled admin.
store::User user_set_disabled(const std::string& data_dir, const std::string& username, bool disabled);
std::string users_to_text(const std::vector<store::User>& users);
std::string users_to_json(const std::vector<store::User>& users);

// `tumorlab audit verify`.
store::AuditVerifyResult audit_verify(const std::string& data_dir);

}  // namespace tumorlab::app
