#pragma once
// Background AI work of `tumorlab serve`: the model registry (bundles found on disk -> the
// store's models table), pre-segmentation of a stored case with the matching active model, the
// jobs that run it (presegment, predict_batch) and the JobRunner that claims them from the
// store's persistent queue with a bounded number of worker threads.
//
// Job life: queued -> running -> succeeded | failed | cancelled. Workers claim by priority
// (interactive, then pre-segmentation, batch, training; oldest first), report progress through
// the store (GET /api/jobs/{id}/events streams it), check cancel_requested between phases, and
// end a job failed with the error's message on any error (the server keeps serving). Stopping
// the runner (SIGTERM) interrupts a running job between phases and leaves it running in the
// store; the next start re-queues it (store recovery) and it runs again from the beginning.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tumorlab/app/cases.h"
#include "tumorlab/app/lab.h"

namespace tumorlab::app {

// ---- Model registry ----------------------------------------------------------------------

// Where bundles are looked for, as resolve_model does: $TUMORLAB_MODELS_DIR, ./models, the
// source tree's models/ (only existing folders, each once).
std::vector<std::filesystem::path> model_search_roots();

// Registers every bundle folder <root>/<name>/ that has model.pt, plans.json and bundle.json in
// the store's models table (name and version from bundle.json, metadata: modality, channels,
// labels, dims, patch size, target spacing, versions, training summary), and activates it when
// no version of that name is active. A folder with plans.json but no model.pt (weights still
// being trained) is skipped with an info log; an unreadable bundle.json/plans.json with a
// warning. Already registered name+version: left as it is. Audited ("admin.model_register",
// actor "system"). Returns {"registered": [...], "skipped": [{"path", "reason"}]}.
nlohmann::json register_models(Lab& lab, const std::vector<std::filesystem::path>& roots);

// ---- Pre-segmentation ----------------------------------------------------------------------

struct SegmentOptions {
  bool uncertainty = true;  // entropy map + case score (and MC-dropout when the plans have it)
  bool tta = true;          // mirroring TTA along the plans' tta_mirror_axes
  int threads = 1;          // LibTorch threads for this prediction (0: all cores)
  // Called between phases (load model, read image, predict, ...) with progress in [0, 1].
  // May throw to abandon the work (the job runner's cancel and shutdown do).
  std::function<void(double progress, const std::string& message)> on_phase;
};

// The registered model a case would be segmented with: `model` empty picks the active model
// whose plans' modality matches the case image's modality and whose channels match the image's
// channels (same count; names equal ignoring case and punctuation, or the image's names are
// generic: empty, "0000", "channel0"); `model` non-empty is the active version of that name
// (or "name@version"). nullopt when nothing matches (`why` gets "no model for modality MR with
// channels [T1]" or similar).
struct ModelChoice {
  std::int64_t model_id = 0;
  std::string name;
  std::string version;
  std::string path;  // bundle folder
};
std::optional<ModelChoice> choose_model(Lab& lab, std::int64_t case_id, const std::string& model = "",
                                        std::string* why = nullptr);

// Runs the chosen model (choose_model) on the case's stored image with uncertainty and TTA as
// the plans say, and returns the prediction ready for record_ai_prediction (nothing is written).
// Loaded bundles are cached per folder. Errors: NotFound (case, or no matching model: the
// message says which modality and channels), FileNotFound / InvalidDataset (bundle unreadable,
// corrupt model.pt), BadArgument (image the model cannot take).
AiPrediction segment_case(Lab& lab, std::int64_t case_id, const std::string& model = "",
                          const SegmentOptions& options = {});

// ---- Job requests (REST use cases) ---------------------------------------------------------

// POST /api/cases/{case_id}/presegment, body {"model"?: name}. Interactive priority. An
// annotator only on cases assigned to them or to nobody; a validated case is locked (Conflict).
// A presegment job of this case still queued or running is returned instead of a new one.
// Returns the job (API shape). Audited "job.enqueue".
nlohmann::json request_presegment(Lab& lab, const Actor& actor, std::int64_t case_id, const nlohmann::json& body);

// POST /api/jobs (reviewer, admin), body {"type": "predict_batch", "case_ids": [...]} or
// {"type": "predict_batch", "cases": "new"} (every case with status new), optional "model";
// {"type": "train", "model": NAME, ...} (see run_train in jobs.cpp); {"type": "export",
// "format": "nnunet", "name"?, "include_demo"?} (create_export as a background job: its result
// carries export_id and the download URL). Import jobs come from POST /api/uploads?background=true
// (queue_upload_import). Returns the job. Errors: BadArgument naming the field, NotFound (a case
// id, a model), Forbidden.
nlohmann::json request_job(Lab& lab, const Actor& actor, const nlohmann::json& body);

// Wakes the job runners of this process (call after enqueueing a job; runners also poll).
void notify_job_runners();

// ---- Runner --------------------------------------------------------------------------------

struct JobRunnerOptions {
  int workers = 1;            // worker threads for pre-segmentation, batch prediction, import, export (0: no runner)
  // Threads that run only train jobs, so an hours-long fine-tuning never holds up pre-segmentation
  // (0: train jobs share the workers above). Ignored when workers is 0.
  int training_workers = 1;
  int torch_threads = 1;      // LibTorch threads per job (1 keeps the HTTP threads responsive on 2 cores)
  int poll_ms = 500;          // how often idle workers look at the queue
  int stop_grace_ms = 15000;  // stop(): how long to wait for a running job to reach a check
};

class JobRunner {
 public:
  JobRunner(Lab& lab, JobRunnerOptions options);
  ~JobRunner();  // stop()
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  void start();
  // Stops claiming, interrupts running jobs at their next check (they stay "running" in the
  // store and are re-queued by the next start) and joins the workers. Returns false when a
  // worker did not stop within stop_grace_ms (it is then detached; the caller should exit
  // without running static destructors).
  bool stop();
  // Jobs finished by this runner (tests and logs).
  std::int64_t finished_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs one claimed job to its end state in the store (what a worker does; exposed for tests
// and tools). `stopping` interrupts it between phases (the job is left running).
void run_job(Lab& lab, std::int64_t job_id, const JobRunnerOptions& options, const std::atomic<bool>& stopping);

}  // namespace tumorlab::app
