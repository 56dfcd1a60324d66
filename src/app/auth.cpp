#include "tumorlab/app/auth.h"

#include "tumorlab/app/json_util.h"
#include "tumorlab/core/error.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
using nlohmann::json;

namespace {

json user_json(const store::User& u) {
  return json{{"id", u.id},
              {"username", u.username},
              {"role", std::string(store::to_string(u.role))},
              {"disabled", u.disabled},
              {"created_ms", u.created_ms}};
}

void require_admin(const Actor& actor, const char* what) {
  if (!actor.is_admin()) throw Error(ErrorCode::Forbidden, std::string(what) + ": admin only");
}

}  // namespace

LoginResult login(Lab& lab, const std::string& username, const std::string& password, const std::string& ip) {
  LoginResult out;
  auto& st = lab.store();
  if (username.empty() || username.size() > 64)
    throw Error(ErrorCode::BadArgument, "username: expected 1..64 characters");
  if (password.empty() || password.size() > 1024)
    throw Error(ErrorCode::BadArgument, "password: expected 1..1024 bytes");
  Actor who;
  who.username = username;
  who.ip = ip;
  std::int64_t wait = st.read([&](store::ReadTxn& t) { return t.login_retry_after_ms(username, ip); });
  if (wait > 0) {
    st.audit(audit_entry(who, "login", std::nullopt, {{"reason", "throttled"}}, "denied"));
    out.status = LoginResult::Status::Throttled;
    out.retry_after_ms = wait;
    return out;
  }
  auto user = st.authenticate(username, password);
  if (!user) {
    st.write([&](store::WriteTxn& t) {
      t.record_login_failure(username, ip);
      t.append_audit(audit_entry(who, "login", std::nullopt, {{"reason", "bad credentials"}}, "denied"));
    });
    out.status = LoginResult::Status::BadCredentials;
    return out;
  }
  who.user_id = user->id;
  who.role = std::string(store::to_string(user->role));
  auto ns = st.write([&](store::WriteTxn& t) {
    t.clear_login_failures(username, ip);
    auto s = t.create_session(user->id, lab.session_ttl_ms());
    t.append_audit(audit_entry(who, "login"));
    return s;
  });
  out.status = LoginResult::Status::Ok;
  out.token = ns.token;
  out.session = SessionView{user->id, user->username, who.role, ns.session.csrf_token, ns.session.expires_ms};
  return out;
}

std::optional<SessionView> find_session(Lab& lab, const std::string& token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  auto su = lab.store().read([&](store::ReadTxn& t) { return t.find_session(token); });
  if (!su) return std::nullopt;
  return SessionView{su->user.id, su->user.username, std::string(store::to_string(su->user.role)),
                     su->session.csrf_token, su->session.expires_ms};
}

void logout(Lab& lab, const std::string& token, const Actor& actor) {
  lab.store().write([&](store::WriteTxn& t) {
    t.delete_session(token);
    t.append_audit(audit_entry(actor, "logout"));
  });
}

json list_users(Lab& lab, const Actor& actor) {
  auto users = lab.store().read([](store::ReadTxn& t) { return t.list_users(); });
  json items = json::array();
  for (const auto& u : users) items.push_back(user_json(u));
  return json{{"items", items}};
}

json create_user(Lab& lab, const Actor& actor, const json& body) {
  require_admin(actor, "create user");
  std::string username = json_string(body, "username");
  store::Role role = store::parse_role(json_string(body, "role"));
  std::string password = json_string(body, "password");
  auto& st = lab.store();
  store::User u = st.create_user(username, role, password);
  st.audit(audit_entry(actor, "admin.user_add", std::nullopt,
                       {{"username", username}, {"role", std::string(store::to_string(role))}}));
  return user_json(u);
}

json update_user(Lab& lab, const Actor& actor, std::int64_t user_id, const json& body) {
  require_admin(actor, "update user");
  auto& st = lab.store();
  store::User u = st.read([&](store::ReadTxn& t) { return t.get_user(user_id); });
  json changed = json::object();
  if (body.contains("password")) {
    st.change_password(u.username, json_string(body, "password"));
    changed["password"] = "changed";
  }
  std::optional<store::Role> role;
  if (body.contains("role")) role = store::parse_role(json_string(body, "role"));
  std::optional<bool> disabled;
  if (body.contains("disabled")) disabled = json_bool(body, "disabled");
  if (disabled && *disabled && user_id == actor.user_id)
    throw Error(ErrorCode::Conflict, "disabled: an admin cannot disable their own account");
  u = st.write([&](store::WriteTxn& t) {
    if (role) t.set_user_role(user_id, *role);
    if (disabled) t.set_user_disabled(user_id, *disabled);
    if (role) changed["role"] = std::string(store::to_string(*role));
    if (disabled) changed["disabled"] = *disabled;
    changed["username"] = u.username;
    t.append_audit(audit_entry(actor, "admin.user_update", std::nullopt, changed));
    return t.get_user(user_id);
  });
  return user_json(u);
}

}  // namespace tumorlab::app
