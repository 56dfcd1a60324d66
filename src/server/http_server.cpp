#include "tumorlab/server/http_server.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "tumorlab/core/log.h"

namespace tumorlab::server {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  std::size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::map<std::string, std::string> parse_cookies(const std::string& header) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start < header.size()) {
    std::size_t end = header.find(';', start);
    if (end == std::string::npos) end = header.size();
    std::string part = header.substr(start, end - start);
    std::size_t eq = part.find('=');
    if (eq != std::string::npos) out.emplace(trim(part.substr(0, eq)), trim(part.substr(eq + 1)));
    start = end + 1;
  }
  return out;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string mime_type(const fs::path& p) {
  static const std::map<std::string, std::string> types{{".html", "text/html; charset=utf-8"},
                                                        {".js", "text/javascript; charset=utf-8"},
                                                        {".mjs", "text/javascript; charset=utf-8"},
                                                        {".css", "text/css; charset=utf-8"},
                                                        {".json", "application/json"},
                                                        {".map", "application/json"},
                                                        {".svg", "image/svg+xml"},
                                                        {".png", "image/png"},
                                                        {".jpg", "image/jpeg"},
                                                        {".ico", "image/x-icon"},
                                                        {".wasm", "application/wasm"},
                                                        {".woff", "font/woff"},
                                                        {".woff2", "font/woff2"},
                                                        {".txt", "text/plain; charset=utf-8"},
                                                        {".gz", "application/gzip"},
                                                        {".nii", "application/octet-stream"}};
  auto it = types.find(lower(p.extension().string()));
  return it == types.end() ? "application/octet-stream" : it->second;
}

// Error code for a status httplib produced by itself (413 payload, 400 bad request, ...).
ErrorCode code_for_status(int status) {
  switch (status) {
    case 400:
      return ErrorCode::BadArgument;
    case 401:
      return ErrorCode::Unauthenticated;
    case 403:
      return ErrorCode::Forbidden;
    case 404:
      return ErrorCode::NotFound;
    case 405:
      return ErrorCode::MethodNotAllowed;
    case 413:
      return ErrorCode::TooLarge;
    case 414:
      return ErrorCode::BadArgument;
    case 416:
      return ErrorCode::BadArgument;
    case 429:
      return ErrorCode::TooManyRequests;
    case 503:
      return ErrorCode::Unavailable;
    default:
      return status < 500 ? ErrorCode::BadArgument : ErrorCode::Internal;
  }
}

std::string message_for_status(int status) {
  switch (status) {
    case 413:
      return "request body too large (see --max-upload-mb)";
    case 414:
      return "request URI too long";
    case 400:
      return "malformed HTTP request";
    default:
      return "HTTP " + std::to_string(status);
  }
}

}  // namespace

std::string session_cookie(const std::string& token, std::int64_t max_age_s, bool tls) {
  return std::string(kSessionCookie) + "=" + token + "; Path=/; Max-Age=" + std::to_string(max_age_s) +
         "; HttpOnly; SameSite=Strict" + (tls ? "; Secure" : "");
}

std::string csrf_cookie(const std::string& csrf, std::int64_t max_age_s, bool tls) {
  return std::string(kCsrfCookie) + "=" + csrf + "; Path=/; Max-Age=" + std::to_string(max_age_s) +
         "; SameSite=Strict" + (tls ? "; Secure" : "");
}

struct HttpServer::Impl {
  ServerOptions options;
  const Router& router;
  SessionResolver sessions;
  std::unique_ptr<httplib::Server> http;
  bool tls = false;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> error_ref{0};
  // Static files: URL path -> file, listed once at start-up.
  std::map<std::string, fs::path> files;

  Impl(ServerOptions o, const Router& r, SessionResolver s)
      : options(std::move(o)), router(r), sessions(std::move(s)) {}

  void list_static_files() {
    if (options.web_dir.empty()) return;
    std::error_code ec;
    fs::path root = fs::weakly_canonical(options.web_dir, ec);
    if (ec || !fs::is_directory(root)) {
      log_warn("serve: no web UI folder at " + options.web_dir + "; only the API is served");
      return;
    }
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      auto st = it->symlink_status(ec);
      if (ec || !fs::is_regular_file(st)) continue;  // symbolic links are not followed
      std::string rel = fs::relative(it->path(), root, ec).generic_string();
      if (ec || rel.empty() || rel.rfind("..", 0) == 0) continue;
      files["/" + rel] = it->path();
      if (files.size() > 20000) break;
    }
    log_info("serve: " + std::to_string(files.size()) + " static files from " + root.string());
  }

  std::optional<Principal> resolve(const Request& req) {
    std::string auth = req.header("authorization");
    if (auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ") {
      std::string token = trim(auth.substr(7));
      auto p = sessions(token);
      if (p) {
        p->via_bearer = true;
        p->session_token = token;
      }
      return p;
    }
    auto it = req.cookies.find(kSessionCookie);
    if (it != req.cookies.end() && !it->second.empty()) {
      auto p = sessions(it->second);
      if (p) p->session_token = it->second;
      return p;
    }
    return std::nullopt;
  }

  static Response error_response(ErrorCode code, const std::string& message) {
    return Response::json_body(error_body(code, message), error_info(code).http_status);
  }

  Response dispatch(Request& req, std::string& route_label) {
    const bool api = req.path == "/api" || req.path.rfind("/api/", 0) == 0;
    Router::Match m = router.match(req.method, req.path);
    // Outside /api only the registered routes (MONAI Label's /info/, /datastore/, ...) are API;
    // everything else is the web UI's static files.
    if (!api && !m.route && !m.path_known) {
      route_label = "static";
      if (req.method != "GET" && req.method != "HEAD")
        return error_response(ErrorCode::MethodNotAllowed, req.method + " is not allowed outside /api");
      return serve_static(req);
    }
    if (!m.route) {
      route_label = "unknown";
      if (m.path_known) return error_response(ErrorCode::MethodNotAllowed, req.method + " is not allowed on this path");
      return error_response(ErrorCode::NotFound, "no such API route: " + req.method + " " + req.path.substr(0, 200));
    }
    const RouteSpec& route = *m.route;
    route_label = route.method + " " + route.path;
    req.path_params = std::move(m.params);

    req.user = resolve(req);
    if (route.roles != kPublic) {
      if (!req.user) return error_response(ErrorCode::Unauthenticated, "log in first (session cookie or Bearer token)");
      const bool changes_state = req.method != "GET";
      if (changes_state && !route.csrf_exempt && !req.user->via_bearer) {
        // Double submit: the header must carry the session's CSRF token (also in the tl_csrf
        // cookie, which only our own pages can read).
        if (!constant_time_equal(req.header("x-csrf-token"), req.user->csrf_token))
          return error_response(ErrorCode::Forbidden, "missing or wrong X-CSRF-Token header");
      }
      if (!(route.roles & role_bit(req.user->role)))
        return error_response(ErrorCode::Forbidden,
                              "role " + req.user->role + " may not call " + route.method + " " + route.path);
    }
    return route.handler(req);
  }

  Response serve_static(const Request& req) {
    std::string path = req.path == "/" ? "/index.html" : req.path;
    auto it = files.find(path);
    if (it == files.end()) {
      // Client-side routes of the single-page UI (no file extension) get index.html.
      std::string last = path.substr(path.find_last_of('/') + 1);
      if (last.find('.') == std::string::npos) it = files.find("/index.html");
    }
    if (it == files.end()) return error_response(ErrorCode::NotFound, "no such page");
    std::ifstream in(it->second, std::ios::binary);
    if (!in) return error_response(ErrorCode::IoFailure, "cannot read a static file of the web UI");
    std::ostringstream ss;
    ss << in.rdbuf();
    Response r;
    r.content_type = mime_type(it->second);
    r.body = ss.str();
    if (r.content_type.rfind("text/html", 0) == 0) {
      r.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                             "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'");
      r.headers.emplace_back("Cache-Control", "no-cache");
    }
    return r;
  }

  void handle(const httplib::Request& hreq, httplib::Response& hres) {
    auto t0 = std::chrono::steady_clock::now();
    Request req;
    req.method = hreq.method;
    req.path = hreq.path;
    for (const auto& [k, v] : hreq.params) req.query.emplace(k, v);
    for (const auto& [k, v] : hreq.headers) req.headers[lower(k)] = v;
    req.cookies = parse_cookies(req.header("cookie"));
    req.body = hreq.body;
    for (const auto& [field, part] : hreq.files) {
      if (part.filename.empty()) {
        req.form.emplace(field, part.content);
      } else {
        req.files.push_back(UploadedFile{field, part.filename, part.content_type, part.content});
      }
    }
    req.remote_addr = hreq.remote_addr;
    req.tls = tls;

    std::string route_label = "?";
    Response res;
    try {
      res = dispatch(req, route_label);
    } catch (const Error& e) {
      if (e.info().kind == ErrorKind::Internal) {
        auto ref = ++error_ref;
        log_error("serve: internal error #" + std::to_string(ref) + " in " + route_label + ": " + e.what());
        res = error_response(e.code(),
                             "internal error; the server log has the details (ref " + std::to_string(ref) + ")");
      } else {
        if (e.info().kind == ErrorKind::Environment) log_warn("serve: " + route_label + ": " + e.what());
        res = error_response(e.code(), e.what());
      }
    } catch (const nlohmann::json::exception& e) {
      // A field of a JSON body has the wrong type or is missing (handlers use .at / get<T>).
      res = error_response(ErrorCode::BadArgument, std::string("request body: ") + e.what());
    } catch (const std::bad_alloc&) {
      log_error("serve: out of memory in " + route_label);
      res = error_response(ErrorCode::Unavailable, "the server ran out of memory for this request");
    } catch (const std::exception& e) {
      auto ref = ++error_ref;
      log_error("serve: internal error #" + std::to_string(ref) + " in " + route_label + ": " + e.what());
      res = error_response(ErrorCode::Internal,
                           "internal error; the server log has the details (ref " + std::to_string(ref) + ")");
    } catch (...) {
      auto ref = ++error_ref;
      log_error("serve: unknown exception #" + std::to_string(ref) + " in " + route_label);
      res = error_response(ErrorCode::Internal, "internal error (ref " + std::to_string(ref) + ")");
    }
    to_httplib(res, hres);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // Route patterns only: never ids of people, never query strings.
    log_info("serve: " + route_label + " -> " + std::to_string(hres.status) + " (" +
             std::to_string(static_cast<int>(ms)) + " ms)");
  }

  void to_httplib(Response& res, httplib::Response& hres) {
    hres.status = res.status;
    for (const auto& [k, v] : res.headers) hres.headers.emplace(k, v);
    hres.set_header("X-Content-Type-Options", "nosniff");
    hres.set_header("X-Frame-Options", "DENY");
    hres.set_header("Referrer-Policy", "no-referrer");
    if (!hres.has_header("Cache-Control")) hres.set_header("Cache-Control", "no-store");
    if (res.sse) {
      SsePoll poll = std::move(res.sse);
      hres.set_chunked_content_provider("text/event-stream", [this, poll](std::size_t, httplib::DataSink& sink) {
        if (stopping) {
          sink.done();
          return true;
        }
        bool alive = true;
        bool more = false;
        try {
          more = poll([&](const std::string& event, const std::string& data) {
            if (!alive) return;
            std::string msg;
            if (!event.empty()) msg += "event: " + event + "\n";
            for (std::size_t start = 0;;) {
              std::size_t end = data.find('\n', start);
              msg += "data: " + data.substr(start, end == std::string::npos ? std::string::npos : end - start) + "\n";
              if (end == std::string::npos) break;
              start = end + 1;
            }
            msg += "\n";
            if (!sink.write(msg.data(), msg.size())) alive = false;
          });
        } catch (const std::exception& e) {
          log_warn(std::string("serve: event stream ended by an error: ") + e.what());
          more = false;
        }
        if (!alive) return false;
        if (!more || stopping) sink.done();
        return true;
      });
      return;
    }
    if (!res.file_path.empty()) {
      auto in = std::make_shared<std::ifstream>(res.file_path, std::ios::binary);
      std::error_code ec;
      const auto size = fs::file_size(res.file_path, ec);
      if (!*in || ec) {
        hres.status = 503;
        hres.headers.clear();
        hres.set_content(error_body(ErrorCode::IoFailure, "a stored file is missing or unreadable").dump(),
                         "application/json");
        return;
      }
      hres.set_content_provider(static_cast<std::size_t>(size), res.content_type,
                                [in](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                  std::vector<char> buf(std::min<std::size_t>(length, 1 << 20));
                                  in->seekg(static_cast<std::streamoff>(offset));
                                  in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
                                  const auto n = in->gcount();
                                  if (n <= 0) return false;
                                  return sink.write(buf.data(), static_cast<std::size_t>(n));
                                });
      return;
    }
    if (!res.body.empty() || !res.content_type.empty()) hres.set_content(res.body, res.content_type);
  }
};

HttpServer::HttpServer(ServerOptions options, const Router& router, SessionResolver sessions)
    : impl_(std::make_unique<Impl>(std::move(options), router, std::move(sessions))) {
  Impl& d = *impl_;
  if (d.options.tls_cert.empty() != d.options.tls_key.empty())
    throw Error(ErrorCode::BadArgument, "--tls-cert and --tls-key: give both or neither");
  if (!d.options.tls_cert.empty()) {
    for (const auto& f : {d.options.tls_cert, d.options.tls_key})
      if (!fs::is_regular_file(f)) throw Error(ErrorCode::FileNotFound, "TLS file not found: " + f);
    auto ssl = std::make_unique<httplib::SSLServer>(d.options.tls_cert.c_str(), d.options.tls_key.c_str());
    if (!ssl->is_valid())
      throw Error(ErrorCode::BadArgument, "--tls-cert " + d.options.tls_cert + " / --tls-key " + d.options.tls_key +
                                              ": cannot load the certificate and key (expected PEM files that match)");
    d.http = std::move(ssl);
    d.tls = true;
  } else {
    d.http = std::make_unique<httplib::Server>();
  }
  if (d.options.workers < 1 || d.options.workers > 1024)
    throw Error(ErrorCode::BadArgument, "--workers: expected 1..1024, got " + std::to_string(d.options.workers));
  if (d.options.max_upload_bytes < 1) throw Error(ErrorCode::BadArgument, "--max-upload-mb: expected a positive size");
  std::size_t workers = static_cast<std::size_t>(d.options.workers);
  d.http->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  d.http->set_payload_max_length(static_cast<std::size_t>(d.options.max_upload_bytes));
  d.http->set_keep_alive_timeout(2);
  // httplib closes a keep-alive connection after this many requests (default 5); with its short
  // listen backlog, reconnect storms under many clients cost 1 s SYN retransmits.
  d.http->set_keep_alive_max_count(1000);
  // Small JSON answers must not wait for the client's delayed ACK (Nagle: +40 ms per request).
  d.http->set_tcp_nodelay(true);
  d.http->set_read_timeout(30);
  d.http->set_write_timeout(30);
  d.list_static_files();

  auto h = [this](const httplib::Request& req, httplib::Response& res) { impl_->handle(req, res); };
  const std::string any = ".*";
  d.http->Get(any, h);
  d.http->Post(any, h);
  d.http->Put(any, h);
  d.http->Patch(any, h);
  d.http->Delete(any, h);
  d.http->Options(any, h);
  // Responses httplib makes by itself (oversized body, malformed request line, ...) get our
  // JSON error body too.
  d.http->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ErrorCode code = code_for_status(res.status);
    res.set_content(error_body(code, message_for_status(res.status)).dump(), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  d.http->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(error_body(ErrorCode::Internal, "internal error").dump(), "application/json");
  });
}

HttpServer::~HttpServer() {
  if (impl_ && impl_->http && impl_->http->is_running()) impl_->http->stop();
}

int HttpServer::bind() {
  Impl& d = *impl_;
  int port = d.options.port;
  if (port < 0 || port > 65535)
    throw Error(ErrorCode::BadArgument, "--port: expected 0..65535, got " + std::to_string(port));
  if (port == 0) {
    port = d.http->bind_to_any_port(d.options.host);
    if (port <= 0) throw Error(ErrorCode::Unavailable, "cannot listen on " + d.options.host + " (any port)");
  } else if (!d.http->bind_to_port(d.options.host, port)) {
    throw Error(ErrorCode::Unavailable, "cannot listen on " + d.options.host + ":" + std::to_string(port) +
                                            " (address in use, or not an address of this machine)");
  }
  return port;
}

void HttpServer::serve() {
  impl_->http->listen_after_bind();
}

void HttpServer::stop() {
  impl_->stopping = true;
  impl_->http->stop();
}

bool HttpServer::stopping() const {
  return impl_->stopping;
}

int HttpServer::static_file_count() const {
  return static_cast<int>(impl_->files.size());
}

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int serve_until_signal(HttpServer& server) {
  block_shutdown_signals();
  std::atomic<int> got{0};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    // sigtimedwait with a short timeout, so the waiter also ends when the server stops by itself.
    timespec ts{0, 200 * 1000 * 1000};
    while (!done) {
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) {
        got = sig;
        log_info("serve: signal " + std::to_string(sig) + ", shutting down");
        server.stop();
        return;
      }
    }
  });
  server.serve();
  done = true;
  waiter.join();
  return got;
}

}  // namespace tumorlab::server
