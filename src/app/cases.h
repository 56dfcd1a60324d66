#pragma once
// Labelling use cases behind the REST API: the worklist, case detail, downloads, immutable label
// revisions (validated against the image grid, optimistic concurrency), statistics against the
// AI original, the status workflow with role rules, jobs, models, the audit trail, a metrics
// summary and the region tools of src/edit. Results are JSON in the API's shapes (docs/api.md).
//
// Permission rules that depend on the data (the server checks the role of each route first):
// - Everyone logged in may list and view cases, revisions, jobs and models.
// - An annotator may save, change status and self-assign only on cases assigned to them or to
//   nobody; reviewers and admins on any case.
// - Only reviewers and admins validate or reject, and assign cases to others.
// - A validated case is locked: reopen it (status in_progress) before saving.
// Every view, download, save, status change, assignment and admin action is audited.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tumorlab/app/lab.h"
#include "tumorlab/core/volume.h"

namespace tumorlab::app {

struct CaseQuery {
  std::optional<std::string> status;    // a case status
  std::optional<std::string> assignee;  // "me", "none", or a user id
  std::optional<bool> demo;
  std::string sort = "id";  // id | name | updated | uncertainty | rank | status
  bool descending = false;
  int limit = 100;
  int offset = 0;
};
nlohmann::json list_cases(Lab& lab, const Actor& actor, const CaseQuery& query);
nlohmann::json get_case(Lab& lab, const Actor& actor, std::int64_t case_id);  // audited "view"
// {"case": {...}} or {"case": null} when nothing is left to label.
nlohmann::json next_case(Lab& lab, const Actor& actor);
nlohmann::json case_history(Lab& lab, const Actor& actor, std::int64_t case_id);

// A stored file to send; the file name is built by us (never from user input).
struct FileDownload {
  std::string path;
  std::string filename;
  std::string content_type = "application/gzip";
};
FileDownload image_file(Lab& lab, const Actor& actor, std::int64_t case_id);        // audited "download"
FileDownload uncertainty_file(Lab& lab, const Actor& actor, std::int64_t case_id);  // NotFound when none
// Where the uncertainty map of an AI revision is kept (written by pre-segmentation).
std::string uncertainty_path(Lab& lab, const std::string& ai_label_sha256);

// A model's pre-segmentation of a case, as the pre-segmentation job (or an import) records it:
// an immutable revision of kind ai authored by the model, its uncertainty map kept beside it,
// the case scores for the worklist, and a new case moved to presegmented. Audited with the model
// as actor. Errors: NotFound, GeometryMismatch (label or map not on the image grid), Conflict.
struct AiPrediction {
  std::int64_t case_id = 0;
  LabelMap label;
  std::optional<Volume> uncertainty;  // one channel on the image grid
  std::string model_name;
  std::string model_version;
  std::optional<double> case_uncertainty;  // case score (higher = less sure)
  std::optional<double> al_rank;           // active-learning rank (lower = label first)
};
nlohmann::json record_ai_prediction(Lab& lab, const AiPrediction& prediction);

nlohmann::json list_revisions(Lab& lab, const Actor& actor, std::int64_t case_id);
nlohmann::json get_revision(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id);
FileDownload revision_file(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id);

struct SaveRevisionRequest {
  std::int64_t case_id = 0;
  std::string label_bytes;  // .nii.gz or .nii of the label map, on the image's grid
  // The revision the edit started from (HTTP If-Match). Given and not the case's current
  // revision -> Error(Conflict). Absent: the current revision is the parent.
  std::optional<std::int64_t> parent_revision_id;
  bool parent_is_none = false;  // If-Match: "none": the case must have no revision yet
  std::string kind = "manual";  // manual | refined
  std::string note;
  double editing_seconds = 0;  // time spent on this edit, added to the case
};
// Validates the upload (CorruptFile, GeometryMismatch, InvalidLabel), stores it durably, then
// records the revision and the audit row; a new/presegmented/rejected case moves to in_progress.
nlohmann::json save_revision(Lab& lab, const Actor& actor, const SaveRevisionRequest& request);
// Dice, changed voxels, volume change and HD95 of a revision against the case's AI original.
nlohmann::json revision_stats(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id);

// body: {"status": ..., "comment": ..., "expected_from": ...}
nlohmann::json change_status(Lab& lab, const Actor& actor, std::int64_t case_id, const nlohmann::json& body);
// body: {"user_id": id or null}
nlohmann::json assign_case(Lab& lab, const Actor& actor, std::int64_t case_id, const nlohmann::json& body);

struct JobQuery {
  std::optional<std::string> state;
  std::optional<std::string> type;
  std::optional<std::int64_t> case_id;
  bool mine = false;
  int limit = 100;
  int offset = 0;
};
nlohmann::json list_jobs(Lab& lab, const Actor& actor, const JobQuery& query);
nlohmann::json get_job(Lab& lab, const Actor& actor, std::int64_t job_id);
// The owner, a reviewer or an admin.
nlohmann::json cancel_job(Lab& lab, const Actor& actor, std::int64_t job_id);
bool job_finished(const nlohmann::json& job);

nlohmann::json list_models(Lab& lab, const Actor& actor);
nlohmann::json activate_model(Lab& lab, const Actor& actor, std::int64_t model_id);  // admin

struct AuditFilter {
  std::optional<std::int64_t> user_id;
  std::optional<std::int64_t> case_id;
  std::string action;
  std::optional<std::int64_t> after_seq;
  int limit = 100;
};
nlohmann::json query_audit(Lab& lab, const Actor& actor, const AuditFilter& filter);  // admin
nlohmann::json verify_audit(Lab& lab, const Actor& actor);                            // admin

// Cases by status; Dice of the AI original vs the current revision per case and per model
// version; editing time per case.
nlohmann::json metrics_summary(Lab& lab, const Actor& actor);

// Region tools (src/edit): tool is grow | threshold | fill_holes | remove_islands | interpolate
// | brush | erase | threshold_brush. body: the tool's settings, plus the label to start from:
// "label" (base64 .nii.gz of the working label) or "revision_id" (default: the current revision,
// or an empty label). Returns the change as a delta (box + runs in scan order, i fastest) and,
// with "return_label": true, the resulting label as base64 .nii.gz. Nothing is saved.
nlohmann::json apply_region_tool(Lab& lab, const Actor& actor, std::int64_t case_id, const std::string& tool,
                                 const nlohmann::json& body);

}  // namespace tumorlab::app
