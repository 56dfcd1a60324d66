#include "tumorlab/app/jobs.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "tumorlab/app/exporter.h"
#include "tumorlab/app/importer.h"
#include "tumorlab/app/json_util.h"
#include "tumorlab/app/prediction.h"
#include "tumorlab/app/training.h"
#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/core/modality.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"
#include "tumorlab/model/predictor.h"
#include "tumorlab/model/trainer.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;
using json = nlohmann::json;
using store::Id;

namespace {

// ---- small helpers ---------------------------------------------------------------------------

// Letters and digits only, lower case: "T1 post-contrast" == "t1_postcontrast".
std::string channel_key(const std::string& name) {
  std::string k;
  for (char ch : name)
    if (std::isalnum(static_cast<unsigned char>(ch)))
      k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  return k;
}

// Names that say nothing about the channel: "", "0000", "0", "channel0", "ch1", "image".
bool generic_channel_name(const std::string& name) {
  std::string k = channel_key(name);
  for (const char* prefix : {"channel", "ch", "image", "img"})
    if (k.rfind(prefix, 0) == 0) k = k.substr(std::string(prefix).size());
  return k.find_first_not_of("0123456789") == std::string::npos;
}

std::string list_text(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

std::vector<std::string> json_strings(const json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (const auto& x : j)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

// How an image fits a registered model (its metadata: "channels", "modality"): Exact when the
// channel names are the model's; Generic when the image's names say nothing (a NIfTI upload:
// "channel0") but the count and a known modality agree; None otherwise.
enum class ModelFit { None, Generic, Exact };
ModelFit model_fit(const store::Image& image, const json& model_metadata) {
  const std::string modality = canonical_modality(image.modality);
  const std::vector<std::string> channels = json_strings(model_metadata.value("channels", json::array()));
  if (channels.size() != image.channel_names.size()) return ModelFit::None;
  const std::string model_modality = canonical_modality(model_metadata.value("modality", ""));
  if (!modality.empty() && !model_modality.empty() && modality != model_modality) return ModelFit::None;
  bool exact = true, generic = true;
  for (std::size_t c = 0; c < channels.size(); ++c) {
    if (channel_key(channels[c]) != channel_key(image.channel_names[c])) exact = false;
    if (!generic_channel_name(image.channel_names[c])) generic = false;
  }
  // An image without a modality is matched on its channel names only.
  if (exact) return ModelFit::Exact;
  return generic && !modality.empty() ? ModelFit::Generic : ModelFit::None;
}

store::AuditEntry system_audit(std::string action, std::optional<Id> case_id, json detail, std::string outcome = "ok") {
  store::AuditEntry a;
  a.actor = "system";
  a.action = std::move(action);
  a.case_id = case_id;
  a.outcome = std::move(outcome);
  a.detail_json = detail.dump();
  return a;
}

// Queues a job owned by `actor` and audits it ("job.enqueue" with the job's id and type, plus
// `detail`) in the caller's transaction. Returns the job id.
Id enqueue_audited(store::WriteTxn& t, const Actor& actor, store::JobType type, store::JobPriority priority,
                   const json& params, std::optional<Id> case_id = std::nullopt, json detail = json::object()) {
  store::NewJob nj;
  nj.type = type;
  nj.priority = priority;
  nj.owner_user_id = actor.user_id;
  nj.case_id = case_id;
  nj.params_json = params.dump();
  const store::Job j = t.enqueue_job(nj);
  detail["job_id"] = j.id;
  detail["type"] = std::string(store::to_string(type));
  t.append_audit(audit_entry(actor, "job.enqueue", case_id, std::move(detail)));
  return j.id;
}

json job_api(Lab& lab, Id job_id) {
  return get_job(lab, Actor{}, job_id);
}

// ---- loaded bundles ----------------------------------------------------------------------------

struct LoadedModel {
  model::Predictor predictor;
  fs::file_time_type weights_time;
  std::mutex mutex;  // one prediction at a time per loaded network
  explicit LoadedModel(model::Predictor p, fs::file_time_type t) : predictor(std::move(p)), weights_time(t) {}
};

std::mutex g_models_mutex;
std::map<std::string, std::shared_ptr<LoadedModel>> g_models;  // by bundle folder

std::shared_ptr<LoadedModel> load_model(const std::string& folder) {
  std::error_code ec;
  const auto t = fs::last_write_time(fs::path(folder) / model::kBundleWeightsFile, ec);
  {
    std::lock_guard<std::mutex> lock(g_models_mutex);
    auto it = g_models.find(folder);
    if (it != g_models.end() && !ec && it->second->weights_time == t) return it->second;
  }
  auto loaded = std::make_shared<LoadedModel>(model::Predictor::load(folder), t);
  std::lock_guard<std::mutex> lock(g_models_mutex);
  if (g_models.size() >= 3) g_models.erase(g_models.begin());  // a few networks at most in memory
  g_models[folder] = loaded;
  return loaded;
}

// ---- job runner wake-up ------------------------------------------------------------------------

std::mutex g_wake_mutex;
std::condition_variable g_wake;
std::uint64_t g_wake_seq = 0;

// Thrown from the phase callback: shutdown (job left running) or cancel (job ends cancelled).
struct JobInterrupted {};
struct JobCancelled {};

}  // namespace

// ---- Model registry ------------------------------------------------------------------------------

std::vector<fs::path> model_search_roots() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("TUMORLAB_MODELS_DIR"); env && *env) candidates.emplace_back(env);
  candidates.emplace_back("models");
  if (std::string(TUMORLAB_SOURCE_MODELS_DIR).size() > 0) candidates.emplace_back(TUMORLAB_SOURCE_MODELS_DIR);
  std::vector<fs::path> roots;
  std::set<std::string> seen;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (!fs::is_directory(c, ec)) continue;
    const fs::path canon = fs::weakly_canonical(c, ec);
    if (!seen.insert(canon.string()).second) continue;
    roots.push_back(canon);
  }
  return roots;
}

json register_models(Lab& lab, const std::vector<fs::path>& roots) {
  json registered = json::array(), skipped = json::array();
  std::set<std::string> seen_folders;
  for (const auto& root : roots) {
    std::error_code ec;
    std::vector<fs::path> folders;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory(ec)) folders.push_back(it->path());
    std::sort(folders.begin(), folders.end());
    for (const auto& folder : folders) {
      const std::string canon = fs::weakly_canonical(folder, ec).string();
      if (!seen_folders.insert(canon).second) continue;
      if (!fs::exists(folder / model::kBundlePlansFile)) continue;  // not a bundle folder
      if (!fs::exists(folder / model::kBundleWeightsFile)) {
        log_info("models: " + canon + " has plans.json but no model.pt (not trained/exported yet): skipped");
        skipped.push_back({{"path", canon}, {"reason", "no model.pt"}});
        continue;
      }
      try {
        const model::BundleMetadata meta = model::read_bundle_metadata(folder);
        const model::Plans plans = model::load_plans(folder / model::kBundlePlansFile);
        model::check_bundle_consistency(meta, plans, folder);
        const std::string name = meta.name.empty() ? plans.name : meta.name;
        const std::string version = meta.version.empty() ? "1" : meta.version;
        json md{{"modality", plans.modality},
                {"channels", meta.channels},
                {"labels", meta.labels},
                {"dims", plans.network.dims},
                {"patch_size", plans.patch_size},
                {"target_spacing_mm", plans.target_spacing_mm},
                {"tta_mirror_axes", plans.inference.tta_mirror_axes},
                {"mc_dropout_samples", plans.inference.mc_dropout_samples},
                {"tumorlab_version", meta.tumorlab_version},
                {"torch_version", meta.torch_version},
                {"created", meta.created},
                {"training", meta.training},
                {"evaluation", meta.evaluation}};
        auto outcome = lab.store().write([&](store::WriteTxn& t) -> json {
          for (const auto& m : t.list_models())
            if (m.name == name && m.version == version) return json{{"existing", m.id}, {"path", m.path}};
          store::Model m = t.add_model(name, version, canon, md.dump());
          bool activated = false;
          if (!t.active_model(name)) {
            m = t.activate_model(m.id);
            activated = true;
          }
          t.append_audit(
              system_audit("admin.model_register", std::nullopt,
                           {{"model_id", m.id}, {"name", name}, {"version", version}, {"active", activated}}));
          return json{{"id", m.id}, {"active", activated}};
        });
        if (outcome.contains("existing")) {
          if (outcome["path"] != canon)
            log_info("models: " + name + "@" + version + " at " + canon + " already registered from " +
                     outcome["path"].get<std::string>() + ": kept that one");
          continue;
        }
        log_info("models: registered " + name + "@" + version + " (" + plans.modality + ", channels " +
                 list_text(meta.channels) + ")" + (outcome["active"].get<bool>() ? ", active" : "") + " from " + canon);
        registered.push_back({{"id", outcome["id"]},
                              {"name", name},
                              {"version", version},
                              {"path", canon},
                              {"active", outcome["active"]}});
      } catch (const Error& e) {
        log_warn("models: " + canon + " is not a usable bundle: " + e.what());
        skipped.push_back({{"path", canon}, {"reason", e.what()}});
      }
    }
  }
  return json{{"registered", registered}, {"skipped", skipped}};
}

// ---- Pre-segmentation --------------------------------------------------------------------------

std::optional<ModelChoice> choose_model(Lab& lab, std::int64_t case_id, const std::string& model, std::string* why) {
  auto [image, models] = lab.store().read([&](store::ReadTxn& t) {
    const store::Case c = t.get_case(case_id);
    return std::make_pair(t.get_image(c.image_id), t.list_models());
  });
  auto to_choice = [](const store::Model& m) { return ModelChoice{m.id, m.name, m.version, m.path}; };
  if (!model.empty()) {
    const auto at = model.find('@');
    const std::string name = model.substr(0, at);
    const std::string version = at == std::string::npos ? "" : model.substr(at + 1);
    for (const auto& m : models)
      if (m.name == name && (version.empty() ? m.active : m.version == version)) return to_choice(m);
    if (why) *why = "no " + std::string(version.empty() ? "active model named " : "model ") + model;
    return std::nullopt;
  }
  std::optional<store::Model> generic_match;
  for (const auto& m : models) {
    if (!m.active) continue;
    const ModelFit fit = model_fit(image, stored_object(m.metadata_json));
    if (fit == ModelFit::Exact) return to_choice(m);
    if (fit == ModelFit::Generic && !generic_match) generic_match = m;
  }
  if (generic_match) return to_choice(*generic_match);
  if (why)
    *why = "no model for modality " + (image.modality.empty() ? std::string("(unknown)") : image.modality) +
           " with channels " + list_text(image.channel_names);
  return std::nullopt;
}

AiPrediction segment_case(Lab& lab, std::int64_t case_id, const std::string& model, const SegmentOptions& options) {
  auto phase = [&](double p, const std::string& m) {
    if (options.on_phase) options.on_phase(p, m);
  };
  std::string why;
  const auto choice = choose_model(lab, case_id, model, &why);
  if (!choice) throw Error(ErrorCode::NotFound, "case " + std::to_string(case_id) + ": " + why);
  phase(0.05, "loading model " + choice->name + "@" + choice->version);
  const auto loaded = load_model(choice->path);
  const store::Image image =
      lab.store().read([&](store::ReadTxn& t) { return t.get_image(t.get_case(case_id).image_id); });
  phase(0.15, "reading image");
  Volume volume = io::read_image(image.path);
  if (volume.modality.empty()) volume.modality = image.modality;
  phase(0.25, "predicting with " + choice->name + "@" + choice->version);
  model::PredictOptions po;
  po.tta = options.tta && !loaded->predictor.plans().inference.tta_mirror_axes.empty();
  po.uncertainty = options.uncertainty;
  po.threads = options.threads;
  po.source = "case " + std::to_string(case_id);
  model::Prediction p;
  {
    std::lock_guard<std::mutex> lock(loaded->mutex);
    p = loaded->predictor.predict(volume, po);
  }
  phase(0.85, "predicted in " + std::to_string(static_cast<int>(p.seconds * 1000)) + " ms");
  AiPrediction out;
  out.case_id = case_id;
  out.label = std::move(p.label);
  out.model_name = choice->name;
  out.model_version = choice->version;
  if (options.uncertainty) {
    out.uncertainty = std::move(p.uncertainty);
    out.case_uncertainty = p.case_score;
    // Sorting by rank ascending puts the least certain case first (the score is in [0, 1]).
    out.al_rank = 1.0 - p.case_score;
  }
  return out;
}

// ---- Job requests ------------------------------------------------------------------------------

void notify_job_runners() {
  {
    std::lock_guard<std::mutex> lock(g_wake_mutex);
    ++g_wake_seq;
  }
  g_wake.notify_all();
}

json request_presegment(Lab& lab, const Actor& actor, std::int64_t case_id, const json& body) {
  std::string model;
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) throw Error(ErrorCode::BadArgument, "model: expected a model name (string)");
    model = body["model"].get<std::string>();
  }
  json params = json::object();
  if (!model.empty()) params["model"] = model;
  auto& st = lab.store();
  const Id job_id = st.write([&](store::WriteTxn& t) -> Id {
    const store::Case c = t.get_case(case_id);
    if (!actor.is_reviewer_or_admin() && c.assignee_user_id && *c.assignee_user_id != actor.user_id)
      throw Error(ErrorCode::Forbidden, "presegment: case " + std::to_string(case_id) + " is assigned to someone else");
    if (c.status == store::CaseStatus::Validated)
      throw Error(ErrorCode::Conflict,
                  "presegment: case " + std::to_string(case_id) + " is validated (locked); reopen it first");
    store::JobFilter f;
    f.type = store::JobType::Presegment;
    f.case_id = case_id;
    f.limit = 20;
    for (const auto& j : t.list_jobs(f))
      if ((j.state == store::JobState::Queued || j.state == store::JobState::Running) && !j.cancel_requested &&
          stored_object(j.params_json).value("model", "") == model)
        return j.id;
    return enqueue_audited(t, actor, store::JobType::Presegment, store::JobPriority::Interactive, params, case_id);
  });
  notify_job_runners();
  return job_api(lab, job_id);
}

namespace {
// {"type": "train", "model": NAME, "version"?: V, "epochs"?: N, "iterations"?: N, "time_budget"?: "20m"}
json request_train_job(Lab& lab, const Actor& actor, const json& body) {
  if (!body.contains("model") || !body["model"].is_string() || body["model"].get<std::string>().empty())
    throw Error(ErrorCode::BadArgument, "model: required for a train job (the registered model to fine-tune)");
  const std::string name = body["model"].get<std::string>();
  json tp = json::object();
  for (const char* k : {"epochs", "iterations"})
    if (body.contains(k)) {
      if (!body[k].is_number_integer()) throw Error(ErrorCode::BadArgument, std::string(k) + ": expected an integer");
      tp[k] = body[k];
    }
  if (body.contains("time_budget")) {
    if (!body["time_budget"].is_string())
      throw Error(ErrorCode::BadArgument, "time_budget: expected a duration such as \"20m\"");
    parse_duration_seconds(body["time_budget"].get<std::string>());  // BadArgument naming the text
    tp["time_budget"] = body["time_budget"];
  }
  json params{{"model", name}, {"params", tp}, {"source", "api"}};
  if (body.contains("version") && body["version"].is_string()) params["version"] = body["version"];
  const Id job_id = lab.store().write([&](store::WriteTxn& t) -> Id {
    bool known = false;
    for (const auto& m : t.list_models()) known = known || m.name == name;
    if (!known) throw Error(ErrorCode::NotFound, "model '" + name.substr(0, 80) + "' is not registered");
    return enqueue_audited(t, actor, store::JobType::Train, store::JobPriority::Train, params, std::nullopt,
                           {{"model", name}});
  });
  notify_job_runners();
  return job_api(lab, job_id);
}

// {"type": "export", "format": "nnunet", "name"?: "DatasetNNN_Name", "include_demo"?: bool}: checked
// here (the body's fields), the dataset is built by the job (create_export).
json request_export_job(Lab& lab, const Actor& actor, const json& body) {
  json params = json::object();
  params["format"] = body.value("format", std::string("nnunet"));
  if (!body.value("format", json("nnunet")).is_string() || params["format"] != "nnunet")
    throw Error(ErrorCode::BadArgument, "format: expected \"nnunet\" (validated cases as an nnU-Net v2 raw dataset)");
  if (body.contains("name")) {
    if (!body["name"].is_string()) throw Error(ErrorCode::BadArgument, "name: expected a string like Dataset500_Name");
    params["name"] = body["name"];
  }
  if (body.contains("include_demo")) {
    if (!body["include_demo"].is_boolean()) throw Error(ErrorCode::BadArgument, "include_demo: expected true or false");
    params["include_demo"] = body["include_demo"];
  }
  const Id job_id = lab.store().write([&](store::WriteTxn& t) -> Id {
    return enqueue_audited(t, actor, store::JobType::Export, store::JobPriority::Batch, params);
  });
  notify_job_runners();
  return job_api(lab, job_id);
}
}  // namespace

json request_job(Lab& lab, const Actor& actor, const json& body) {
  if (!actor.is_reviewer_or_admin()) throw Error(ErrorCode::Forbidden, "jobs: reviewer or admin only");
  if (!body.contains("type") || !body["type"].is_string())
    throw Error(ErrorCode::BadArgument, "type: required, expected \"predict_batch\"");
  const std::string type = body["type"].get<std::string>();
  if (type == "train") return request_train_job(lab, actor, body);
  if (type == "export") return request_export_job(lab, actor, body);
  if (type != "predict_batch")
    throw Error(ErrorCode::BadArgument, "type: expected \"predict_batch\", \"train\" or \"export\", got \"" +
                                            type.substr(0, 40) + "\" (imports: POST /api/uploads?background=true)");
  json params = json::object();
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) throw Error(ErrorCode::BadArgument, "model: expected a model name (string)");
    params["model"] = body["model"];
  }
  const bool has_ids = body.contains("case_ids");
  const bool has_sel = body.contains("cases");
  if (has_ids == has_sel)
    throw Error(ErrorCode::BadArgument, "case_ids or cases: give exactly one (a list of case ids, or \"new\")");
  std::vector<Id> ids;
  if (has_ids) {
    if (!body["case_ids"].is_array() || body["case_ids"].empty() || body["case_ids"].size() > 100000)
      throw Error(ErrorCode::BadArgument, "case_ids: expected a non-empty array of case ids");
    for (const auto& v : body["case_ids"]) {
      if (!v.is_number_integer()) throw Error(ErrorCode::BadArgument, "case_ids: expected integers, got " + v.dump());
      ids.push_back(v.get<Id>());
    }
  } else if (!(body["cases"].is_string() && body["cases"] == "new")) {
    throw Error(ErrorCode::BadArgument, "cases: expected \"new\" (every case with status new)");
  }
  const Id job_id = lab.store().write([&](store::WriteTxn& t) -> Id {
    std::vector<Id> list = ids;
    if (has_sel) {
      store::CaseFilter f;
      f.status = store::CaseStatus::New;
      f.limit = 1000;
      for (;;) {
        auto page = t.list_cases(f);
        for (const auto& c : page.items) list.push_back(c.id);
        if (page.items.size() < 1000) break;
        f.offset += 1000;
      }
    } else {
      for (Id id : list) t.get_case(id);  // NotFound naming the id
    }
    json p = params;
    p["case_ids"] = list;
    return enqueue_audited(t, actor, store::JobType::PredictBatch, store::JobPriority::Batch, p, std::nullopt,
                           {{"cases", list.size()}});
  });
  notify_job_runners();
  return job_api(lab, job_id);
}

// ---- Running jobs ------------------------------------------------------------------------------

namespace {

struct JobContext {
  Lab& lab;
  const store::Job& job;
  const JobRunnerOptions& options;
  const std::atomic<bool>& stopping;

  // Progress in the store, then the checks: shutdown and cancel.
  void progress(double p, const std::string& message) const {
    if (stopping) throw JobInterrupted{};
    const store::Job j =
        lab.store().write([&](store::WriteTxn& t) { return t.update_job_progress(job.id, p, message); });
    if (j.cancel_requested) throw JobCancelled{};
  }
};

// The case's AI revision from this model made since `since_ms`, if any (a re-queued job that had
// already recorded its result before the server stopped does not record it twice).
std::optional<store::LabelRevision> recorded_since(Lab& lab, Id case_id, const ModelChoice& m, store::TimeMs since_ms) {
  auto revs = lab.store().read([&](store::ReadTxn& t) { return t.list_revisions(case_id); });
  for (auto it = revs.rbegin(); it != revs.rend(); ++it)
    if (it->kind == store::RevisionKind::Ai && it->model_name == m.name && it->model_version == m.version &&
        it->created_ms >= since_ms)
      return *it;
  return std::nullopt;
}

// One case: {"revision_id", "model", ...} or {"skipped": why}. `lo..hi` is this case's share of
// the job's progress.
json presegment_one(const JobContext& ctx, Id case_id, const std::string& model, double lo, double hi,
                    const std::string& prefix) {
  std::string why;
  const auto choice = choose_model(ctx.lab, case_id, model, &why);
  if (!choice) return json{{"case_id", case_id}, {"skipped", why}};
  const store::Case c = ctx.lab.store().read([&](store::ReadTxn& t) { return t.get_case(case_id); });
  if (c.status == store::CaseStatus::Validated)
    throw Error(ErrorCode::Conflict, "case " + std::to_string(case_id) + " is validated (locked); reopen it first");
  if (ctx.job.attempts > 1)
    if (auto done = recorded_since(ctx.lab, case_id, *choice, ctx.job.created_ms))
      return json{{"case_id", case_id},
                  {"revision_id", done->id},
                  {"model", {{"name", choice->name}, {"version", choice->version}}},
                  {"note", "recorded before the restart"}};
  SegmentOptions so;
  so.uncertainty = true;
  so.tta = true;
  so.threads = ctx.options.torch_threads;
  so.on_phase = [&](double p, const std::string& m) { ctx.progress(lo + (hi - lo) * p, prefix + m); };
  AiPrediction pred = segment_case(ctx.lab, case_id, choice->name + "@" + choice->version, so);
  ctx.progress(lo + (hi - lo) * 0.9, prefix + "saving the AI revision");
  const json rev = record_ai_prediction(ctx.lab, pred);
  return json{{"case_id", case_id},
              {"revision_id", rev["id"]},
              {"model", {{"name", pred.model_name}, {"version", pred.model_version}}},
              {"voxel_count", rev["voxel_count"]},
              {"volume_ml", rev["volume_ml"]},
              {"case_score", pred.case_uncertainty ? json(*pred.case_uncertainty) : json(nullptr)}};
}

json run_presegment(const JobContext& ctx) {
  if (!ctx.job.case_id) throw Error(ErrorCode::BadArgument, "presegment job without a case");
  const json params = stored_object(ctx.job.params_json);
  ctx.progress(0.01, "choosing the model");
  json r = presegment_one(ctx, *ctx.job.case_id, params.value("model", ""), 0.0, 1.0, "");
  r.erase("case_id");
  return r;
}

json run_predict_batch(const JobContext& ctx) {
  const json params = stored_object(ctx.job.params_json);
  if (!params.contains("case_ids") || !params["case_ids"].is_array())
    throw Error(ErrorCode::BadArgument, "predict_batch job: params.case_ids missing (expected a list of case ids)");
  const std::string model = params.value("model", "");
  const auto& ids = params["case_ids"];
  const int n = static_cast<int>(ids.size());
  json cases = json::array();
  int done = 0, skipped = 0, failed = 0;
  for (int i = 0; i < n; ++i) {
    const Id id = ids[static_cast<std::size_t>(i)].get<Id>();
    const std::string prefix = "case " + std::to_string(i + 1) + "/" + std::to_string(n) + ": ";
    ctx.progress(static_cast<double>(i) / n, prefix + "starting");
    try {
      json r = presegment_one(ctx, id, model, static_cast<double>(i) / n, static_cast<double>(i + 1) / n, prefix);
      (r.contains("skipped") ? skipped : done) += 1;
      cases.push_back(std::move(r));
    } catch (const Error& e) {
      ++failed;
      cases.push_back({{"case_id", id}, {"error", e.what()}});
    }
  }
  ctx.progress(1.0, std::to_string(done) + " segmented, " + std::to_string(skipped) + " skipped, " +
                        std::to_string(failed) + " failed");
  json result{{"cases", cases}, {"segmented", done}, {"skipped", skipped}, {"failed", failed}};
  if (failed > 0 && failed == n)
    throw Error(ErrorCode::BadArgument, "every case failed; first: " + cases[0]["error"].get<std::string>());
  return result;
}

// The job's owner as the actor of its work (imports and exports are done, and audited, as them);
// "system" for jobs without one. A disabled owner stops the job.
Actor owner_actor(const JobContext& ctx) {
  if (!ctx.job.owner_user_id) return Actor{0, "system", "admin", ""};
  const store::User u = ctx.lab.store().read([&](store::ReadTxn& t) { return t.get_user(*ctx.job.owner_user_id); });
  if (u.disabled) throw Error(ErrorCode::Forbidden, "the job's owner account is disabled");
  return Actor{u.id, u.username, std::string(store::to_string(u.role)), ""};
}

// The training curve of a run folder's log.csv (epoch,lr,train_loss,val_dice,val_dice_ema,seconds):
// every epoch of the run, also those before a restart.
json training_curve(const fs::path& run) {
  json curve = json::array();
  std::ifstream in(run / "log.csv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      try {
        v.push_back(std::stod(cell));
      } catch (const std::exception&) {
        v.push_back(std::nan(""));
      }
    }
    if (v.size() < 5) continue;
    curve.push_back({{"epoch", static_cast<int>(v[0])},
                     {"lr", v[1]},
                     {"train_loss", v[2]},
                     {"val_dice", v[3]},
                     {"val_dice_ema", v[4]}});
  }
  return curve;
}

// Fine-tunes a registered model on the validated cases (their current labels), starting from its
// weights: the cases are exported as an nnU-Net dataset into DIR/training/job-<id>/dataset, trained
// into DIR/training/job-<id>/run (resumable: a job re-queued after a restart continues there) and
// exported as a new version of the model under DIR/models/<name>-<version>, registered but not
// activated (a reviewer compares it and activates it). params: {"model", "version" (default: the
// active one), "params": {"epochs" (default 10), "iterations" (default: plans), "time_budget"
// ("20m" default)}}.
json run_train(const JobContext& ctx) {
  const json params = stored_object(ctx.job.params_json);
  const std::string name = params.value("model", "");
  if (name.empty()) throw Error(ErrorCode::BadArgument, "train job: params.model missing (the model to fine-tune)");
  const json tp = params.contains("params") && params["params"].is_object() ? params["params"] : json::object();
  const auto models = ctx.lab.store().read([](store::ReadTxn& t) { return t.list_models(); });
  const std::string want = params.value("version", "");
  const store::Model* base = nullptr;
  for (const auto& m : models)
    if (m.name == name && (want.empty() ? m.active : m.version == want)) base = &m;
  if (!base)
    throw Error(ErrorCode::NotFound, "train job: no " + std::string(want.empty() ? "active " : "") + "model " + name +
                                         (want.empty() ? "" : "@" + want) + " is registered");
  const fs::path bundle = base->path;
  const model::Plans plans = model::load_plans(bundle / "plans.json");
  const fs::path work = ctx.lab.data_dir() / "training" / ("job-" + std::to_string(ctx.job.id));
  const fs::path dataset = work / "dataset";

  ctx.progress(0.01, "exporting the validated cases");
  std::error_code ec;
  if (!fs::exists(dataset / "dataset.json", ec)) {
    fs::remove_all(dataset, ec);
    Actor system{0, "system", "admin", ""};
    NnunetExportRequest er;
    er.output = dataset;
    er.dataset_name = "Dataset999_finetune";
    // The validated cases this model reads, as pre-segmentation chooses them (a NIfTI upload's
    // "channel0" fits a one-channel model of its modality), under the model's channel names.
    const json model_md = stored_object(base->metadata_json);
    er.accept = [&](const store::Image& image) -> std::optional<std::string> {
      if (model_fit(image, model_md) != ModelFit::None) return std::nullopt;
      return "does not fit " + name + " (modality " + (image.modality.empty() ? "unknown" : image.modality) +
             ", channels " + list_text(image.channel_names) + ")";
    };
    for (const auto& c : plans.channels) er.channel_names.push_back(c.name);
    try {
      export_nnunet(ctx.lab, system, er);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::EmptyInput) throw;
      throw Error(ErrorCode::EmptyInput, "train job: no validated case fits " + name + " (modality " +
                                             plans.modality + ", channels " + list_text(er.channel_names) +
                                             "; demo cases are left out)");
    }
  }
  // The dataset's channels must be the model's, in order.
  std::ifstream in(dataset / "dataset.json");
  const json ds = json::parse(in, nullptr, false);
  std::vector<std::string> got, need;
  if (ds.is_object() && ds.contains("channel_names") && ds["channel_names"].is_object())
    for (std::size_t c = 0; c < ds["channel_names"].size(); ++c)
      got.push_back(ds["channel_names"].value(std::to_string(c), ""));
  for (const auto& c : plans.channels) need.push_back(c.name);
  bool same = got.size() == need.size();
  for (std::size_t i = 0; same && i < got.size(); ++i) same = channel_key(got[i]) == channel_key(need[i]);
  if (!same)
    throw Error(ErrorCode::BadArgument, "train job: the validated cases have channels [" + list_text(got) +
                                            "], model " + name + " needs [" + list_text(need) + "]");

  TrainingRequest req;
  auto& o = req.options;
  o.dataset = dataset;
  o.plans = bundle / "plans.json";
  o.output = work / "run";
  o.init_from = bundle;
  o.epochs = tp.value("epochs", 10);
  o.iterations_per_epoch = tp.value("iterations", 0);
  o.time_budget_seconds = parse_duration_seconds(tp.value("time_budget", std::string("20m")));
  o.threads = ctx.options.torch_threads;
  o.workers = 1;
  o.max_validation_patches = 48;
  if (o.epochs < 1 || o.epochs > 1000) throw Error(ErrorCode::BadArgument, "train job: params.epochs must be 1..1000");
  if (o.iterations_per_epoch < 0 || o.iterations_per_epoch > 10000)
    throw Error(ErrorCode::BadArgument, "train job: params.iterations must be 1..10000");
  // Cancel and shutdown reach the trainer through its flag (it stops at the next iteration, saves
  // last/ and returns): from the epoch reports below, and within half a second from a watcher that
  // reads the job's row (an epoch can take minutes).
  std::atomic<bool> stop_training{false};
  std::atomic<bool> cancelled{false}, interrupted{false};
  o.cancel = &stop_training;
  struct Watcher {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread thread;
    ~Watcher() {
      {
        std::lock_guard<std::mutex> lock(m);
        done = true;
      }
      cv.notify_all();
      if (thread.joinable()) thread.join();
    }
  } watcher;
  watcher.thread = std::thread([&] {
    std::unique_lock<std::mutex> lock(watcher.m);
    while (!watcher.cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return watcher.done; })) {
      if (ctx.stopping) {
        interrupted = true;
        stop_training = true;
        continue;
      }
      try {
        if (ctx.lab.store().read([&](store::ReadTxn& t) { return t.get_job(ctx.job.id).cancel_requested; })) {
          cancelled = true;
          stop_training = true;
        }
      } catch (const std::exception&) {
        // A busy or failing store read is retried on the next tick; the epoch report checks too.
      }
    }
  });
  o.on_epoch = [&](const model::EpochReport& r) {
    try {
      ctx.progress(0.05 + 0.9 * r.epoch / std::max(1, r.epochs), "training: " + format_epoch(r));
    } catch (const JobCancelled&) {
      cancelled = true;
      stop_training = true;
    } catch (const JobInterrupted&) {
      interrupted = true;
      stop_training = true;
    }
  };
  const std::string version = base->version + "-ft" + std::to_string(ctx.job.id);
  const fs::path out = ctx.lab.data_dir() / "models" / (name + "-" + version);
  ctx.progress(0.05, "training from " + name + "@" + base->version);
  req.options.resume = true;
  const TrainingOutcome t = run_training(req);
  if (interrupted || ctx.stopping) throw JobInterrupted{};
  if (cancelled || t.result.cancelled) throw JobCancelled{};
  ctx.progress(0.96, "exporting " + name + "@" + version);
  model::export_bundle(o.output, out, "best", version);
  const json reg = register_models(ctx.lab, {ctx.lab.data_dir() / "models"});
  (void)reg;
  return json{{"model", name},
              {"from_version", base->version},
              {"version", version},
              {"bundle", out.string()},
              {"cases", ds.value("numTraining", 0)},
              {"epochs_done", t.result.epochs_done},
              {"finished", t.result.finished},
              {"best_pseudo_dice", t.result.best_val_dice},
              {"curve", training_curve(o.output)},
              {"seconds", t.result.seconds},
              {"note", "registered, not active: compare it, then activate it with POST /api/models/{id}/activate"}};
}

void finish(Lab& lab, const store::Job& job, store::JobState state, const std::string& error, const json& result) {
  try {
    lab.store().write([&](store::WriteTxn& t) {
      t.finish_job(job.id, state, error, result.dump());
      t.append_audit(system_audit("job.finish", job.case_id,
                                  {{"job_id", job.id},
                                   {"type", std::string(store::to_string(job.type))},
                                   {"state", std::string(store::to_string(state))}},
                                  state == store::JobState::Succeeded   ? "ok"
                                  : state == store::JobState::Cancelled ? "ok"
                                                                        : "failed"));
    });
  } catch (const std::exception& e) {
    log_error("jobs: cannot record the end of job " + std::to_string(job.id) + ": " + e.what());
  }
}

}  // namespace

void run_job(Lab& lab, std::int64_t job_id, const JobRunnerOptions& options, const std::atomic<bool>& stopping) {
  store::Job job;
  try {
    job = lab.store().read([&](store::ReadTxn& t) { return t.get_job(job_id); });
  } catch (const std::exception& e) {
    log_error("jobs: cannot read job " + std::to_string(job_id) + ": " + e.what());
    return;
  }
  const std::string label = "job " + std::to_string(job.id) + " (" + std::string(store::to_string(job.type)) + ")";
  const JobContext ctx{lab, job, options, stopping};
  const auto t0 = std::chrono::steady_clock::now();
  try {
    json result;
    switch (job.type) {
      case store::JobType::Presegment:
        result = run_presegment(ctx);
        break;
      case store::JobType::PredictBatch:
        result = run_predict_batch(ctx);
        break;
      case store::JobType::Train:
        result = run_train(ctx);
        break;
      case store::JobType::Import: {
        const json params = stored_object(ctx.job.params_json);
        ctx.progress(0.02, "importing " + std::to_string(params.value("files", json::array()).size()) + " file(s)");
        result = run_import_job(lab, owner_actor(ctx), params);
        break;
      }
      case store::JobType::Export:
        ctx.progress(0.02, "exporting the validated cases");
        result = create_export(lab, owner_actor(ctx), stored_object(ctx.job.params_json));
        break;
      default:
        throw Error(ErrorCode::BadArgument,
                    "job type " + std::string(store::to_string(job.type)) + " cannot run in this server (no handler)");
    }
    result["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    finish(lab, job, store::JobState::Succeeded, "", result);
    log_info("jobs: " + label + " succeeded" +
             (result.contains("skipped") && result["skipped"].is_string()
                  ? " (skipped: " + result["skipped"].get<std::string>() + ")"
                  : std::string()));
  } catch (const JobInterrupted&) {
    log_info("jobs: " + label + " interrupted by shutdown; it is re-queued at the next start");
  } catch (const JobCancelled&) {
    finish(lab, job, store::JobState::Cancelled, "", json{{"cancelled", true}});
    log_info("jobs: " + label + " cancelled");
  } catch (const Error& e) {
    finish(lab, job, store::JobState::Failed, e.what(), json::object());
    log_warn("jobs: " + label + " failed: " + e.what());
  } catch (const std::exception& e) {
    finish(lab, job, store::JobState::Failed, std::string("internal error: ") + e.what(), json::object());
    log_error("jobs: " + label + " failed with an internal error: " + e.what());
  } catch (...) {
    finish(lab, job, store::JobState::Failed, "internal error: unknown exception", json::object());
    log_error("jobs: " + label + " failed with an unknown exception");
  }
}

// ---- Runner ------------------------------------------------------------------------------------

struct JobRunner::Impl {
  Lab& lab;
  JobRunnerOptions options;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> finished{0};
  std::atomic<int> alive{0};
  std::vector<std::thread> threads;
  Impl(Lab& l, JobRunnerOptions o) : lab(l), options(o) {}

  std::optional<Id> claim(const std::vector<store::JobType>& types) {
    // A read first: the idle poll must not take the writer lock (nor when only another lane's
    // jobs are queued, e.g. a train job waiting for the busy training lane).
    const auto queued =
        lab.store().read([&](store::ReadTxn& t) { return t.count_jobs(store::JobState::Queued, types); });
    if (queued == 0) return std::nullopt;
    auto job = lab.store().write([&](store::WriteTxn& t) { return t.claim_next_job(types); });
    if (!job) return std::nullopt;
    return job->id;
  }

  // The job types a worker runs: the training lane only train jobs, the others everything else
  // (and train jobs too when there is no training lane).
  std::vector<store::JobType> lane(bool training) const {
    using T = store::JobType;
    if (training) return {T::Train};
    std::vector<T> types{T::Presegment, T::PredictBatch, T::Import, T::Export};
    if (options.training_workers <= 0) types.push_back(T::Train);
    return types;
  }

  void worker(int index, bool training) {
    const std::vector<store::JobType> types = lane(training);
    std::uint64_t seen = 0;
    while (!stopping) {
      std::optional<Id> id;
      try {
        id = claim(types);
      } catch (const std::exception& e) {
        log_warn("jobs: worker " + std::to_string(index) + ": cannot claim a job: " + e.what());
      }
      if (id) {
        run_job(lab, *id, options, stopping);
        ++finished;
        continue;
      }
      std::unique_lock<std::mutex> lock(g_wake_mutex);
      g_wake.wait_for(lock, std::chrono::milliseconds(options.poll_ms),
                      [&] { return stopping.load() || g_wake_seq != seen; });
      seen = g_wake_seq;
    }
    --alive;
  }
};

JobRunner::JobRunner(Lab& lab, JobRunnerOptions options) : impl_(std::make_unique<Impl>(lab, options)) {}

JobRunner::~JobRunner() {
  stop();
}

void JobRunner::start() {
  if (!impl_->threads.empty()) return;
  if (impl_->options.workers <= 0) return;
  try {
    sweep_incoming(impl_->lab);
  } catch (const std::exception& e) {  // leftovers stay until the next start; jobs still run
    log_warn(std::string("jobs: cannot sweep DIR/incoming: ") + e.what());
  }
  const int training = std::max(0, impl_->options.training_workers);
  for (int i = 0; i < impl_->options.workers + training; ++i) {
    ++impl_->alive;
    const bool lane = i >= impl_->options.workers;
    impl_->threads.emplace_back([this, i, lane] { impl_->worker(i, lane); });
  }
  log_info("jobs: " + std::to_string(impl_->options.workers) + " worker(s)" +
           (training > 0 ? " + " + std::to_string(training) + " for training" : std::string()) + ", " +
           std::to_string(impl_->options.torch_threads) + " LibTorch thread(s) per job");
}

bool JobRunner::stop() {
  if (impl_->threads.empty()) return true;
  impl_->stopping = true;
  notify_job_runners();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(impl_->options.stop_grace_ms);
  while (impl_->alive > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const bool clean = impl_->alive == 0;
  for (auto& t : impl_->threads) {
    if (clean)
      t.join();
    else
      t.detach();
  }
  impl_->threads.clear();
  if (!clean) log_warn("jobs: a running job did not reach a check in time; it is re-queued at the next start");
  return clean;
}

std::int64_t JobRunner::finished_count() const {
  return impl_->finished;
}

}  // namespace tumorlab::app
