#pragma once
// Routes of `tumorlab serve`: each route declares its method, path pattern, the roles that may
// call it, a summary, its request/response schema and the error codes it can give. The router
// dispatches on these declarations, the security layer enforces them before the handler runs,
// and /api/openapi.json is generated from them (Orthanc-style self-describing handlers).
//
// Our own Request/Response types keep httplib inside src/server/http_server.cpp.

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tumorlab/core/error.h"

namespace tumorlab::server {

using json = nlohmann::json;

// Roles as a bit set. A route with `roles == kPublic` needs no login.
enum RoleBit : std::uint8_t { kAnnotator = 1, kReviewer = 2, kAdmin = 4 };
using RoleSet = std::uint8_t;
inline constexpr RoleSet kPublic = 0;
inline constexpr RoleSet kAnyUser = kAnnotator | kReviewer | kAdmin;
inline constexpr RoleSet kReviewerUp = kReviewer | kAdmin;
inline constexpr RoleSet kAdminOnly = kAdmin;

// "admin" | "reviewer" | "annotator" -> bit; anything else -> 0.
RoleBit role_bit(const std::string& role);
std::vector<std::string> role_names(RoleSet roles);

// The logged-in caller, resolved from the session cookie or a Bearer token.
struct Principal {
  std::int64_t user_id = 0;
  std::string username;
  std::string role;  // "admin" | "reviewer" | "annotator"
  std::string csrf_token;
  std::int64_t expires_ms = 0;
  bool via_bearer = false;    // Authorization: Bearer (API clients; exempt from CSRF)
  std::string session_token;  // the token the request carried (for logout); never logged
};

// One file part of a multipart/form-data request (a part with a filename).
struct UploadedFile {
  std::string field;         // the form field name
  std::string filename;      // as the client gave it: for messages and extensions only, never a path
  std::string content_type;  // as the client gave it (may be empty)
  std::string bytes;
};

struct Request {
  std::string method;  // upper case
  std::string path;    // decoded, without the query string
  std::map<std::string, std::string> path_params;
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names in lower case
  std::map<std::string, std::string> cookies;
  std::string body;  // empty for multipart/form-data: see files and form
  // multipart/form-data (httplib parses it; the total size is capped by the upload limit like
  // any body): parts with a filename in `files` (by field name, then request order), the others in `form`.
  std::vector<UploadedFile> files;
  std::multimap<std::string, std::string> form;
  std::string remote_addr;
  bool tls = false;
  std::optional<Principal> user;  // set for every route that is not kPublic

  std::string header(const std::string& lower_name) const;
  std::optional<std::string> query_value(const std::string& name) const;
  // A multipart/form-data or urlencoded form field, else the query parameter of that name
  // (clients such as MONAI Label's send either).
  std::optional<std::string> form_or_query(const std::string& name) const;
  // Path parameter as a positive id: Error(NotFound) naming the parameter when it is not one
  // (an id that cannot exist is simply not found).
  std::int64_t id_param(const std::string& name) const;
  // Query parameter parsers: Error(BadArgument) naming the parameter on a bad value.
  std::optional<std::int64_t> query_int(const std::string& name) const;
  std::optional<double> query_double(const std::string& name) const;
  std::optional<bool> query_bool(const std::string& name) const;
  // The body parsed as a JSON object (an empty body is {}): Error(BadArgument) with the byte
  // offset of the syntax error, or when it is not an object.
  json json_body() const;
  const Principal& principal() const;  // Error(Unauthenticated) when anonymous
};

// Server-sent events: `poll` is called again and again until it returns false (end of stream)
// or the client goes away or the server stops. Each call may emit any number of events and
// should wait at most about a second for news, so shutdown stays prompt.
using SseEmit = std::function<void(const std::string& event, const std::string& data)>;
using SsePoll = std::function<bool(const SseEmit& emit)>;

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  SsePoll sse;            // when set, the response is an event stream and `body` is ignored
  std::string file_path;  // when set, the file is streamed in chunks and `body` is ignored

  static Response json_body(const json& value, int status = 200);
  // Bytes with Content-Disposition: attachment; filename="<filename>" (filename built by us).
  static Response bytes(std::string data, const std::string& content_type, const std::string& filename);
  static Response event_stream(SsePoll poll);
  // A stored file streamed in chunks (never read whole into memory), as an attachment named
  // `filename`. Error(IoFailure) when it cannot be opened.
  static Response file(const std::string& path, const std::string& content_type, const std::string& filename);
  static Response no_content();
};

using Handler = std::function<Response(Request&)>;

struct ParamSpec {
  std::string name;
  std::string type = "string";  // JSON-schema type: string, integer, number, boolean
  std::string description;
  bool required = false;
};

struct RouteSpec {
  std::string method;  // GET, POST, PUT, PATCH, DELETE
  std::string path;    // "/api/cases/{case_id}/revisions"; {name} matches one path segment
  RoleSet roles = kAnyUser;
  std::string tag;  // OpenAPI tag: auth, cases, revisions, jobs, models, audit, tools, meta
  std::string summary;
  std::vector<ParamSpec> query;
  // Request body: content type and JSON schema (null = no body).
  std::string request_type = "application/json";
  json request_schema;
  // Successful response: status, content type and schema.
  int success_status = 200;
  std::string response_type = "application/json";
  json response_schema;
  // Errors this route can give besides the common ones (Unauthenticated, Forbidden, CSRF,
  // TooLarge, Internal, ...). Listed in the OpenAPI document with their HTTP statuses.
  std::vector<ErrorCode> errors;
  // Login itself is the only state-changing call without a session to protect.
  bool csrf_exempt = false;
  Handler handler;
};

class Router {
 public:
  // Throws Error(Internal) on a duplicate method+path or a malformed pattern.
  void add(RouteSpec spec);
  const std::vector<RouteSpec>& routes() const { return routes_; }

  struct Match {
    const RouteSpec* route = nullptr;  // null: no route
    bool path_known = false;           // some route has this path, but not this method (405)
    std::map<std::string, std::string> params;
  };
  Match match(const std::string& method, const std::string& path) const;

  // Named schemas for components/schemas (referenced with schema::ref).
  void add_schema(const std::string& name, json schema) { schemas_[name] = std::move(schema); }

  // OpenAPI 3.0 document for every registered route.
  json openapi(const std::string& version) const;

 private:
  std::vector<RouteSpec> routes_;
  std::map<std::string, json> schemas_;
};

// JSON error body {"error": {"code": ..., "message": ..., "status": ...}} for an error code.
json error_body(ErrorCode code, const std::string& message);
// Common JSON-schema fragments for route declarations.
namespace schema {
json object(std::initializer_list<std::pair<const std::string, json>> properties,
            std::vector<std::string> required = {});
json array(const json& items);
json string();
json integer();
json number();
json boolean();
json nullable(json s);
json ref(const std::string& component);  // {"$ref": "#/components/schemas/<component>"}
}  // namespace schema

}  // namespace tumorlab::server
