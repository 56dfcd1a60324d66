// Import and export routes: POST /api/uploads (scans in, de-identified), POST /api/exports and
// GET /api/exports/{export_id} (validated cases as an nnU-Net v2 raw dataset, zipped).
#include "tumorlab/server/api_routes.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

#include "tumorlab/app/exporter.h"
#include "tumorlab/app/importer.h"
#include "tumorlab/app/jobs.h"

namespace tumorlab::server {
namespace {

using E = ErrorCode;
namespace S = schema;

std::string modality_param(const Request& req) {
  const std::optional<std::string> m = req.form_or_query("modality");
  if (!m || m->empty()) return "";
  if (m->size() > 8 || m->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos)
    throw Error(ErrorCode::BadArgument,
                "modality: expected a DICOM modality in capitals (CT, MR, PT, ...), got '" + m->substr(0, 20) + "'");
  return *m;
}

}  // namespace

void register_import_export_routes(Router& router, app::Lab& lab) {
  app::Lab* L = &lab;
  const json item = S::object({{"id", S::integer()}, {"name", S::string()}, {"status", S::string()}});
  router.add(
      {.method = "POST",
       .path = "/api/uploads",
       .roles = kReviewerUp,
       .tag = "cases",
       .summary = "Upload scans (NIfTI, NRRD, MHA, PNG, TIFF, DICOM files, a .zip of them or of an nnU-Net raw "
                  "dataset): multipart/form-data file parts, or the file as the body with ?filename=. DICOM is "
                  "de-identified (PS3.15 basic profile, stable pseudonym per patient); each image is stored once; "
                  "a pre-segmentation job is queued per new case without a label. 201 with the cases; 200 when "
                  "everything was already stored; when no file could be imported, the first file's error (4xx, "
                  "naming the file) and nothing is stored. With ?background=true the files are stored durably and "
                  "an import job is queued instead: 202 with the job (its result is this answer; follow it at "
                  "/api/jobs/{id}/events)",
       .query = {{"filename", "string", "name of the file sent as the raw body (its extension picks the format)"},
                 {"background", "boolean", "true: import in a background job (202 with the job)"},
                 {"modality", "string", "modality of images that carry none (NIfTI, PNG, ...): CT, MR, PT"}},
       .request_type = "multipart/form-data",
       .request_schema =
           S::object({{"file", json{{"type", "string"}, {"format", "binary"}}}, {"modality", S::string()}}),
       .success_status = 201,
       .response_schema = S::object(
           {{"cases", S::array(item)},
            {"jobs", S::array(S::object({{"id", S::integer()}, {"state", S::string()}}))},
            {"job", S::nullable(S::object({{"id", S::integer()}}))},
            {"skipped", S::array(S::object({{"file", S::string()}, {"reason", S::string()}}))},
            {"errors", S::array(S::object({{"file", S::string()}, {"code", S::string()}, {"message", S::string()}}))}}),
       .errors = {E::BadArgument, E::UnsupportedFormat, E::CorruptFile, E::HeaderMismatch, E::NotDicom,
                  E::IncompleteSeries, E::InvalidDataset, E::InvalidLabel, E::GeometryMismatch, E::EmptyInput,
                  E::NonFiniteVoxels, E::IoFailure},
       .handler = [L](Request& req) {
         std::vector<app::UploadPart> parts;
         for (auto& f : req.files) parts.push_back(app::UploadPart{f.filename, std::move(f.bytes)});
         if (parts.empty() && !req.body.empty())
           parts.push_back(app::UploadPart{req.query_value("filename").value_or("upload"), std::move(req.body)});
         app::ImportOptions o;
         o.origin = "upload";
         o.modality = modality_param(req);
         const std::string background = req.query_value("background").value_or("false");
         if (background != "true" && background != "false" && background != "1" && background != "0")
           throw Error(ErrorCode::BadArgument,
                       "background: expected true or false, got '" + background.substr(0, 20) + "'");
         if (background == "true" || background == "1") {
           json job = app::queue_upload_import(*L, actor_of(req), parts, o);
           app::notify_job_runners();
           return Response::json_body(json{{"job", job}, {"cases", json::array()}, {"jobs", json::array({job})}}, 202);
         }
         json r = app::import_uploads(*L, actor_of(req), parts, o);
         r["job"] = r["jobs"].empty() ? json() : r["jobs"][0];  // the web UI follows one job
         return Response::json_body(r, r["cases"].empty() ? 200 : 201);
       }});
  router.add(
      {.method = "POST",
       .path = "/api/exports",
       .roles = kReviewerUp,
       .tag = "cases",
       .summary = "Export the validated cases (current label revisions) as an nnU-Net v2 raw dataset, zipped; "
                  "download it from `download` (audited: export)",
       .request_schema = S::object({{"format", S::string()}, {"name", S::string()}, {"include_demo", S::boolean()}}),
       .success_status = 201,
       .response_schema = S::object(
           {{"export_id", S::string()},
            {"download", S::string()},
            {"file_bytes", S::integer()},
            {"num_training", S::integer()},
            {"cases",
             S::array(S::object({{"id", S::string()}, {"case_id", S::integer()}, {"revision_id", S::integer()}}))}}),
       .errors = {E::BadArgument, E::EmptyInput, E::IoFailure},
       .handler = [L](Request& req) {
         return Response::json_body(app::create_export(*L, actor_of(req), req.json_body()), 201);
       }});
  router.add({.method = "GET",
              .path = "/api/exports/{export_id}",
              .roles = kReviewerUp,
              .tag = "cases",
              .summary = "The zip of an export (nnU-Net v2 raw dataset)",
              .response_type = "application/zip",
              .errors = {E::NotFound, E::IoFailure},
              .handler = [L](Request& req) {
                auto f = app::export_file(*L, actor_of(req), req.path_params.at("export_id"));
                return Response::file(f.path, f.content_type, f.filename);
              }});
}

}  // namespace tumorlab::server
