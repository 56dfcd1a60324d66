#pragma once
// Import of scans into a Lab: `tumorlab import`, POST /api/uploads and the demo seeding of an
// empty data folder.
//
// Sources: image files (NIfTI, NRRD, MetaImage, PNG, TIFF), DICOM files or folders (one or many
// series), .zip archives of any of these, and nnU-Net v2 raw datasets (a folder with
// dataset.json, also inside a .zip). A folder is searched recursively; files that are neither
// images nor DICOM are ignored there (given directly, they are an error).
//
// - DICOM is de-identified before anything is read from it: each file goes through
//   io::deidentify (PS3.15 basic profile, dates shifted per patient) into a private scratch
//   folder, and only the cleaned copies are scanned and read. The patient pseudonym
//   ("PAT-XXXXXXXXXX") is an HMAC of PatientID under the site key DIR/deid.key (32 random bytes,
//   created once with mode 0600, never in the database or the logs), so the same patient always
//   gets the same pseudonym; studies are keyed by the de-identified StudyInstanceUID. Case name:
//   "<pseudonym>_<modality>_s<series number>". Original identifiers never reach the database,
//   the audit trail, the logs or the answer; the file names of DICOM sources are not stored.
// - Other images: case name from the file stem (the uploader's choice), no patient row.
// - Each image is stored once (SHA-256 of our .nii.gz encoding): importing it again is reported
//   under "skipped" and adds nothing. A case name already taken gets "-2", "-3", ...
// - Every case is one unit: image file, then one write transaction with the image row, the case,
//   its label revision, its status changes, its job and the "import" audit row. A failed file
//   or series leaves no rows; it is reported under "errors" with the file named and the others
//   still import.
// - nnU-Net datasets: one case per training case (channels stacked in dataset.json order, names
//   from dataset.json) and per imagesTs case. A training label comes in as a revision of kind
//   "imported" (ground truth) and the case is moved new -> in_progress -> submitted -> validated
//   (comment "imported ground truth"), so it is exported with the validated cases at once.
//   Demo datasets (dataset.json "synthetic": true, or ImportOptions::demo) are marked demo; their
//   synthetic label is kept as an "imported" revision noted as a synthetic reference (not ground
//   truth of real data) and the case stays new, so the AI pre-segmentation shows on top of it.
// - A pre-segmentation job (store JobType::Presegment, priority presegment) is queued for every
//   new case without a label, and for every demo case.
// Modality: DICOM's own; otherwise ImportOptions::modality, else guessed from the channel names
// (CT; PET/PT/SUV -> PT; FLAIR/T1/T2/DWI/ADC/MR -> MR), else empty.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/app/lab.h"

namespace tumorlab::app {

struct ImportOptions {
  bool demo = false;           // mark everything imported as synthetic demo data
  bool presegment = true;      // queue pre-segmentation jobs
  std::string modality;        // for images without one (NIfTI, PNG, ...): "CT", "MR", "PT"; empty: guess
  std::string origin = "cli";  // audit detail: "cli", "upload" or "demo"
};

struct ImportInput {
  std::filesystem::path path;  // a file, a folder or a .zip
  std::string display_name;    // how messages name it (an upload's file name); empty: the path
};

// Imports every input. Returns
//   {"cases": [case...], "jobs": [job...], "skipped": [{"file", "reason", "image_id"}],
//    "errors": [{"file", "code", "status", "message"}], "ignored_files": n}
// (case and job objects in the shapes of GET /api/cases/{id} and /api/jobs/{id}). Errors of one
// input or series are collected, not thrown; only a failing data folder throws.
nlohmann::json import_scans(Lab& lab, const Actor& actor, const std::vector<ImportInput>& inputs,
                            const ImportOptions& options = {});

// One uploaded file (a multipart part or a raw body).
struct UploadPart {
  std::string filename;  // the client's name: used for messages and the extension only
  std::string bytes;
};
// POST /api/uploads: writes the parts into a private scratch folder under names we build
// (index + a recognised extension), imports them (origin "upload"), removes the scratch folder.
// When nothing was imported and nothing skipped, the first error is thrown (its code and
// message, naming the file); otherwise the answer lists the errors beside the cases.
// Errors: BadArgument (no file, empty file), UnsupportedFormat / CorruptFile / ... naming it.
nlohmann::json import_uploads(Lab& lab, const Actor& actor, const std::vector<UploadPart>& parts,
                              const ImportOptions& options = {});

// POST /api/uploads?background=true: the same import as a background job. The parts are written
// durably (fsync) under our own names into DIR/incoming/<32 hex>/ (mode 0700), then an import job
// (priority presegment, owner = actor) is queued with {"folder", "files": [{"file", "name"}],
// "modality", "origin", "early_errors"} and returned (API shape). Parts refused before reading
// (empty, .nhdr/.mhd) are reported in the job's result; when every part is refused, nothing is
// queued and the first error is thrown. Audited "job.enqueue".
nlohmann::json queue_upload_import(Lab& lab, const Actor& actor, const std::vector<UploadPart>& parts,
                                   const ImportOptions& options = {});
// Runs a queued import job's files (the import_uploads answer, as `actor`: the job's owner) and
// removes its incoming folder, also when the import fails (the job then fails with the first
// file's error, as import_uploads throws it). A job re-run after a crash imports again: images
// already stored are reported under "skipped".
nlohmann::json run_import_job(Lab& lab, const Actor& actor, const nlohmann::json& params);
// Removes incoming folders that no queued or running import job refers to (left by jobs
// cancelled before they ran, or by a crash between writing and queueing). Called when the job
// runner starts.
void sweep_incoming(Lab& lab);

// Seeds an empty data folder with the synthetic demo datasets (app/demo_data.h, two brain MR and
// two PET MIP cases), imported as demo (audited with actor "system", origin "demo"), each with a
// queued pre-segmentation job. Returns the import answer.
nlohmann::json seed_demo_cases(Lab& lab);

// Modality guess from channel names (see above); empty when unknown.
std::string guess_modality(const std::vector<std::string>& channel_names);

}  // namespace tumorlab::app
