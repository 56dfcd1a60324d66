// Router: matching (literal segments beat parameters, 405 vs 404), registration checks, request
// helpers, and the OpenAPI document generated from the declarations.
#include <gtest/gtest.h>

#include "tumorlab/server/route.h"

// Routes are declared with designated initializers, as in src/server/api_routes.cpp.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

using namespace tumorlab;
using namespace tumorlab::server;

namespace {
Handler ok() {
  return [](Request&) { return Response::json_body({{"ok", true}}); };
}
Router sample() {
  Router r;
  r.add({.method = "GET", .path = "/api/cases", .roles = kAnyUser, .tag = "cases", .summary = "list", .handler = ok()});
  r.add({.method = "GET",
         .path = "/api/cases/{case_id}",
         .roles = kAnyUser,
         .tag = "cases",
         .summary = "one",
         .errors = {ErrorCode::NotFound},
         .handler = ok()});
  r.add({.method = "GET",
         .path = "/api/cases/next",
         .roles = kAnyUser,
         .tag = "cases",
         .summary = "next",
         .handler = ok()});
  r.add({.method = "POST",
         .path = "/api/cases/{case_id}/revisions",
         .roles = kAnyUser,
         .tag = "revisions",
         .summary = "save",
         .request_type = "application/octet-stream",
         .request_schema = {{"type", "string"}},
         .success_status = 201,
         .errors = {ErrorCode::Conflict, ErrorCode::GeometryMismatch},
         .handler = ok()});
  r.add({.method = "GET",
         .path = "/api/audit",
         .roles = kAdminOnly,
         .tag = "audit",
         .summary = "audit",
         .handler = ok()});
  r.add({.method = "POST",
         .path = "/api/auth/login",
         .roles = kPublic,
         .tag = "auth",
         .summary = "login",
         .csrf_exempt = true,
         .handler = ok()});
  return r;
}
}  // namespace

TEST(Router, Match_LiteralBeatsParameter_AndExtractsParameters) {
  Router r = sample();
  auto m = r.match("GET", "/api/cases/next");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->summary, "next");
  m = r.match("GET", "/api/cases/42");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->summary, "one");
  EXPECT_EQ(m.params.at("case_id"), "42");
  m = r.match("POST", "/api/cases/7/revisions");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.at("case_id"), "7");
}

TEST(Router, Match_UnknownPathVsWrongMethod) {
  Router r = sample();
  auto m = r.match("DELETE", "/api/cases/42");
  EXPECT_FALSE(m.route);
  EXPECT_TRUE(m.path_known);  // 405
  m = r.match("GET", "/api/nothing/here");
  EXPECT_FALSE(m.route);
  EXPECT_FALSE(m.path_known);                         // 404
  EXPECT_FALSE(r.match("GET", "/api/cases/").route);  // empty parameter
  EXPECT_FALSE(r.match("GET", "/api/cases/1/2").route);
}

TEST(Router, Add_RefusesDuplicatesAndMalformedPatterns) {
  Router r = sample();
  EXPECT_THROW(r.add({.method = "GET", .path = "/api/cases", .summary = "again", .handler = ok()}), Error);
  EXPECT_THROW(r.add({.method = "GET", .path = "/api/x{y}", .summary = "partial", .handler = ok()}), Error);
  EXPECT_THROW(r.add({.method = "GET", .path = "api/no-slash", .summary = "x", .handler = ok()}), Error);
  EXPECT_THROW(r.add({.method = "TRACE", .path = "/api/t", .summary = "x", .handler = ok()}), Error);
  EXPECT_THROW(r.add({.method = "GET", .path = "/api/no-handler", .summary = "x"}), Error);
}

TEST(Router, OpenApi_DescribesRolesCsrfErrorsAndParameters) {
  Router r = sample();
  json api = r.openapi("1.2.3");
  EXPECT_EQ(api["openapi"], "3.0.3");
  EXPECT_EQ(api["info"]["version"], "1.2.3");
  std::size_t ops = 0;
  for (const auto& [p, o] : api["paths"].items()) ops += o.size();
  EXPECT_EQ(ops, r.routes().size());
  const json& save = api["paths"]["/api/cases/{case_id}/revisions"]["post"];
  EXPECT_EQ(save["x-roles"], json::array({"admin", "reviewer", "annotator"}));
  EXPECT_EQ(save["x-csrf"], true);
  EXPECT_TRUE(save["responses"].contains("201"));
  EXPECT_TRUE(save["responses"].contains("409"));  // Conflict, from the error table
  EXPECT_TRUE(save["responses"].contains("422"));  // GeometryMismatch
  EXPECT_TRUE(save["responses"].contains("401"));  // every non-public route
  EXPECT_TRUE(save["requestBody"]["content"].contains("application/octet-stream"));
  EXPECT_EQ(save["parameters"][0]["name"], "case_id");
  EXPECT_EQ(save["parameters"][0]["in"], "path");
  const json& login = api["paths"]["/api/auth/login"]["post"];
  EXPECT_EQ(login["x-roles"], "public");
  EXPECT_EQ(login["x-csrf"], false);
  EXPECT_FALSE(login["responses"].contains("401"));
  EXPECT_EQ(api["paths"]["/api/audit"]["get"]["x-roles"], json::array({"admin"}));
  EXPECT_EQ(api["paths"]["/api/audit"]["get"]["x-csrf"], false);  // GET
  EXPECT_TRUE(api["components"]["schemas"].contains("Error"));
  EXPECT_TRUE(api["components"]["securitySchemes"].contains("bearerAuth"));
}

TEST(Request, Helpers_NameTheBadField) {
  Request q;
  q.body = "{\"a\": ";
  try {
    q.json_body();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  }
  q.body = "[1]";
  EXPECT_THROW(q.json_body(), Error);
  q.body = "";
  EXPECT_TRUE(q.json_body().is_object());
  q.path_params["case_id"] = "12";
  EXPECT_EQ(q.id_param("case_id"), 12);
  q.path_params["case_id"] = "12abc";
  try {
    q.id_param("case_id");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
  }
  q.query.emplace("limit", "x");
  EXPECT_THROW(q.query_int("limit"), Error);
  q.query.emplace("flag", "maybe");
  EXPECT_THROW(q.query_bool("flag"), Error);
  EXPECT_FALSE(q.query_int("absent").has_value());
  EXPECT_THROW(q.principal(), Error);
}

TEST(ErrorBody, CarriesCodeStatusAndKindFromTheTable) {
  json j = error_body(ErrorCode::Conflict, "stale");
  EXPECT_EQ(j["error"]["code"], "Conflict");
  EXPECT_EQ(j["error"]["status"], 409);
  EXPECT_EQ(j["error"]["kind"], "input");
  EXPECT_EQ(j["error"]["message"], "stale");
}
