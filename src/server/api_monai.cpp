// MONAI Label compatible REST subset (docs/monai_label.md): the paths, query parameters, form
// fields and answers that MONAI Label's clients (3D Slicer's MONAI Label module,
// monailabel/client/client.py) use, mapped onto the app use cases (app/monai_label.h). Login is
// OAuth2's password form at /auth/token and gives a tumorlab session token used as
// "Authorization: Bearer"; roles and data rules are those of the /api routes.
#include "tumorlab/server/api_routes.h"

// Routes are declared with designated initializers (GCC accepts them in C++17 as an extension).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

#include <random>

#include "tumorlab/app/auth.h"
#include "tumorlab/app/monai_label.h"

namespace tumorlab::server {
namespace {

using E = ErrorCode;
namespace S = schema;

// The "params" form field as a JSON object ({} when absent or empty).
json params_field(const Request& req) {
  auto it = req.form.find("params");
  if (it == req.form.end() || it->second.empty()) return json::object();
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::parse_error& e) {
    throw Error(E::BadArgument, "form field params: invalid JSON at byte " + std::to_string(e.byte));
  }
  if (!j.is_object()) throw Error(E::BadArgument, "form field params: expected a JSON object");
  return j;
}

const UploadedFile& file_part(const Request& req, const std::string& field) {
  for (const auto& f : req.files)
    if (f.field == field) return f;
  throw Error(E::BadArgument, "multipart/form-data field " + field +
                                  ": expected a file part (Content-Disposition: form-data; name=\"" + field +
                                  "\"; filename=\"...\")");
}

std::string required_query(const Request& req, const std::string& name) {
  auto v = req.query_value(name);
  if (!v || v->empty()) throw Error(E::BadArgument, "query parameter " + name + ": required (a case name)");
  return *v;
}

// multipart/form-data answer as MONAI Label's /infer/ gives it: "params" (JSON) and the label
// file under "image".
Response multipart_answer(const json& params, const std::string& filename, const std::string& bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string boundary;
  do {
    char buf[40];
    std::snprintf(buf, sizeof buf, "tumorlab-%016llx", static_cast<unsigned long long>(rng()));
    boundary = buf;
  } while (bytes.find(boundary) != std::string::npos);
  std::string body;
  body.reserve(bytes.size() + 512);
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"params\"\r\n";
  body += "Content-Type: application/json\r\n\r\n" + params.dump() + "\r\n";
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" + filename + "\"\r\n";
  body += "Content-Type: application/gzip\r\n\r\n";
  body += bytes;
  body += "\r\n--" + boundary + "--\r\n";
  Response r;
  r.content_type = "multipart/form-data; boundary=" + boundary;
  r.body = std::move(body);
  return r;
}

json task_schema() {
  return S::object({{"id", S::integer()},
                    {"type", S::string()},
                    {"status", S::string()},
                    {"model", S::string()},
                    {"start_ts", S::nullable(S::integer())},
                    {"end_ts", S::nullable(S::integer())},
                    {"details", S::array(S::string())},
                    {"job", S::ref("Job")}});
}

}  // namespace

void register_monai_routes(Router& router, app::Lab& lab, const std::string& version) {
  app::Lab* L = &lab;
  const std::vector<ParamSpec> image_param{{"image", "string", "case name (MONAI image id)", true}};

  // ---- auth --------------------------------------------------------------------------------
  router.add(
      {.method = "GET",
       .path = "/auth/",
       .roles = kPublic,
       .tag = "monai",
       .summary = "MONAI Label: is auth enabled (always: log in at /auth/token with a tumorlab account)",
       .response_schema = S::object({{"enabled", S::boolean()}, {"client_id", S::string()}, {"realm", S::string()}}),
       .handler = [](Request&) {
         return Response::json_body({{"enabled", true}, {"client_id", "tumorlab"}, {"realm", ""}});
       }});
  router.add(
      {.method = "POST",
       .path = "/auth/token",
       .roles = kPublic,
       .tag = "monai",
       .summary = "MONAI Label: OAuth2 password form (username, password, grant_type=password) -> a session token for "
                  "Authorization: Bearer",
       .request_type = "application/x-www-form-urlencoded",
       .request_schema = S::object({{"username", S::string()}, {"password", S::string()}, {"grant_type", S::string()}},
                                   {"username", "password"}),
       .response_schema =
           S::object({{"access_token", S::string()}, {"token_type", S::string()}, {"expires_in", S::integer()}}),
       .errors = {E::BadArgument, E::Unauthenticated, E::TooManyRequests},
       .csrf_exempt = true,
       .handler = [L](Request& req) {
         auto user = req.form_or_query("username");
         auto password = req.form_or_query("password");
         if (!user || user->empty() || !password || password->empty())
           throw Error(E::BadArgument,
                       "form fields username and password: required (application/x-www-form-urlencoded)");
         auto grant = req.form_or_query("grant_type");
         if (grant && !grant->empty() && *grant != "password")
           throw Error(E::BadArgument, "form field grant_type: only password is supported");
         auto r = app::login(*L, *user, *password, req.remote_addr);
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
         return Response::json_body(
             {{"access_token", r.token}, {"token_type", "bearer"}, {"expires_in", L->session_ttl_ms() / 1000}});
       }});
  router.add({.method = "GET",
              .path = "/auth/token/valid",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: the token's user {username, name, email, roles}",
              .response_schema = S::object({{"username", S::string()}, {"roles", S::array(S::string())}}),
              .handler = [](Request& req) {
                const Principal& p = req.principal();
                return Response::json_body(
                    {{"username", p.username}, {"name", p.username}, {"email", nullptr}, {"roles", {p.role}}});
              }});

  // ---- info --------------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/info/",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: server name, version, labels, models (active registered models), trainers, "
                         "active-learning strategies, datastore stats",
              .response_schema = S::object({{"name", S::string()},
                                            {"version", S::string()},
                                            {"labels", S::object({})},
                                            {"models", S::object({})},
                                            {"trainers", S::object({})},
                                            {"strategies", S::object({})},
                                            {"datastore", S::object({})}}),
              .handler = [L, version](Request& req) {
                return Response::json_body(app::monai::info(*L, actor_of(req), version));
              }});

  // ---- datastore ---------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/datastore/",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: the cases as a datastore: output=stats (default), all (objects with image info "
                         "and label tags final/original) or train (image/label id pairs)",
              .query = {{"output", "string", "stats | all | train"}},
              .response_schema = S::object({}),
              .errors = {E::BadArgument},
              .handler = [L](Request& req) {
                return Response::json_body(
                    app::monai::datastore(*L, actor_of(req), req.query_value("output").value_or("stats")));
              }});
  router.add(
      {.method = "PUT",
       .path = "/datastore/",
       .roles = kReviewerUp,
       .tag = "monai",
       .summary = "MONAI Label: upload a new image (multipart: file part \"file\", field \"params\" JSON) as a new "
                  "case, imported as POST /api/uploads imports (NIfTI, NRRD, MHA, PNG, TIFF, DICOM or a .zip of a "
                  "series; DICOM de-identified; pre-segmentation queued; audited). Case name: the image id (DICOM: "
                  "the pseudonymous name); a taken name gets -2, -3, ... (nothing is overwritten). 200 {image, "
                  "images, cases, jobs, skipped, errors}; an image already stored answers with its case; a bad file "
                  "is a 4xx naming it and nothing is stored",
       .query = {{"image", "string", "MONAI image id: the new case's name (non-DICOM files)"}},
       .request_type = "multipart/form-data",
       .request_schema =
           S::object({{"file", json{{"type", "string"}, {"format", "binary"}}}, {"params", S::string()}}, {"file"}),
       .response_schema = S::object({{"image", S::string()},
                                     {"images", S::array(S::string())},
                                     {"cases", S::array(S::object({}))},
                                     {"jobs", S::array(S::object({}))}}),
       .errors = {E::BadArgument, E::UnsupportedFormat, E::CorruptFile, E::HeaderMismatch, E::NotDicom,
                  E::IncompleteSeries, E::InvalidDataset, E::GeometryMismatch, E::EmptyInput, E::NonFiniteVoxels,
                  E::IoFailure},
       .handler = [L](Request& req) {
         const app::Actor actor = actor_of(req);
         const json params = params_field(req);
         file_part(req, "file");  // 400 naming the field when there is no file part
         for (auto& f : req.files)
           if (f.field == "file")
             return Response::json_body(app::monai::upload_image(*L, actor, req.query_value("image").value_or(""),
                                                                 f.filename, std::move(f.bytes), params));
         throw Error(E::Internal, "file part vanished");
       }});
  router.add({.method = "DELETE",
              .path = "/datastore/",
              .roles = kAnyUser,
              .tag = "monai",
              .summary =
                  "MONAI Label: remove an image or label: refused (405): tumorlab never deletes stored images or "
                  "label revisions (immutable, audited); reject a case with PUT /api/cases/{id}/status instead",
              .query = {{"id", "string", "MONAI image or label id"}, {"type", "string", "image | label | label_tag"}},
              .errors = {E::MethodNotAllowed},
              .handler = [](Request&) -> Response {
                throw Error(E::MethodNotAllowed,
                            "DELETE /datastore/: tumorlab never deletes stored images or label revisions (they are "
                            "immutable and audited); to take a case out of the work, reject it (PUT "
                            "/api/cases/{id}/status), and a wrong label is replaced by saving a new revision");
              }});
  router.add({.method = "GET",
              .path = "/datastore/image",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: download the case image (.nii.gz; audited: download)",
              .query = image_param,
              .response_type = "application/gzip",
              .errors = {E::BadArgument, E::NotFound},
              .handler = [L](Request& req) {
                const app::Actor actor = actor_of(req);
                const auto id = app::monai::case_id_for(*L, required_query(req, "image"), "image");
                auto f = app::image_file(*L, actor, id);
                return Response::file(f.path, f.content_type, f.filename);
              }});
  router.add({.method = "GET",
              .path = "/datastore/label",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: download a label: tag final (current revision made by a person) or original "
                         "(the AI pre-segmentation); audited: download",
              .query = {{"label", "string", "case name (MONAI label id = image id)", true},
                        {"tag", "string", "final (default) | original"}},
              .response_type = "application/gzip",
              .errors = {E::BadArgument, E::NotFound},
              .handler = [L](Request& req) {
                auto f = app::monai::label_file(*L, actor_of(req), required_query(req, "label"),
                                                req.query_value("tag").value_or("final"));
                return Response::file(f.path, f.content_type, f.filename);
              }});
  router.add({.method = "PUT",
              .path = "/datastore/label",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: save a label (multipart: file part \"label\" .nii.gz on the image grid, field "
                         "\"params\") as a new revision of kind manual (parent: the current revision)",
              .query = {{"image", "string", "case name (MONAI image id)", true},
                        {"tag", "string", "final (default; the only tag that can be saved)"}},
              .request_type = "multipart/form-data",
              .request_schema = S::object({{"label", S::string()}, {"params", S::string()}}, {"label"}),
              .response_schema = S::object({{"image", S::string()},
                                            {"label", S::string()},
                                            {"tag", S::string()},
                                            {"revision_id", S::integer()},
                                            {"revision", S::ref("Revision")}}),
              .errors = {E::BadArgument, E::NotFound, E::Conflict, E::GeometryMismatch, E::InvalidLabel, E::CorruptFile,
                         E::UnsupportedFormat},
              .handler = [L](Request& req) {
                const app::Actor actor = actor_of(req);
                const std::string image = required_query(req, "image");
                const json params = params_field(req);
                const UploadedFile& f = file_part(req, "label");
                return Response::json_body(app::monai::save_label(*L, actor, image, req.query_value("tag").value_or(""),
                                                                  f.filename, f.bytes, params));
              }});

  // ---- active learning ---------------------------------------------------------------------
  router.add({.method = "POST",
              .path = "/activelearning/{strategy}",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: next case to label by strategy rank | first | random: {id (case name), name, "
                         "checksum, ...}, or {} when none is left",
              .response_schema = S::object({{"id", S::string()}, {"name", S::string()}, {"checksum", S::string()}}),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                req.json_body();  // the strategy's config (MONAI: client_id, ...): must be JSON, not used
                return Response::json_body(app::monai::next_sample(*L, actor_of(req), req.path_params.at("strategy")));
              }});

  // ---- infer -------------------------------------------------------------------------------
  router.add({.method = "POST",
              .path = "/infer/{model}",
              .roles = kAnyUser,
              .tag = "monai",
              .summary = "MONAI Label: run a registered model on a case synchronously; answer: multipart (\"params\" "
                         "JSON + \"image\" label .nii.gz; output=all, default), the label (output=image), the params "
                         "(output=json) or the label as a DICOM SEG referencing the case's de-identified source series "
                         "(output=dicom_seg; application/dicom; only for cases imported from DICOM, else 400). Nothing "
                         "is stored; audited",
              .query = {{"image", "string", "case name (MONAI image id)", true},
                        {"output", "string", "all (default) | image | json | dicom_seg"}},
              .request_type = "multipart/form-data",
              .request_schema = S::object({{"params", S::string()}}),
              .response_type = "multipart/form-data",
              .errors = {E::BadArgument, E::NotFound, E::FileNotFound, E::InvalidDataset},
              .handler = [L, version](Request& req) {
                const app::Actor actor = actor_of(req);
                const std::string output = req.query_value("output").value_or("all");
                if (output != "all" && output != "image" && output != "json" && output != "dicom_seg")
                  throw Error(E::BadArgument, "query parameter output: expected all, image, json or dicom_seg, got '" +
                                                  output.substr(0, 40) + "'");
                const std::string image = required_query(req, "image");
                const json params = params_field(req);  // JSON when given; only label_info is used (dicom_seg)
                if (output == "dicom_seg") {
                  auto r = app::monai::infer_dicom_seg(*L, actor, req.path_params.at("model"), image, params, version);
                  return Response::bytes(std::move(r.label_bytes), "application/dicom", r.filename);
                }
                auto r = app::monai::infer(*L, actor, req.path_params.at("model"), image);
                if (output == "json") return Response::json_body(r.params);
                if (output == "image") return Response::bytes(std::move(r.label_bytes), "application/gzip", r.filename);
                return multipart_answer(r.params, r.filename, r.label_bytes);
              }});

  // ---- train -------------------------------------------------------------------------------
  router.add({.method = "GET",
              .path = "/train/",
              .roles = kAnyUser,
              .tag = "monai",
              .summary =
                  "MONAI Label: the newest training job as a task {id, status PENDING|RUNNING|DONE|ERROR|STOPPED, "
                  "details, job}; all=true: every one; check_if_running=true: 404 unless one is queued or running",
              .query = {{"all", "boolean", ""}, {"check_if_running", "boolean", ""}},
              .response_schema = task_schema(),
              .errors = {E::NotFound},
              .handler = [L](Request& req) {
                const bool check = req.query_bool("check_if_running").value_or(false);
                auto s = app::monai::training_status(*L, actor_of(req), req.query_bool("all").value_or(false), check);
                if (!s)
                  throw Error(E::NotFound, check ? "no training job is queued or running" : "no training job yet");
                return Response::json_body(*s);
              }});
  router.add({.method = "POST",
              .path = "/train/",
              .roles = kReviewerUp,
              .tag = "monai",
              .summary = "MONAI Label: queue a training job (type train) for every active model; body {model: params}",
              .response_schema = S::object({}),
              .errors = {E::Conflict},
              .handler = [L](Request& req) {
                return Response::json_body(app::monai::start_training(*L, actor_of(req), "", req.json_body()));
              }});
  router.add({.method = "POST",
              .path = "/train/{model}",
              .roles = kReviewerUp,
              .tag = "monai",
              .summary = "MONAI Label: queue a training job (type train) for one model; body: its params",
              .response_schema = task_schema(),
              .errors = {E::NotFound, E::Conflict},
              .handler = [L](Request& req) {
                return Response::json_body(
                    app::monai::start_training(*L, actor_of(req), req.path_params.at("model"), req.json_body()));
              }});
  router.add(
      {.method = "DELETE",
       .path = "/train/",
       .roles = kReviewerUp,
       .tag = "monai",
       .summary = "MONAI Label: cancel the queued and running training jobs; the newest as a task, or {}",
       .response_schema = S::object({}),
       .handler = [L](Request& req) { return Response::json_body(app::monai::stop_training(*L, actor_of(req))); }});
}

}  // namespace tumorlab::server
