// Routes that start AI work: pre-segmentation of one case and batch prediction jobs. They only
// enqueue; the job runner (src/app/jobs.h) does the work and GET /api/jobs/{id}/events streams it.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"

#include "tumorlab/app/jobs.h"
#include "tumorlab/server/api_routes.h"

namespace tumorlab::server {

void register_presegment_routes(Router& router, app::Lab& lab) {
  app::Lab* L = &lab;
  using E = ErrorCode;
  namespace S = schema;
  router.add({.method = "POST",
              .path = "/api/cases/{case_id}/presegment",
              .roles = kAnyUser,
              .tag = "jobs",
              .summary =
                  "Queue an AI pre-segmentation of the case (interactive priority) with the active model matching "
                  "its modality and channels, or body.model; returns the job (an unfinished one for the case is "
                  "returned instead of a new one). Annotators: own or unassigned cases",
              .request_schema = S::object({{"model", S::string()}}),
              .success_status = 202,
              .response_schema = S::ref("Job"),
              .errors = {E::NotFound, E::Conflict, E::BadArgument},
              .handler = [L](Request& req) {
                return Response::json_body(
                    app::request_presegment(*L, actor_of(req), req.id_param("case_id"), req.json_body()), 202);
              }});
  router.add({.method = "POST",
              .path = "/api/jobs",
              .roles = kReviewerUp,
              .tag = "jobs",
              .summary = "Queue a batch prediction: {\"type\": \"predict_batch\", \"case_ids\": [...]} or "
                         "{\"type\": \"predict_batch\", \"cases\": \"new\"}, optional \"model\" (reviewer, admin)",
              .request_schema = S::object({{"type", S::string()},
                                           {"case_ids", S::array(S::integer())},
                                           {"cases", S::string()},
                                           {"model", S::string()}},
                                          {"type"}),
              .success_status = 202,
              .response_schema = S::ref("Job"),
              .errors = {E::NotFound, E::BadArgument},
              .handler = [L](Request& req) {
                return Response::json_body(app::request_job(*L, actor_of(req), req.json_body()), 202);
              }});
}

}  // namespace tumorlab::server
