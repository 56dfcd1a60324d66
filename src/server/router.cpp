#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "tumorlab/server/route.h"

namespace tumorlab::server {
namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 1;  // paths start with '/'
  if (path.empty() || path[0] != '/') return out;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RoleBit role_bit(const std::string& role) {
  if (role == "admin") return kAdmin;
  if (role == "reviewer") return kReviewer;
  if (role == "annotator") return kAnnotator;
  return static_cast<RoleBit>(0);
}

std::vector<std::string> role_names(RoleSet roles) {
  std::vector<std::string> out;
  if (roles & kAdmin) out.push_back("admin");
  if (roles & kReviewer) out.push_back("reviewer");
  if (roles & kAnnotator) out.push_back("annotator");
  return out;
}

// ---- Request -------------------------------------------------------------------------------

std::string Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::optional<std::string> Request::query_value(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Request::form_or_query(const std::string& name) const {
  auto it = form.find(name);
  if (it != form.end()) return it->second;
  return query_value(name);
}

std::int64_t Request::id_param(const std::string& name) const {
  auto it = path_params.find(name);
  if (it == path_params.end()) throw Error(ErrorCode::Internal, "route has no path parameter " + name);
  const std::string& v = it->second;
  bool digits =
      !v.empty() && v.size() <= 18 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits)
    throw Error(ErrorCode::NotFound, name + ": no such id '" + v.substr(0, 40) + "' (expected a positive integer)");
  std::int64_t id = std::strtoll(v.c_str(), nullptr, 10);
  if (id <= 0) throw Error(ErrorCode::NotFound, name + ": no such id " + v);
  return id;
}

std::optional<std::int64_t> Request::query_int(const std::string& name) const {
  auto v = query_value(name);
  if (!v || v->empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (errno != 0 || end != v->c_str() + v->size())
    throw Error(ErrorCode::BadArgument,
                "query parameter " + name + ": expected an integer, got '" + v->substr(0, 40) + "'");
  return x;
}

std::optional<double> Request::query_double(const std::string& name) const {
  auto v = query_value(name);
  if (!v || v->empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (errno != 0 || end != v->c_str() + v->size() || !std::isfinite(x))
    throw Error(ErrorCode::BadArgument,
                "query parameter " + name + ": expected a number, got '" + v->substr(0, 40) + "'");
  return x;
}

std::optional<bool> Request::query_bool(const std::string& name) const {
  auto v = query_value(name);
  if (!v || v->empty()) return std::nullopt;
  std::string s = lower(*v);
  if (s == "1" || s == "true" || s == "yes") return true;
  if (s == "0" || s == "false" || s == "no") return false;
  throw Error(ErrorCode::BadArgument,
              "query parameter " + name + ": expected true or false, got '" + v->substr(0, 40) + "'");
}

json Request::json_body() const {
  if (body.empty()) return json::object();
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::BadArgument, "request body: invalid JSON at byte " + std::to_string(e.byte));
  }
  if (!j.is_object())
    throw Error(ErrorCode::BadArgument, std::string("request body: expected a JSON object, got ") + j.type_name());
  return j;
}

const Principal& Request::principal() const {
  if (!user) throw Error(ErrorCode::Unauthenticated, "this call needs a logged-in user");
  return *user;
}

// ---- Response ------------------------------------------------------------------------------

Response Response::json_body(const json& value, int status) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response Response::bytes(std::string data, const std::string& content_type, const std::string& filename) {
  Response r;
  r.content_type = content_type;
  r.body = std::move(data);
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + filename + "\"");
  return r;
}

Response Response::file(const std::string& path, const std::string& content_type, const std::string& filename) {
  Response r = bytes(std::string(), content_type, filename);
  r.file_path = path;
  return r;
}

Response Response::event_stream(SsePoll poll) {
  Response r;
  r.content_type = "text/event-stream";
  r.sse = std::move(poll);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response Response::no_content() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

json error_body(ErrorCode code, const std::string& message) {
  const ErrorInfo& info = error_info(code);
  return json{{"error",
               {{"code", std::string(info.name)},
                {"message", message},
                {"status", info.http_status},
                {"kind", std::string(to_string(info.kind))}}}};
}

// ---- Router --------------------------------------------------------------------------------

void Router::add(RouteSpec spec) {
  spec.method = upper(spec.method);
  static const std::set<std::string> methods{"GET", "POST", "PUT", "PATCH", "DELETE"};
  if (!methods.count(spec.method))
    throw Error(ErrorCode::Internal, "route " + spec.path + ": unsupported method " + spec.method);
  if (spec.path.empty() || spec.path[0] != '/')
    throw Error(ErrorCode::Internal, "route path must start with '/': " + spec.path);
  const auto segments = split_path(spec.path);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& seg = segments[i];
    // A trailing slash is allowed (MONAI Label's paths: /info/, /datastore/); it must then be sent.
    if (seg.empty() && spec.path != "/" && i + 1 != segments.size())
      throw Error(ErrorCode::Internal, "route path has an empty segment: " + spec.path);
    if (seg.find_first_of("{}") != std::string::npos && !is_param(seg))
      throw Error(ErrorCode::Internal, "route path segment must be a whole {param}: " + spec.path);
  }
  if (!spec.handler) throw Error(ErrorCode::Internal, "route " + spec.method + " " + spec.path + " has no handler");
  for (const auto& r : routes_)
    if (r.method == spec.method && r.path == spec.path)
      throw Error(ErrorCode::Internal, "route registered twice: " + spec.method + " " + spec.path);
  routes_.push_back(std::move(spec));
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
  Match best;
  const auto segs = split_path(path);
  int best_literals = -1;
  for (const auto& r : routes_) {
    const auto pat = split_path(r.path);
    if (pat.size() != segs.size()) continue;
    std::map<std::string, std::string> params;
    int literals = 0;
    bool ok = true;
    for (std::size_t i = 0; i < pat.size() && ok; ++i) {
      if (is_param(pat[i])) {
        if (segs[i].empty())
          ok = false;
        else
          params[pat[i].substr(1, pat[i].size() - 2)] = segs[i];
      } else if (pat[i] == segs[i]) {
        ++literals;
      } else {
        ok = false;
      }
    }
    if (!ok) continue;
    best.path_known = true;
    // Literal segments beat parameters: /api/cases/next before /api/cases/{case_id}.
    if (r.method == method && literals > best_literals) {
      best_literals = literals;
      best.route = &r;
      best.params = std::move(params);
    }
  }
  return best;
}

// ---- Schema helpers ------------------------------------------------------------------------

namespace schema {
json object(std::initializer_list<std::pair<const std::string, json>> properties, std::vector<std::string> required) {
  json props = json::object();
  for (const auto& [k, v] : properties) props[k] = v;
  json s{{"type", "object"}, {"properties", props}};
  if (!required.empty()) s["required"] = required;
  return s;
}
json array(const json& items) {
  return json{{"type", "array"}, {"items", items}};
}
json string() {
  return json{{"type", "string"}};
}
json integer() {
  return json{{"type", "integer"}};
}
json number() {
  return json{{"type", "number"}};
}
json boolean() {
  return json{{"type", "boolean"}};
}
json nullable(json s) {
  s["nullable"] = true;
  return s;
}
json ref(const std::string& component) {
  return json{{"$ref", "#/components/schemas/" + component}};
}
}  // namespace schema

// ---- OpenAPI -------------------------------------------------------------------------------

json Router::openapi(const std::string& version) const {
  json paths = json::object();
  // Errors any route can give, by the layer that serves it.
  const std::vector<ErrorCode> common_public{ErrorCode::BadArgument, ErrorCode::TooLarge, ErrorCode::Internal,
                                             ErrorCode::Unavailable};
  const std::vector<ErrorCode> common_auth{ErrorCode::Unauthenticated, ErrorCode::Forbidden};

  for (const auto& r : routes_) {
    json op;
    op["operationId"] = lower(r.method) + r.path;
    op["summary"] = r.summary;
    if (!r.tag.empty()) op["tags"] = json::array({r.tag});
    if (r.roles == kPublic) {
      op["security"] = json::array();
      op["x-roles"] = "public";
    } else {
      op["security"] = json::array({json{{"cookieAuth", json::array()}}, json{{"bearerAuth", json::array()}}});
      op["x-roles"] = role_names(r.roles);
    }
    op["x-csrf"] = !(r.csrf_exempt || r.method == "GET" || r.roles == kPublic);
    json params = json::array();
    for (const auto& seg : split_path(r.path)) {
      if (!is_param(seg)) continue;
      std::string name = seg.substr(1, seg.size() - 2);
      params.push_back({{"name", name},
                        {"in", "path"},
                        {"required", true},
                        {"schema", name.size() > 3 && name.substr(name.size() - 3) == "_id" ? schema::integer()
                                                                                            : schema::string()}});
    }
    for (const auto& q : r.query)
      params.push_back({{"name", q.name},
                        {"in", "query"},
                        {"required", q.required},
                        {"description", q.description},
                        {"schema", {{"type", q.type}}}});
    if (!params.empty()) op["parameters"] = params;
    if (!r.request_schema.is_null())
      op["requestBody"] = {{"required", true}, {"content", {{r.request_type, {{"schema", r.request_schema}}}}}};

    json responses = json::object();
    json ok{{"description", "success"}};
    if (r.success_status != 204) {
      json s = r.response_schema.is_null() ? json{{"type", "string"}, {"format", "binary"}} : r.response_schema;
      if (r.response_type == "text/event-stream") s = json{{"type", "string"}, {"description", "server-sent events"}};
      ok["content"] = {{r.response_type, {{"schema", s}}}};
    }
    responses[std::to_string(r.success_status)] = ok;

    std::vector<ErrorCode> codes = r.errors;
    codes.insert(codes.end(), common_public.begin(), common_public.end());
    if (r.roles != kPublic) codes.insert(codes.end(), common_auth.begin(), common_auth.end());
    std::map<int, std::vector<std::string>> by_status;
    for (ErrorCode c : codes) {
      const auto& info = error_info(c);
      auto& names = by_status[info.http_status];
      if (std::find(names.begin(), names.end(), std::string(info.name)) == names.end()) names.emplace_back(info.name);
    }
    json x_codes = json::array();
    for (const auto& [status, names] : by_status) {
      std::string desc;
      for (const auto& n : names) desc += (desc.empty() ? "" : ", ") + n;
      responses[std::to_string(status)] = {{"description", desc},
                                           {"content", {{"application/json", {{"schema", schema::ref("Error")}}}}}};
      for (const auto& n : names) x_codes.push_back(n);
    }
    op["responses"] = responses;
    op["x-error-codes"] = x_codes;
    // OpenAPI keys are lower-case method names.
    paths[r.path][lower(r.method)] = op;
  }

  json schemas = json::object();
  for (const auto& [name, s] : schemas_) schemas[name] = s;
  schemas["Error"] = schema::object({{"error", schema::object({{"code", schema::string()},
                                                               {"message", schema::string()},
                                                               {"status", schema::integer()},
                                                               {"kind", schema::string()}},
                                                              {"code", "message"})}},
                                    {"error"});
  // The error table, so clients see every code with its HTTP status.
  json table = json::array();
  std::size_t n = 0;
  const ErrorInfo* rows = error_table(&n);
  for (std::size_t i = 0; i < n; ++i)
    table.push_back({{"code", std::string(rows[i].name)},
                     {"status", rows[i].http_status},
                     {"kind", std::string(to_string(rows[i].kind))},
                     {"summary", std::string(rows[i].summary)}});

  return json{
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "tumorlab API"},
        {"version", version},
        {"description",
         "AI-assisted tumour segmentation labelling. Log in with POST /api/auth/login: the answer sets an HttpOnly "
         "session cookie (tl_session) and a readable CSRF cookie (tl_csrf); state-changing calls with the cookie must "
         "send the CSRF token in X-CSRF-Token. API clients may instead send Authorization: Bearer <token> (no CSRF). "
         "Errors are JSON {\"error\": {\"code\", \"message\", \"status\", \"kind\"}}; see x-error-table."}}},
      {"paths", paths},
      {"components",
       {{"schemas", schemas},
        {"securitySchemes",
         {{"cookieAuth", {{"type", "apiKey"}, {"in", "cookie"}, {"name", "tl_session"}}},
          {"bearerAuth", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
      {"x-error-table", table}};
}

}  // namespace tumorlab::server
