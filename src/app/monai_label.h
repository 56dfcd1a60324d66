#pragma once
// Use cases behind the MONAI Label compatible REST subset (src/server/api_monai.cpp,
// docs/monai_label.md), so that 3D Slicer's MONAI Label module can use tumorlab as its server.
//
// Identifiers: a MONAI "image id" (and "label id", which MONAI makes equal to it) is the case
// NAME here (unique, never a patient identifier, e.g. "demo_brain_mr_001"); an unknown name is
// Error(NotFound) naming it. Label tags: "original" is the case's AI pre-segmentation (its first
// revision of kind ai), "final" is the case's current revision when a person made it (kind
// manual, refined or imported ground truth). Saving with tag "final" creates a new immutable
// revision of kind manual through save_revision (grid check, permissions, audit).
// Results are JSON in MONAI Label's shapes; every read of case data and every write is audited
// by the use cases called here.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tumorlab/app/cases.h"
#include "tumorlab/app/lab.h"

namespace tumorlab::app::monai {

// Case id of a MONAI image id (the case name). Error(BadArgument) when empty, NotFound when
// no case has that name. `field` names the query parameter in messages ("image", "label").
std::int64_t case_id_for(Lab& lab, const std::string& image_id, const std::string& field);

// GET /info/: {"name", "description", "version", "labels", "models", "trainers", "strategies",
// "scoring", "train_stats", "datastore"}. Models: the active version of every registered model
// name, {"type": "segmentation", "labels": {name: value} (background left out), "dimension",
// "description", "version", "config": {}}; trainers: one per active model name.
nlohmann::json info(Lab& lab, const Actor& actor, const std::string& server_version);

// GET /datastore/?output=stats|all|train (default stats). stats: {"total", "completed",
// "label_tags": {"original": n, "final": n}}; all: {"name", "description", "images_dir",
// "labels_dir", "objects": {name: {"image": {"ext", "info"}, "labels": {tag: {"ext", "info"}}}}};
// train: [{"image": name, "label": name}] for the cases with a final label (ids, not paths).
// Error(BadArgument) naming `output` on another value.
nlohmann::json datastore(Lab& lab, const Actor& actor, const std::string& output);

// GET /datastore/label?label=NAME&tag=final|original: the revision file (audited download).
// NotFound when the case has no label with that tag.
FileDownload label_file(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& tag);

// PUT /datastore/label?image=NAME&tag=final: a new revision of kind manual whose parent is the
// current revision (save_revision: grid check, InvalidLabel, Forbidden for an annotator on
// another user's case, Conflict on a validated case; audited "save"). `filename` is the upload's
// name as the client gave it (only its extension is looked at: NIfTI only, else
// UnsupportedFormat). Returns {"image", "label", "tag", "revision_id", "revision"}.
nlohmann::json save_label(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& tag,
                          const std::string& filename, const std::string& bytes, const nlohmann::json& params);

// POST /activelearning/{strategy}: the next case to label for this user among the open cases
// they may edit (status new, presegmented, in_progress or rejected; an annotator's own or
// unassigned cases). Strategies: "rank" (tumorlab's order: own open cases first, then
// unassigned, by active-learning rank, then uncertainty; as GET /api/cases/next), "first"
// (lowest case id), "random". {"id", "name", "case_id", "status", "strategy", "checksum"}; {}
// when no case is left. Error(NotFound) for another strategy (listing the known ones).
nlohmann::json next_sample(Lab& lab, const Actor& actor, const std::string& strategy);

// POST /infer/{model}?image=NAME: runs the registered model `model` (name, or name@version)
// on the case image synchronously (segment_case) and returns the label as .nii.gz bytes plus
// MONAI's result params ({"label_names", "model", "version", "case_uncertainty",
// "foreground_voxels", "volume_ml", "latencies": {"total"}}). Nothing is stored; audited
// "monai.infer" with the model and the outcome.
struct InferResult {
  std::string label_bytes;  // .nii.gz, on the case image's grid
  std::string filename;     // built by us: "case-<id>-<model>.nii.gz"
  nlohmann::json params;
};
InferResult infer(Lab& lab, const Actor& actor, const std::string& model, const std::string& image_id);

// POST /infer/{model}?image=NAME&output=dicom_seg: as infer, but the label comes back as a binary
// DICOM SEG (io::write_dicom_seg) that references the case's de-identified source series (kept
// at import, app/dicom_source.h): same pseudonymous patient, study and frame of reference, one
// derivation reference per frame. Segments: the model's label names, renamed by MONAI's
// params.label_info [{"name", "idx"}] where given. filename "case-<id>-<model>-seg.dcm".
// The source is checked before any model runs: a case not imported from DICOM (or imported
// before references were kept) is Error(BadArgument) saying so (audited "monai.infer" failed).
InferResult infer_dicom_seg(Lab& lab, const Actor& actor, const std::string& model, const std::string& image_id,
                            const nlohmann::json& params, const std::string& software_version);

// PUT /datastore/?image=ID (multipart "file" + "params"): imports the file as a new case through
// import_uploads (same formats and validation; DICOM, also a .zip of a series, de-identified;
// pre-segmentation job queued; audited "import"). Reviewers and admins only (Forbidden). The case
// name is the image id (its base name) for non-DICOM files, else the file's stem; a DICOM case
// gets its pseudonymous name; a taken name gets "-2", "-3", ... (nothing is overwritten).
// `filename` is the client's (only its base name and extension are used). params.modality (CT,
// MR, PT) sets the modality of images without one. Returns {"image": first case name, "images",
// "cases", "jobs", "skipped", "errors"}; an image already stored answers with its existing
// case(s). Errors name the client's file; nothing is stored when nothing could be imported.
nlohmann::json upload_image(Lab& lab, const Actor& actor, const std::string& image_id, const std::string& filename,
                            std::string bytes, const nlohmann::json& params);

// POST /train/ (model empty: every active model) and POST /train/{model}: enqueues a job of
// type train per model (training priority, owner = the caller; params {"model", "version",
// "params", "source": "monai"}); reviewers and admins only (Forbidden). A train job of that
// model still queued or running -> Conflict naming it. NotFound for an unknown model. Audited
// "job.enqueue". Returns MONAI's task shape (train_status_json) for one model, or
// {model: {"result": task, "detail": ""}} for all.
nlohmann::json start_training(Lab& lab, const Actor& actor, const std::string& model, const nlohmann::json& params);

// GET /train/: the newest train job in MONAI's task shape {"id", "type", "status" (PENDING,
// RUNNING, DONE, ERROR, STOPPED), "start_ts", "end_ts", "result", "details", "job"}; with
// all=true {"items": [...]} newest first. nullopt when there is none (the route answers 404),
// and with check_if_running when none is queued or running.
std::optional<nlohmann::json> training_status(Lab& lab, const Actor& actor, bool all, bool check_if_running);

// DELETE /train/: cancels every queued or running train job (running ones stop at their next
// check) and returns the newest of them in the task shape; {} when none was active. Reviewers
// and admins only. Audited "job.cancel" per job.
nlohmann::json stop_training(Lab& lab, const Actor& actor);

}  // namespace tumorlab::app::monai
