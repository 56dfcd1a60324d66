#include "tumorlab/app/store_admin.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "tumorlab/core/error.h"

namespace tumorlab::app {
namespace {

store::Store open_existing(const std::string& data_dir) {
  store::StoreOptions o;
  o.data_dir = data_dir;
  o.create_if_missing = false;
  return store::Store::open(o);
}

store::User need_user(store::ReadTxn& t, const std::string& username) {
  auto u = t.find_user(username);
  if (!u) throw Error(ErrorCode::NotFound, "user '" + username + "' not found");
  return *u;
}

store::AuditEntry admin_entry(const char* action, const nlohmann::json& detail) {
  store::AuditEntry a;
  a.actor = cli_actor();
  a.action = action;
  a.detail_json = detail.dump();
  return a;
}

std::string iso_time(store::TimeMs ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string cli_actor() {
  std::string name;
  if (const passwd* pw = ::getpwuid(::geteuid())) name = pw->pw_name;
  if (name.empty()) name = "uid" + std::to_string(::geteuid());
  return "cli:" + name.substr(0, 64);
}

DbUpgradeReport db_upgrade(const std::string& data_dir) {
  store::StoreOptions o;
  o.data_dir = data_dir;
  o.create_if_missing = false;
  o.upgrade = true;
  store::Store s = store::Store::open(o);
  DbUpgradeReport r;
  r.schema_before = s.open_report().schema_version_before;
  r.schema_after = s.open_report().schema_version;
  r.upgraded = r.schema_after != r.schema_before;
  if (r.upgraded) s.audit(admin_entry("admin.db_upgrade", {{"from", r.schema_before}, {"to", r.schema_after}}));
  return r;
}

store::User user_add(const std::string& data_dir, const std::string& username, const std::string& role,
                     const std::string& password) {
  const store::Role r = store::parse_role(role);
  store::StoreOptions o;
  o.data_dir = data_dir;
  store::Store s = store::Store::open(o);
  const std::string hash = store::hash_password(password);  // slow: outside the transaction
  return s.write([&](store::WriteTxn& t) {
    store::User u = t.add_user(username, r, hash);
    t.append_audit(admin_entry("admin.user_add", {{"username", username}, {"role", role}}));
    return u;
  });
}

std::vector<store::User> user_list(const std::string& data_dir) {
  store::Store s = open_existing(data_dir);
  return s.read([](store::ReadTxn& t) { return t.list_users(); });
}

void user_passwd(const std::string& data_dir, const std::string& username, const std::string& password) {
  store::Store s = open_existing(data_dir);
  const std::string hash = store::hash_password(password);
  s.write([&](store::WriteTxn& t) {
    const store::User u = need_user(t, username);
    t.set_password_hash(u.id, hash);
    t.append_audit(admin_entry("admin.user_passwd", {{"username", username}}));
  });
}

store::User user_set_disabled(const std::string& data_dir, const std::string& username, bool disabled) {
  store::Store s = open_existing(data_dir);
  return s.write([&](store::WriteTxn& t) {
    const store::User u = need_user(t, username);
    if (disabled && u.role == store::Role::Admin && !u.disabled) {
      int enabled_admins = 0;
      for (const auto& other : t.list_users()) enabled_admins += other.role == store::Role::Admin && !other.disabled;
      if (enabled_admins <= 1)
        throw Error(ErrorCode::Conflict, "user '" + username + "' is the last enabled admin; add another admin first");
    }
    t.set_user_disabled(u.id, disabled);
    t.append_audit(admin_entry(disabled ? "admin.user_disable" : "admin.user_enable", {{"username", username}}));
    return t.get_user(u.id);
  });
}

std::string users_to_text(const std::vector<store::User>& users) {
  std::string out = "username                         role       status    created\n";
  for (const auto& u : users) {
    char line[256];
    std::snprintf(line, sizeof line, "%-32s %-10s %-9s %s\n", u.username.c_str(),
                  std::string(store::to_string(u.role)).c_str(), u.disabled ? "disabled" : "enabled",
                  iso_time(u.created_ms).c_str());
    out += line;
  }
  out += std::to_string(users.size()) + (users.size() == 1 ? " user\n" : " users\n");
  return out;
}

std::string users_to_json(const std::vector<store::User>& users) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& u : users)
    arr.push_back({{"id", u.id},
                   {"username", u.username},
                   {"role", std::string(store::to_string(u.role))},
                   {"disabled", u.disabled},
                   {"created", iso_time(u.created_ms)}});
  return arr.dump(2) + "\n";
}

store::AuditVerifyResult audit_verify(const std::string& data_dir) {
  store::Store s = open_existing(data_dir);
  return s.verify_audit();
}

}  // namespace tumorlab::app
