// HttpServer in-process on 127.0.0.1 (port 0) with routes that fail in every way a handler can:
// each becomes a JSON error with the status from the error table, and the server keeps serving.
#include "tumorlab/server/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

// Routes are declared with designated initializers, as in src/server/api_routes.cpp.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

using namespace tumorlab;
using namespace tumorlab::server;

namespace {

struct Running {
  Router router;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  int port = 0;
  explicit Running(ServerOptions o = {}) {
    router.add({.method = "GET",
                .path = "/api/throws/std",
                .roles = kPublic,
                .summary = "bug",
                .handler = [](Request&) -> Response { throw std::runtime_error("vector index out of range"); }});
    router.add({.method = "GET",
                .path = "/api/throws/internal",
                .roles = kPublic,
                .summary = "bug",
                .handler = [](Request&) -> Response { throw Error(ErrorCode::Internal, "invariant broken"); }});
    router.add({.method = "GET",
                .path = "/api/throws/io",
                .roles = kPublic,
                .summary = "disk",
                .handler = [](Request&) -> Response { throw Error(ErrorCode::IoFailure, "disk full"); }});
    router.add({.method = "POST",
                .path = "/api/throws/json",
                .roles = kPublic,
                .summary = "field type",
                .handler = [](Request& r) {
                  return Response::json_body({{"n", r.json_body().at("n").get<int>() + 1}});
                }});
    router.add(
        {.method = "GET", .path = "/api/private", .roles = kAdminOnly, .summary = "admin", .handler = [](Request&) {
           return Response::json_body({{"secret", 1}});
         }});
    o.host = "127.0.0.1";
    o.port = 0;
    // No sessions here: the real resolver (app sessions) is covered by tests/integration/server_test.cpp.
    server = std::make_unique<HttpServer>(o, router, [](const std::string&) { return std::optional<Principal>(); });
    port = server->bind();
    thread = std::thread([this] { server->serve(); });
  }
  ~Running() {
    server->stop();
    thread.join();
  }
};

nlohmann::json body(const httplib::Result& r) {
  return nlohmann::json::parse(r->body);
}

}  // namespace

TEST(HttpServer, HandlerExceptions_BecomeJsonErrors_AndServingGoesOn) {
  Running s;
  httplib::Client c("127.0.0.1", s.port);
  auto r = c.Get("/api/throws/std");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(body(r)["error"]["code"], "Internal");
  // The message for a bug does not leak internals; it carries a reference to the log.
  EXPECT_EQ(r->body.find("vector index"), std::string::npos);
  EXPECT_NE(r->body.find("ref "), std::string::npos);
  r = c.Get("/api/throws/internal");
  EXPECT_EQ(r->status, 500);
  r = c.Get("/api/throws/io");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body(r)["error"]["code"], "IoFailure");
  EXPECT_EQ(body(r)["error"]["message"], "disk full");
  r = c.Post("/api/throws/json", R"({"n": "seven"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["code"], "BadArgument");
  r = c.Post("/api/throws/json", R"({"n": 7})", "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["n"], 8);
  // Security headers on every answer.
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
  // Unknown routes, wrong methods, and non-public routes without a session.
  EXPECT_EQ(c.Get("/api/none")->status, 404);
  EXPECT_EQ(c.Delete("/api/throws/io")->status, 405);
  EXPECT_EQ(c.Get("/api/private")->status, 401);
  EXPECT_EQ(c.Get("/api/private", {{"Authorization", "Bearer anything"}})->status, 401);
}

TEST(HttpServer, UploadLimit_Gives413Json) {
  ServerOptions o;
  o.max_upload_bytes = 1000;
  Running s(o);
  httplib::Client c("127.0.0.1", s.port);
  auto r = c.Post("/api/throws/json", std::string(5000, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(body(r)["error"]["code"], "TooLarge");
  EXPECT_EQ(c.Post("/api/throws/json", R"({"n": 1})", "application/json")->status, 200);
}

TEST(HttpServer, BadOptions_AreInputErrors) {
  Router router;
  ServerOptions o;
  o.tls_cert = "/nonexistent/cert.pem";
  EXPECT_THROW(HttpServer(o, router, nullptr), Error);  // key missing
  o.tls_key = "/nonexistent/key.pem";
  try {
    HttpServer h(o, router, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::FileNotFound);
  }
  ServerOptions w;
  w.workers = 0;
  EXPECT_THROW(HttpServer(w, router, nullptr), Error);
}
