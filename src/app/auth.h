#pragma once
// Authentication use cases: login with throttling, session lookup, logout, users. Every login
// attempt and every admin action goes to the audit trail.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tumorlab/app/lab.h"

namespace tumorlab::app {

// Sessions last 12 hours from login.
// Sessions last Lab::session_ttl_ms() (LabOptions, `serve --session-ttl`; 12 h by default).

struct SessionView {
  std::int64_t user_id = 0;
  std::string username;
  std::string role;
  std::string csrf_token;
  std::int64_t expires_ms = 0;
};

struct LoginResult {
  enum class Status { Ok, BadCredentials, Throttled };
  Status status = Status::BadCredentials;
  std::int64_t retry_after_ms = 0;  // for Throttled
  std::string token;                // for Ok: the opaque session token (shown once)
  SessionView session;
};

// Throttled attempts are refused before the password is checked (and audited as denied).
LoginResult login(Lab& lab, const std::string& username, const std::string& password, const std::string& ip);
// nullopt: unknown, expired or disabled.
std::optional<SessionView> find_session(Lab& lab, const std::string& token);
void logout(Lab& lab, const std::string& token, const Actor& actor);

// Users: {id, username, role, disabled, created_ms}.
nlohmann::json list_users(Lab& lab, const Actor& actor);
// Admin only (Forbidden otherwise). body: {username, role, password}.
nlohmann::json create_user(Lab& lab, const Actor& actor, const nlohmann::json& body);
// Admin only. body: any of {role, disabled, password}.
nlohmann::json update_user(Lab& lab, const Actor& actor, std::int64_t user_id, const nlohmann::json& body);

}  // namespace tumorlab::app
