#pragma once
// The HTTP(S) front of `tumorlab serve`: turns requests into our Request type, finds the route,
// enforces authentication, roles and CSRF as the route declares them, runs the handler and turns
// every outcome (including exceptions) into a response. Unknown /api paths are 404 JSON; other
// GET paths are served from a folder of static files listed once at start-up (never a path built
// from the request). httplib stays inside http_server.cpp.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tumorlab/server/route.h"

namespace tumorlab::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;       // 0: any free port (see HttpServer::bind)
  std::string tls_cert;  // PEM files; both or neither
  std::string tls_key;
  std::int64_t max_upload_bytes = 512ll << 20;
  int workers = 8;      // request threads (event streams hold one each while open)
  std::string web_dir;  // static files of the browser UI; empty or missing: none
};

// Session token -> caller (nullopt: unknown, expired or disabled).
using SessionResolver = std::function<std::optional<Principal>(const std::string& token)>;

// Cookie names used by the server.
inline constexpr const char* kSessionCookie = "tl_session";
inline constexpr const char* kCsrfCookie = "tl_csrf";
// Set-Cookie values for a new session (HttpOnly for the session, readable CSRF token for the
// double submit, SameSite=Strict, Secure under TLS) and for clearing them on logout.
std::string session_cookie(const std::string& token, std::int64_t max_age_s, bool tls);
std::string csrf_cookie(const std::string& csrf, std::int64_t max_age_s, bool tls);

class HttpServer {
 public:
  // Throws Error(BadArgument) when the TLS files cannot be loaded.
  HttpServer(ServerOptions options, const Router& router, SessionResolver sessions);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (useful with port 0). Error(Unavailable) when
  // the address cannot be bound.
  int bind();
  // Serves until stop(); returns when every worker has finished.
  void serve();
  // Thread-safe and prompt: stops accepting, ends event streams, lets running requests finish.
  void stop();
  bool stopping() const;
  int static_file_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT and SIGTERM in the calling thread. Call first thing in `serve`, before any
// thread is started, so that every thread inherits the mask and only serve_until_signal's
// waiter receives them.
void block_shutdown_signals();
// Serves, and stops gracefully on the first SIGINT or SIGTERM. Returns that signal number (0
// when stopped otherwise).
int serve_until_signal(HttpServer& server);

}  // namespace tumorlab::server
