// Users, sessions, login throttling, and password authentication.
#include <algorithm>

#include "tumorlab/store/internal.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store {

using detail::Stmt;

namespace {

constexpr const char* kUserCols = "id, username, role, disabled, created_ms, password_changed_ms";

User read_user(const Stmt& s, int c = 0) {
  User u;
  u.id = s.i64(c + 0);
  u.username = s.text(c + 1);
  u.role = parse_role(s.text(c + 2));
  u.disabled = s.i64(c + 3) != 0;
  u.created_ms = s.i64(c + 4);
  u.password_changed_ms = s.i64(c + 5);
  return u;
}

void check_username(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char ch : name)
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                ch == '_' || ch == '-');
  if (!ok)
    throw Error(ErrorCode::BadArgument, "username: expected 1..64 characters from A-Z a-z 0-9 . _ -, got '" +
                                            std::string(name.substr(0, 64)) + "'");
}

void check_hash(const std::string& h) {
  if (h.rfind("$argon2id$", 0) != 0)
    throw Error(ErrorCode::Internal, "password hash: expected an Argon2id string from hash_password");
}

constexpr int kFreeFailures = 5;
constexpr std::int64_t kMaxDelayMs = 15 * 60 * 1000;
constexpr std::int64_t kForgetAfterMs = 24LL * 60 * 60 * 1000;

std::string user_key(std::string_view username) {
  return "user:" + std::string(username);
}
std::string ip_key(std::string_view ip) {
  return "ip:" + std::string(ip);
}

std::int64_t delay_for(std::int64_t failures) {
  if (failures <= kFreeFailures) return 0;
  const std::int64_t n = failures - kFreeFailures - 1;  // the 6th failure waits 1 s
  if (n >= 20) return kMaxDelayMs;
  return std::min<std::int64_t>(1000LL << n, kMaxDelayMs);
}

}  // namespace

// ---- ReadTxn ----------------------------------------------------------------------------------

User ReadTxn::get_user(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kUserCols + " FROM users WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("user", id);
  return read_user(s);
}

std::optional<User> ReadTxn::find_user(std::string_view username) {
  auto s = c_.prepare(std::string("SELECT ") + kUserCols + " FROM users WHERE username = ?1");
  s.bind(1, username);
  if (!s.step()) return std::nullopt;
  return read_user(s);
}

std::vector<User> ReadTxn::list_users() {
  auto s = c_.prepare(std::string("SELECT ") + kUserCols + " FROM users ORDER BY username");
  std::vector<User> out;
  while (s.step()) out.push_back(read_user(s));
  return out;
}

bool ReadTxn::any_admin() {
  auto s = c_.prepare("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1");
  return s.step();
}

std::optional<SessionUser> ReadTxn::find_session(std::string_view token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  auto s = c_.prepare(
      "SELECT s.id, s.user_id, s.created_ms, s.expires_ms, s.csrf_token, u.id, u.username, u.role, "
      "u.disabled, u.created_ms, u.password_changed_ms FROM sessions s JOIN users u ON u.id = "
      "s.user_id WHERE s.token_hash = ?1");
  s.bind(1, sha256_hex(token));
  if (!s.step()) return std::nullopt;
  SessionUser out;
  out.session.id = s.i64(0);
  out.session.user_id = s.i64(1);
  out.session.created_ms = s.i64(2);
  out.session.expires_ms = s.i64(3);
  out.session.csrf_token = s.text(4);
  out.user = read_user(s, 5);
  if (out.session.expires_ms <= now_ms_ || out.user.disabled) return std::nullopt;
  return out;
}

std::int64_t ReadTxn::login_retry_after_ms(std::string_view username, std::string_view ip) {
  std::int64_t wait = 0;
  for (const std::string& key : {user_key(username), ip_key(ip)}) {
    auto s = c_.prepare("SELECT failures, last_failure_ms FROM login_failures WHERE key = ?1");
    s.bind(1, key);
    if (!s.step()) continue;
    const std::int64_t until = s.i64(1) + delay_for(s.i64(0));
    wait = std::max(wait, until - now_ms_);
  }
  return std::max<std::int64_t>(wait, 0);
}

// ---- WriteTxn ---------------------------------------------------------------------------------

User WriteTxn::add_user(std::string_view username, Role role, const std::string& password_hash) {
  check_username(username);
  check_hash(password_hash);
  if (find_user(username)) throw Error(ErrorCode::Conflict, "user '" + std::string(username) + "' already exists");
  auto s = c_.prepare(
      "INSERT INTO users (username, role, password_hash, disabled, created_ms, "
      "password_changed_ms) VALUES (?1, ?2, ?3, 0, ?4, ?4)");
  s.bind(1, username).bind(2, to_string(role)).bind(3, password_hash).bind(4, now_ms_).run();
  return get_user(c_.last_id());
}

void WriteTxn::set_password_hash(Id user_id, const std::string& password_hash) {
  check_hash(password_hash);
  get_user(user_id);
  auto s = c_.prepare("UPDATE users SET password_hash = ?2, password_changed_ms = ?3 WHERE id = ?1");
  s.bind(1, user_id).bind(2, password_hash).bind(3, now_ms_).run();
  delete_user_sessions(user_id);
}

void WriteTxn::set_user_disabled(Id user_id, bool disabled) {
  get_user(user_id);
  auto s = c_.prepare("UPDATE users SET disabled = ?2 WHERE id = ?1");
  s.bind(1, user_id).bind(2, disabled).run();
  if (disabled) delete_user_sessions(user_id);
}

void WriteTxn::set_user_role(Id user_id, Role role) {
  get_user(user_id);
  auto s = c_.prepare("UPDATE users SET role = ?2 WHERE id = ?1");
  s.bind(1, user_id).bind(2, to_string(role)).run();
}

NewSession WriteTxn::create_session(Id user_id, std::int64_t ttl_ms) {
  if (ttl_ms <= 0) throw Error(ErrorCode::BadArgument, "session lifetime: expected > 0 ms");
  User u = get_user(user_id);
  if (u.disabled) throw Error(ErrorCode::Forbidden, "user '" + u.username + "' is disabled");
  NewSession out;
  out.token = random_token();
  out.session.user_id = user_id;
  out.session.created_ms = now_ms_;
  out.session.expires_ms = now_ms_ + ttl_ms;
  out.session.csrf_token = random_token();
  auto s = c_.prepare(
      "INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms, csrf_token) VALUES "
      "(?1, ?2, ?3, ?4, ?5)");
  s.bind(1, sha256_hex(out.token))
      .bind(2, user_id)
      .bind(3, out.session.created_ms)
      .bind(4, out.session.expires_ms)
      .bind(5, out.session.csrf_token)
      .run();
  out.session.id = c_.last_id();
  return out;
}

void WriteTxn::delete_session(std::string_view token) {
  auto s = c_.prepare("DELETE FROM sessions WHERE token_hash = ?1");
  s.bind(1, sha256_hex(token)).run();
}

int WriteTxn::delete_user_sessions(Id user_id) {
  auto s = c_.prepare("DELETE FROM sessions WHERE user_id = ?1");
  s.bind(1, user_id).run();
  return static_cast<int>(c_.changes());
}

int WriteTxn::purge_expired_sessions() {
  auto s = c_.prepare("DELETE FROM sessions WHERE expires_ms <= ?1");
  s.bind(1, now_ms_).run();
  return static_cast<int>(c_.changes());
}

void WriteTxn::record_login_failure(std::string_view username, std::string_view ip) {
  // Forget counters idle for a day, so names invented by a guesser do not pile up.
  auto purge = c_.prepare("DELETE FROM login_failures WHERE last_failure_ms < ?1");
  purge.bind(1, now_ms_ - kForgetAfterMs).run();
  for (const std::string& key : {user_key(username), ip_key(ip)}) {
    auto s = c_.prepare(
        "INSERT INTO login_failures (key, failures, last_failure_ms) VALUES (?1, 1, ?2) "
        "ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN ?2 - last_failure_ms > ?3 THEN 1 "
        "ELSE failures + 1 END, last_failure_ms = ?2");
    s.bind(1, key).bind(2, now_ms_).bind(3, kForgetAfterMs).run();
  }
}

void WriteTxn::clear_login_failures(std::string_view username, std::string_view ip) {
  // A successful login clears the account's counter only: logging in to one's own account must
  // not reset an address that is guessing passwords of others (that counter decays by itself).
  (void)ip;
  auto s = c_.prepare("DELETE FROM login_failures WHERE key = ?1");
  s.bind(1, user_key(username)).run();
}

// ---- Store ------------------------------------------------------------------------------------

std::optional<User> Store::authenticate(std::string_view username, const std::string& password) {
  struct Row {
    User user;
    std::string hash;
  };
  auto row = read([&](ReadTxn& t) -> std::optional<Row> {
    auto s = t.c_.prepare(std::string("SELECT ") + kUserCols + ", password_hash FROM users WHERE username = ?1");
    s.bind(1, username);
    if (!s.step()) return std::nullopt;
    return Row{read_user(s), s.text(6)};
  });
  if (!row) {
    // Same work for an unknown user, so timing does not reveal which usernames exist.
    static const std::string dummy = hash_password("tumorlab-dummy-password");
    verify_password(dummy, password);
    return std::nullopt;
  }
  if (!verify_password(row->hash, password) || row->user.disabled) return std::nullopt;
  return row->user;
}

}  // namespace tumorlab::store
