#include "tumorlab/server/api_routes.h"

// Routes are declared with designated initializers (GCC accepts them in C++17 as an extension):
// a route reads as its declaration, and the fields left out keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "tumorlab/app/auth.h"
#include "tumorlab/app/cases.h"
#include "tumorlab/app/exporter.h"
#include "tumorlab/server/http_server.h"

namespace tumorlab::server {
namespace {

using E = ErrorCode;
namespace S = schema;

Response send_file(const app::FileDownload& f) {
  return Response::file(f.path, f.content_type, f.filename);
}

int query_int_in(const Request& req, const std::string& name, int lo, int hi, int fallback) {
  auto v = req.query_int(name);
  if (!v) return fallback;
  if (*v < lo || *v > hi)
    throw Error(ErrorCode::BadArgument,
                "query parameter " + name + ": expected " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(*v);
}

// If-Match: "12", W/"12", 12 -> 12; "none" -> no revision yet; "*" or absent -> not given.
void parse_if_match(const std::string& raw, app::SaveRevisionRequest& r) {
  std::string v = raw;
  auto trim = [](std::string s) {
    std::size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  v = trim(v);
  if (v.empty() || v == "*") return;
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v == "none") {
    r.parent_is_none = true;
    return;
  }
  bool digits = !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
  if (!digits)
    throw Error(ErrorCode::BadArgument,
                "If-Match: expected the parent revision id (\"12\") or \"none\", got '" + v.substr(0, 40) + "'");
  r.parent_revision_id = std::stoll(v);
}

json user_schema() {
  return S::object({{"id", S::integer()},
                    {"username", S::string()},
                    {"role", S::string()},
                    {"disabled", S::boolean()},
                    {"created_ms", S::integer()}});
}

}  // namespace

app::Actor actor_of(const Request& req) {
  const Principal& p = req.principal();
  return app::Actor{p.user_id, p.username, p.role, req.remote_addr};
}

std::optional<Principal> resolve_session(app::Lab& lab, const std::string& token) {
  auto s = app::find_session(lab, token);
  if (!s) return std::nullopt;
  Principal p;
  p.user_id = s->user_id;
  p.username = s->username;
  p.role = s->role;
  p.csrf_token = s->csrf_token;
  p.expires_ms = s->expires_ms;
  return p;
}

void register_api_routes(Router& router, app::Lab& lab, const std::atomic<bool>& stopping) {
  app::Lab* L = &lab;
  const std::atomic<bool>* stop_flag = &stopping;

  router.add_schema("User", user_schema());
  router.add_schema("Case",
                    S::object({{"id", S::integer()},
                               {"name", S::string()},
                               {"image_id", S::integer()},
                               {"status", S::string()},
                               {"assignee", S::nullable(S::object({{"id", S::integer()}, {"username", S::string()}}))},
                               {"editing_seconds", S::number()},
                               {"uncertainty", S::nullable(S::number())},
                               {"al_rank", S::nullable(S::number())},
                               {"current_revision_id", S::nullable(S::integer())},
                               {"status_comment", S::string()},
                               {"demo", S::boolean()},
                               {"created_ms", S::integer()},
                               {"updated_ms", S::integer()}}));
  router.add_schema("Revision",
                    S::object({{"id", S::integer()},
                               {"case_id", S::integer()},
                               {"parent_id", S::nullable(S::integer())},
                               {"author", S::nullable(S::object({{"id", S::integer()}, {"username", S::string()}}))},
                               {"model", S::nullable(S::object({{"name", S::string()}, {"version", S::string()}}))},
                               {"kind", S::string()},
                               {"created_ms", S::integer()},
                               {"voxel_count", S::integer()},
                               {"volume_ml", S::number()},
                               {"sha256", S::string()},
                               {"note", S::string()}}));
  router.add_schema("Job", S::object({{"id", S::integer()},
                                      {"type", S::string()},
                                      {"state", S::string()},
                                      {"progress", S::number()},
                                      {"message", S::string()},
                                      {"error", S::string()},
                                      {"case_id", S::nullable(S::integer())},
                                      {"cancel_requested", S::boolean()}}));
  auto list_of = [](const std::string& component) { return S::object({{"items", S::array(S::ref(component))}}); };

  // ---- meta ------------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/health",
              .roles = kPublic,
              .tag = "meta",
              .summary = "Liveness check: {status: ok, version}",
              .response_schema = S::object({{"status", S::string()}, {"version", S::string()}}),
              .handler = [](Request&) {
                return Response::json_body({{"status", "ok"}, {"version", TUMORLAB_VERSION}});
              }});
  const Router* R = &router;
  router.add({.method = "GET",
              .path = "/api/openapi.json",
              .roles = kPublic,
              .tag = "meta",
              .summary = "This API as an OpenAPI 3 document, generated from the route registrations",
              .response_schema = S::object({}),
              .handler = [R](Request&) { return Response::json_body(R->openapi(TUMORLAB_VERSION)); }});

  // ---- auth ------------------------------------------------------------------------------
  router.add(
      {.method = "POST",
       .path = "/api/auth/login",
       .roles = kPublic,
       .tag = "auth",
       .summary = "Log in: sets the session cookie (HttpOnly) and the CSRF cookie; returns the token for Bearer use",
       .request_schema = S::object({{"username", S::string()}, {"password", S::string()}}, {"username", "password"}),
       .response_schema = S::object({{"token", S::string()},
                                     {"csrf_token", S::string()},
                                     {"user", S::ref("User")},
                                     {"expires_ms", S::integer()}}),
       .errors = {E::Unauthenticated, E::TooManyRequests},
       .csrf_exempt = true,
       .handler = [L](Request& req) {
         json body = req.json_body();
         auto it_u = body.find("username");
         auto it_p = body.find("password");
         if (it_u == body.end() || !it_u->is_string() || it_p == body.end() || !it_p->is_string())
           throw Error(E::BadArgument, "request body: expected {\"username\": string, \"password\": string}");
         auto r = app::login(*L, it_u->get<std::string>(), it_p->get<std::string>(), req.remote_addr);
         if (r.status == app::LoginResult::Status::Throttled) {
           std::int64_t s = (r.retry_after_ms + 999) / 1000;
           Response res = Response::json_body(
               error_body(E::TooManyRequests,
                          "too many failed logins for this user or address; retry in " + std::to_string(s) + " s"),
               429);
           res.headers.emplace_back("Retry-After", std::to_string(s));
           return res;
         }
         if (r.status == app::LoginResult::Status::BadCredentials)
           throw Error(E::Unauthenticated, "wrong username or password, or the account is disabled");
         std::int64_t max_age = L->session_ttl_ms() / 1000;
         Response res = Response::json_body(
             {{"token", r.token},
              {"csrf_token", r.session.csrf_token},
              {"expires_ms", r.session.expires_ms},
              {"user", {{"id", r.session.user_id}, {"username", r.session.username}, {"role", r.session.role}}}});
         res.headers.emplace_back("Set-Cookie", session_cookie(r.token, max_age, req.tls));
         res.headers.emplace_back("Set-Cookie", csrf_cookie(r.session.csrf_token, max_age, req.tls));
         return res;
       }});
  router.add({.method = "POST",
              .path = "/api/auth/logout",
              .roles = kAnyUser,
              .tag = "auth",
              .summary = "Log out: ends this session and clears the cookies",
              .success_status = 204,
              .handler = [L](Request& req) {
                app::logout(*L, req.principal().session_token, actor_of(req));
                Response res = Response::no_content();
                res.headers.emplace_back("Set-Cookie", session_cookie("", 0, req.tls));
                res.headers.emplace_back("Set-Cookie", csrf_cookie("", 0, req.tls));
                return res;
              }});
  router.add({.method = "GET",
              .path = "/api/auth/me",
              .roles = kAnyUser,
              .tag = "auth",
              .summary = "The logged-in user, the session's CSRF token and its expiry",
              .response_schema =
                  S::object({{"user", S::ref("User")}, {"csrf_token", S::string()}, {"expires_ms", S::integer()}}),
              .handler = [](Request& req) {
                const Principal& p = req.principal();
                return Response::json_body({{"user", {{"id", p.user_id}, {"username", p.username}, {"role", p.role}}},
                                            {"csrf_token", p.csrf_token},
                                            {"expires_ms", p.expires_ms}});
              }});

  // ---- users -----------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/users",
              .roles = kAnyUser,
              .tag = "users",
              .summary = "Users (for assignment): id, username, role, disabled",
              .response_schema = list_of("User"),
              .handler = [L](Request& req) { return Response::json_body(app::list_users(*L, actor_of(req))); }});
  router.add({.method = "POST",
              .path = "/api/users",
              .roles = kAdminOnly,
              .tag = "users",
              .summary = "Create a user (admin)",
              .request_schema = S::object({{"username", S::string()}, {"role", S::string()}, {"password", S::string()}},
                                          {"username", "role", "password"}),
              .success_status = 201,
              .response_schema = S::ref("User"),
              .errors = {E::Conflict},
              .handler = [L](Request& req) {
                return Response::json_body(app::create_user(*L, actor_of(req), req.json_body()), 201);
              }});
  router.add(
      {.method = "PATCH",
       .path = "/api/users/{user_id}",
       .roles = kAdminOnly,
       .tag = "users",
       .summary =
           "Change a user's role, disabled flag or password (admin); ends their sessions on password change or disable",
       .request_schema = S::object({{"role", S::string()}, {"disabled", S::boolean()}, {"password", S::string()}}),
       .response_schema = S::ref("User"),
       .errors = {E::NotFound, E::Conflict},
       .handler = [L](Request& req) {
         return Response::json_body(app::update_user(*L, actor_of(req), req.id_param("user_id"), req.json_body()));
       }});

  // ---- cases -----------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/cases",
              .roles = kAnyUser,
              .tag = "cases",
              .summary = "Worklist: cases with filters and sort",
              .query = {{"status", "string", "new | presegmented | in_progress | submitted | validated | rejected"},
                        {"assignee", "string", "me | none | a user id"},
                        {"demo", "boolean", "only demo (true) or only real (false) cases"},
                        {"sort", "string", "id | name | updated | uncertainty | rank | status"},
                        {"order", "string", "asc | desc"},
                        {"limit", "integer", "1..1000 (default 100)"},
                        {"offset", "integer", "default 0"}},
              .response_schema = S::object({{"items", S::array(S::ref("Case"))},
                                            {"total", S::integer()},
                                            {"limit", S::integer()},
                                            {"offset", S::integer()}}),
              .handler = [L](Request& req) {
                app::CaseQuery q;
                q.status = req.query_value("status");
                q.assignee = req.query_value("assignee");
                q.demo = req.query_bool("demo");
                q.sort = req.query_value("sort").value_or("id");
                auto order = req.query_value("order").value_or("asc");
                if (order != "asc" && order != "desc")
                  throw Error(E::BadArgument, "query parameter order: expected asc or desc");
                q.descending = order == "desc";
                q.limit = query_int_in(req, "limit", 1, 1000, 100);
                q.offset = query_int_in(req, "offset", 0, 1 << 30, 0);
                return Response::json_body(app::list_cases(*L, actor_of(req), q));
              }});
  router.add(
      {.method = "GET",
       .path = "/api/cases/next",
       .roles = kAnyUser,
       .tag = "cases",
       .summary = "Next case to label for the caller (own open cases first, then unassigned; by active-learning rank)",
       .response_schema = S::object({{"case", S::nullable(S::ref("Case"))}}),
       .handler = [L](Request& req) { return Response::json_body(app::next_case(*L, actor_of(req))); }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}",
              .roles = kAnyUser,
              .tag = "cases",
              .summary = "Case detail with its image description (audited as a view)",
              .response_schema = S::ref("Case"),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                return Response::json_body(app::get_case(*L, actor_of(req), req.id_param("case_id")));
              }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/history",
              .roles = kAnyUser,
              .tag = "cases",
              .summary = "Status and assignment changes of a case, oldest first",
              .response_schema = S::object({{"items", S::array(S::object({}))}}),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                return Response::json_body(app::case_history(*L, actor_of(req), req.id_param("case_id")));
              }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/image",
              .roles = kAnyUser,
              .tag = "cases",
              .summary = "The case's image as .nii.gz bytes (audited as a download)",
              .response_type = "application/gzip",
              .errors = {E::NotFound, E::IoFailure},
              .handler = [L](Request& req) {
                return send_file(app::image_file(*L, actor_of(req), req.id_param("case_id")));
              }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/uncertainty",
              .roles = kAnyUser,
              .tag = "cases",
              .summary = "Uncertainty map of the AI pre-segmentation as .nii.gz bytes (404 when there is none)",
              .response_type = "application/gzip",
              .errors = {E::NotFound, E::IoFailure},
              .handler = [L](Request& req) {
                return send_file(app::uncertainty_file(*L, actor_of(req), req.id_param("case_id")));
              }});
  router.add(
      {.method = "POST",
       .path = "/api/cases/{case_id}/status",
       .roles = kAnyUser,
       .tag = "cases",
       .summary = "Change the case status (workflow rules; only reviewers and admins validate or reject, rejection "
                  "needs a comment)",
       .request_schema =
           S::object({{"status", S::string()}, {"comment", S::string()}, {"expected_from", S::string()}}, {"status"}),
       .response_schema = S::ref("Case"),
       .errors = {E::NotFound, E::Conflict},
       .handler = [L](Request& req) {
         return Response::json_body(app::change_status(*L, actor_of(req), req.id_param("case_id"), req.json_body()));
       }});
  router.add(
      {.method = "POST",
       .path = "/api/cases/{case_id}/assign",
       .roles = kAnyUser,
       .tag = "cases",
       .summary =
           "Assign the case (reviewers/admins: anyone; annotators: take an unassigned case or give back their own)",
       .request_schema = S::object({{"user_id", S::nullable(S::integer())}}, {"user_id"}),
       .response_schema = S::ref("Case"),
       .errors = {E::NotFound, E::Conflict},
       .handler = [L](Request& req) {
         return Response::json_body(app::assign_case(*L, actor_of(req), req.id_param("case_id"), req.json_body()));
       }});

  // ---- revisions -------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/revisions",
              .roles = kAnyUser,
              .tag = "revisions",
              .summary = "Label revisions of a case, oldest first",
              .response_schema = list_of("Revision"),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                return Response::json_body(app::list_revisions(*L, actor_of(req), req.id_param("case_id")));
              }});
  router.add({.method = "POST",
              .path = "/api/cases/{case_id}/revisions",
              .roles = kAnyUser,
              .tag = "revisions",
              .summary = "Save a new immutable label revision: body is the label as .nii.gz on the image grid; "
                         "If-Match: \"<parent revision id>\" "
                         "(or \"none\") gives 409 when the case moved on; acknowledged only once durable",
              .query = {{"kind", "string", "manual (default) | refined"},
                        {"note", "string", "free text, no patient identifiers"},
                        {"editing_seconds", "number", "time spent on this edit"}},
              .request_type = "application/octet-stream",
              .request_schema = json{{"type", "string"}, {"format", "binary"}},
              .success_status = 201,
              .response_schema = S::ref("Revision"),
              .errors = {E::NotFound, E::Conflict, E::CorruptFile, E::GeometryMismatch, E::InvalidLabel,
                         E::HeaderMismatch, E::UnsupportedFormat, E::IoFailure},
              .handler = [L](Request& req) {
                app::SaveRevisionRequest r;
                r.case_id = req.id_param("case_id");
                r.label_bytes = std::move(req.body);
                parse_if_match(req.header("if-match"), r);
                r.kind = req.query_value("kind").value_or("manual");
                r.note = req.query_value("note").value_or("");
                r.editing_seconds = req.query_double("editing_seconds").value_or(0);
                json rev = app::save_revision(*L, actor_of(req), r);
                Response res = Response::json_body(rev, 201);
                res.headers.emplace_back("ETag", "\"" + std::to_string(rev["id"].get<std::int64_t>()) + "\"");
                res.headers.emplace_back("Location", "/api/cases/" + std::to_string(r.case_id) + "/revisions/" +
                                                         std::to_string(rev["id"].get<std::int64_t>()));
                return res;
              }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/revisions/{revision_id}",
              .roles = kAnyUser,
              .tag = "revisions",
              .summary = "One revision's record",
              .response_schema = S::ref("Revision"),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                json rev = app::get_revision(*L, actor_of(req), req.id_param("case_id"), req.id_param("revision_id"));
                Response res = Response::json_body(rev);
                res.headers.emplace_back("ETag", "\"" + std::to_string(rev["id"].get<std::int64_t>()) + "\"");
                return res;
              }});
  router.add({.method = "GET",
              .path = "/api/cases/{case_id}/revisions/{revision_id}/label",
              .roles = kAnyUser,
              .tag = "revisions",
              .summary = "A revision's label map as .nii.gz bytes, or PNG for 2D images (audited as a download)",
              .query = {{"format", "string", "nifti (default) | png (2D images only, else 422)"}},
              .response_type = "application/gzip",
              .errors = {E::NotFound, E::IoFailure, E::BadArgument, E::GeometryMismatch},
              .handler = [L](Request& req) {
                auto f = app::export_label(*L, actor_of(req), req.id_param("case_id"), req.id_param("revision_id"),
                                           req.query_value("format").value_or("nifti"));
                if (!f.path.empty()) return Response::file(f.path, f.content_type, f.filename);
                return Response::bytes(std::move(f.bytes), f.content_type, f.filename);
              }});
  router.add(
      {.method = "GET",
       .path = "/api/cases/{case_id}/revisions/{revision_id}/stats",
       .roles = kAnyUser,
       .tag = "revisions",
       .summary = "A revision against the case's AI original: Dice, changed voxels, volume change (mL), HD95 (mm)",
       .response_schema = S::object({{"revision_id", S::integer()},
                                     {"ai_revision_id", S::nullable(S::integer())},
                                     {"dice", S::nullable(S::number())},
                                     {"changed_voxels", S::nullable(S::integer())},
                                     {"volume_change_ml", S::nullable(S::number())},
                                     {"hd95_mm", S::nullable(S::number())}}),
       .errors = {E::NotFound, E::GeometryMismatch, E::IoFailure},
       .handler = [L](Request& req) {
         return Response::json_body(
             app::revision_stats(*L, actor_of(req), req.id_param("case_id"), req.id_param("revision_id")));
       }});

  // ---- region tools ----------------------------------------------------------------------
  router.add(
      {.method = "POST",
       .path = "/api/cases/{case_id}/tools/{tool}",
       .roles = kAnyUser,
       .tag = "tools",
       .summary =
           "Run a region tool (grow, threshold, fill_holes, remove_islands, interpolate, brush, erase, "
           "threshold_brush) on "
           "the working label (base64 .nii.gz in 'label') or a revision; returns the change as a delta; saves nothing",
       .request_schema =
           S::object({{"label", S::string()},
                      {"revision_id", S::integer()},
                      {"return_label", S::boolean()},
                      {"label_value", S::integer()},
                      {"seed", S::array(S::integer())},
                      {"tolerance", S::number()},
                      {"lower", S::number()},
                      {"upper", S::number()},
                      {"box", S::object({{"begin", S::array(S::integer())}, {"end", S::array(S::integer())}})},
                      {"points", S::array(S::array(S::number()))},
                      {"radius_mm", S::number()}}),
       .response_schema = S::object({{"tool", S::string()},
                                     {"changed_voxels", S::integer()},
                                     {"foreground_change", S::integer()},
                                     {"box", S::object({})},
                                     {"runs", S::array(S::array(S::integer()))},
                                     {"label", S::string()}}),
       .errors = {E::NotFound, E::CorruptFile, E::GeometryMismatch, E::InvalidLabel},
       .handler = [L](Request& req) {
         return Response::json_body(app::apply_region_tool(*L, actor_of(req), req.id_param("case_id"),
                                                           req.path_params.at("tool"), req.json_body()));
       }});

  // ---- jobs ------------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/jobs",
              .roles = kAnyUser,
              .tag = "jobs",
              .summary = "Jobs, newest first",
              .query = {{"state", "string", "queued | running | succeeded | failed | cancelled"},
                        {"type", "string", "presegment | predict_batch | train | import | export"},
                        {"case_id", "integer", ""},
                        {"mine", "boolean", "only the caller's jobs"},
                        {"limit", "integer", "1..1000"},
                        {"offset", "integer", ""}},
              .response_schema = list_of("Job"),
              .handler = [L](Request& req) {
                app::JobQuery q;
                q.state = req.query_value("state");
                q.type = req.query_value("type");
                q.case_id = req.query_int("case_id");
                q.mine = req.query_bool("mine").value_or(false);
                q.limit = query_int_in(req, "limit", 1, 1000, 100);
                q.offset = query_int_in(req, "offset", 0, 1 << 30, 0);
                return Response::json_body(app::list_jobs(*L, actor_of(req), q));
              }});
  router.add({.method = "GET",
              .path = "/api/jobs/{job_id}",
              .roles = kAnyUser,
              .tag = "jobs",
              .summary = "One job: state, progress, message, error, result",
              .response_schema = S::ref("Job"),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                return Response::json_body(app::get_job(*L, actor_of(req), req.id_param("job_id")));
              }});
  router.add({.method = "POST",
              .path = "/api/jobs/{job_id}/cancel",
              .roles = kAnyUser,
              .tag = "jobs",
              .summary = "Cancel a job (its owner, a reviewer or an admin): queued jobs end at once, running ones at "
                         "their next check",
              .response_schema = S::ref("Job"),
              .errors = {E::NotFound, E::Conflict},
              .handler = [L](Request& req) {
                return Response::json_body(app::cancel_job(*L, actor_of(req), req.id_param("job_id")));
              }});
  router.add(
      {.method = "GET",
       .path = "/api/jobs/{job_id}/events",
       .roles = kAnyUser,
       .tag = "jobs",
       .summary =
           "Progress stream (server-sent events): 'progress' events with the job as JSON on each change, then 'end'",
       .response_type = "text/event-stream",
       .errors = {E::NotFound},
       .handler = [L, stop_flag](Request& req) {
         const std::int64_t id = req.id_param("job_id");
         app::Actor actor = actor_of(req);
         app::get_job(*L, actor, id);  // 404 before the stream starts
         auto last = std::make_shared<std::string>();
         return Response::event_stream([L, stop_flag, id, actor, last](const SseEmit& emit) {
           json job = app::get_job(*L, actor, id);
           std::string now = job.dump();
           if (now != *last) {
             *last = now;
             emit("progress", now);
           }
           if (app::job_finished(job)) {
             emit("end", now);
             return false;
           }
           for (int i = 0; i < 5 && !*stop_flag; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
           return !*stop_flag;
         });
       }});

  // ---- models ----------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/models",
              .roles = kAnyUser,
              .tag = "models",
              .summary = "Model versions with their metadata and which one is active per name",
              .response_schema = S::object({{"items", S::array(S::object({}))}}),
              .handler = [L](Request& req) { return Response::json_body(app::list_models(*L, actor_of(req))); }});
  router.add({.method = "POST",
              .path = "/api/models/{model_id}/activate",
              .roles = kAdminOnly,
              .tag = "models",
              .summary = "Make this version the active one of its name (admin)",
              .response_schema = S::object({}),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                return Response::json_body(app::activate_model(*L, actor_of(req), req.id_param("model_id")));
              }});

  // ---- audit and metrics -----------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/api/audit",
              .roles = kAdminOnly,
              .tag = "audit",
              .summary = "Audit trail, newest first (admin)",
              .query = {{"user_id", "integer", ""},
                        {"case_id", "integer", ""},
                        {"action", "string", "exact action name"},
                        {"after_seq", "integer", "only rows after this sequence number"},
                        {"limit", "integer", "1..1000"}},
              .response_schema = S::object({{"items", S::array(S::object({}))}}),
              .handler = [L](Request& req) {
                app::AuditFilter f;
                f.user_id = req.query_int("user_id");
                f.case_id = req.query_int("case_id");
                f.action = req.query_value("action").value_or("");
                f.after_seq = req.query_int("after_seq");
                f.limit = query_int_in(req, "limit", 1, 1000, 100);
                return Response::json_body(app::query_audit(*L, actor_of(req), f));
              }});
  router.add({.method = "GET",
              .path = "/api/audit/verify",
              .roles = kAdminOnly,
              .tag = "audit",
              .summary = "Walk the hash chain of the audit trail (admin)",
              .response_schema = S::object({{"intact", S::boolean()},
                                            {"rows_checked", S::integer()},
                                            {"first_broken_seq", S::nullable(S::integer())},
                                            {"reason", S::string()}}),
              .handler = [L](Request& req) { return Response::json_body(app::verify_audit(*L, actor_of(req))); }});
  router.add(
      {.method = "GET",
       .path = "/api/metrics/summary",
       .roles = kAnyUser,
       .tag = "metrics",
       .summary =
           "Cases by status, Dice of the AI original vs the current label per case and per model version, editing time",
       .response_schema = S::object({{"cases_by_status", S::object({})},
                                     {"cases", S::array(S::object({}))},
                                     {"per_model", S::array(S::object({}))},
                                     {"mean_editing_seconds", S::nullable(S::number())}}),
       .handler = [L](Request& req) { return Response::json_body(app::metrics_summary(*L, actor_of(req))); }});
  register_presegment_routes(router, lab);
  register_import_export_routes(router, lab);
  register_monai_routes(router, lab, TUMORLAB_VERSION);
}

}  // namespace tumorlab::server
