#include "tumorlab/app/cases.h"

#include <cmath>
#include <filesystem>
#include <map>

#include "tumorlab/app/json_util.h"
#include "tumorlab/app/scratch.h"
#include "tumorlab/core/error.h"
#include "tumorlab/edit/tools.h"
#include "tumorlab/imaging/metrics.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;
using nlohmann::json;
using store::Id;

namespace {

json opt(const std::optional<Id>& v) {
  return v ? json(*v) : json(nullptr);
}
json opt(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

std::map<Id, std::string> usernames(Lab& lab) {
  std::map<Id, std::string> out;
  for (const auto& u : lab.store().read([](store::ReadTxn& t) { return t.list_users(); })) out[u.id] = u.username;
  return out;
}

json user_ref(const std::map<Id, std::string>& names, const std::optional<Id>& id) {
  if (!id) return nullptr;
  auto it = names.find(*id);
  return json{{"id", *id}, {"username", it == names.end() ? std::string() : it->second}};
}

json case_json(const store::Case& c, const std::map<Id, std::string>& names) {
  return json{{"id", c.id},
              {"name", c.name},
              {"image_id", c.image_id},
              {"status", std::string(store::to_string(c.status))},
              {"assignee", user_ref(names, c.assignee_user_id)},
              {"editing_seconds", c.editing_seconds},
              {"uncertainty", opt(c.uncertainty)},
              {"al_rank", opt(c.al_rank)},
              {"current_revision_id", opt(c.current_revision_id)},
              {"status_comment", c.status_comment},
              {"demo", c.demo},
              {"created_ms", c.created_ms},
              {"updated_ms", c.updated_ms}};
}

json image_json(const store::Image& im) {
  return json{{"id", im.id},     {"modality", im.modality},     {"channels", im.channel_names},
              {"size", im.size}, {"spacing_mm", im.spacing_mm}, {"file_bytes", im.file_bytes},
              {"demo", im.demo}};
}

json revision_json(const store::LabelRevision& r, const std::map<Id, std::string>& names) {
  return json{
      {"id", r.id},
      {"case_id", r.case_id},
      {"image_id", r.image_id},
      {"parent_id", opt(r.parent_id)},
      {"author", user_ref(names, r.author_user_id)},
      {"model", r.model_name.empty() ? json(nullptr) : json{{"name", r.model_name}, {"version", r.model_version}}},
      {"kind", std::string(store::to_string(r.kind))},
      {"created_ms", r.created_ms},
      {"voxel_count", r.voxel_count},
      {"volume_ml", r.volume_ml},
      {"sha256", r.sha256},
      {"file_bytes", r.file_bytes},
      {"note", r.note}};
}

json job_json(const store::Job& j) {
  const json params = stored_object(j.params_json);
  const json result = stored_object(j.result_json);
  return json{{"id", j.id},
              {"type", std::string(store::to_string(j.type))},
              {"state", std::string(store::to_string(j.state))},
              {"priority", j.priority},
              {"progress", j.progress},
              {"message", j.message},
              {"error", j.error},
              {"owner_user_id", opt(j.owner_user_id)},
              {"case_id", opt(j.case_id)},
              {"cancel_requested", j.cancel_requested},
              {"attempts", j.attempts},
              {"created_ms", j.created_ms},
              {"started_ms", j.started_ms ? json(*j.started_ms) : json(nullptr)},
              {"finished_ms", j.finished_ms ? json(*j.finished_ms) : json(nullptr)},
              {"params", params},
              {"result", result}};
}

bool may_edit(const Actor& a, const store::Case& c) {
  if (a.is_reviewer_or_admin()) return true;
  return !c.assignee_user_id || *c.assignee_user_id == a.user_id;
}

void require_edit(const Actor& a, const store::Case& c, const char* what) {
  if (!may_edit(a, c))
    throw Error(ErrorCode::Forbidden,
                std::string(what) + ": case " + std::to_string(c.id) +
                    " is assigned to another user (annotators edit their own or unassigned cases)");
}

store::CaseSort parse_sort(const std::string& s) {
  if (s == "id") return store::CaseSort::Id;
  if (s == "name") return store::CaseSort::Name;
  if (s == "updated") return store::CaseSort::Updated;
  if (s == "uncertainty") return store::CaseSort::Uncertainty;
  if (s == "rank" || s == "al_rank") return store::CaseSort::AlRank;
  if (s == "status") return store::CaseSort::Status;
  throw Error(ErrorCode::BadArgument,
              "sort: expected id, name, updated, uncertainty, rank or status, got '" + s.substr(0, 40) + "'");
}

// Parses uploaded label bytes (.nii.gz or .nii) on `grid`; errors name `field`.
LabelMap parse_label_bytes(Lab& lab, const std::string& bytes, const Geometry& grid, const std::string& field) {
  if (bytes.empty())
    throw Error(ErrorCode::BadArgument, field + ": empty upload (expected .nii.gz bytes of a label map)");
  const bool gz =
      bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
  ScratchFile tmp(lab, "req", gz ? ".nii.gz" : ".nii");
  write_file(tmp.path(), bytes);
  try {
    return io::read_label(tmp.path(), &grid);
  } catch (const Error& e) {
    // The scratch name means nothing to the client: name the field instead.
    throw Error(e.code(), rename_in_message(e.what(), tmp.path(), field));
  }
}

std::string encode_label(Lab& lab, const LabelMap& label) {
  ScratchFile tmp(lab, "req", ".nii.gz");
  io::write_label(label, tmp.path());
  return read_file(tmp.path());
}

store::LabelRevision revision_of_case(store::ReadTxn& t, Id case_id, Id revision_id) {
  t.get_case(case_id);  // NotFound for an unknown case
  auto r = t.get_revision(revision_id);
  if (r.case_id != case_id)
    throw Error(ErrorCode::NotFound,
                "revision " + std::to_string(revision_id) + " does not belong to case " + std::to_string(case_id));
  return r;
}

}  // namespace

// ---- Cases -----------------------------------------------------------------------------------

json list_cases(Lab& lab, const Actor& actor, const CaseQuery& q) {
  store::CaseFilter f;
  if (q.status) f.status = store::parse_case_status(*q.status);
  if (q.assignee) {
    if (*q.assignee == "me")
      f.assignee_user_id = actor.user_id;
    else if (*q.assignee == "none")
      f.unassigned_only = true;
    else {
      char* end = nullptr;
      long long id = std::strtoll(q.assignee->c_str(), &end, 10);
      if (q.assignee->empty() || *end != '\0' || id <= 0)
        throw Error(ErrorCode::BadArgument,
                    "assignee: expected me, none or a user id, got '" + q.assignee->substr(0, 40) + "'");
      f.assignee_user_id = id;
    }
  }
  f.demo = q.demo;
  f.sort = parse_sort(q.sort);
  f.descending = q.descending;
  if (q.limit < 1 || q.limit > 1000)
    throw Error(ErrorCode::BadArgument, "limit: expected 1..1000, got " + std::to_string(q.limit));
  if (q.offset < 0) throw Error(ErrorCode::BadArgument, "offset: expected >= 0");
  f.limit = q.limit;
  f.offset = q.offset;
  auto list = lab.store().read([&](store::ReadTxn& t) { return t.list_cases(f); });
  auto names = usernames(lab);
  json items = json::array();
  for (const auto& c : list.items) items.push_back(case_json(c, names));
  return json{{"items", items}, {"total", list.total}, {"limit", f.limit}, {"offset", f.offset}};
}

json get_case(Lab& lab, const Actor& actor, std::int64_t case_id) {
  struct Out {
    store::Case c;
    store::Image im;
    std::optional<store::LabelRevision> ai;
    std::size_t revisions = 0;
  };
  auto& st = lab.store();
  auto o = st.read([&](store::ReadTxn& t) {
    Out o{t.get_case(case_id), {}, {}, 0};
    o.im = t.get_image(o.c.image_id);
    o.ai = t.first_ai_revision(case_id);
    o.revisions = t.list_revisions(case_id).size();
    return o;
  });
  st.audit(audit_entry(actor, "view", case_id));
  auto names = usernames(lab);
  json j = case_json(o.c, names);
  j["image"] = image_json(o.im);
  j["ai_revision_id"] = o.ai ? json(o.ai->id) : json(nullptr);
  j["revision_count"] = o.revisions;
  j["has_uncertainty"] = o.ai && fs::exists(uncertainty_path(lab, o.ai->sha256));
  return j;
}

json next_case(Lab& lab, const Actor& actor) {
  auto c = lab.store().read([&](store::ReadTxn& t) { return t.next_case(actor.user_id); });
  if (!c) return json{{"case", nullptr}};
  return json{{"case", case_json(*c, usernames(lab))}};
}

json case_history(Lab& lab, const Actor& actor, std::int64_t case_id) {
  auto events = lab.store().read([&](store::ReadTxn& t) {
    t.get_case(case_id);
    return t.case_history(case_id);
  });
  auto names = usernames(lab);
  json items = json::array();
  for (const auto& e : events)
    items.push_back(
        {{"id", e.id},
         {"event", e.event},
         {"from_status", e.from_status ? json(std::string(store::to_string(*e.from_status))) : json(nullptr)},
         {"to_status", e.to_status ? json(std::string(store::to_string(*e.to_status))) : json(nullptr)},
         {"assignee", user_ref(names, e.assignee_user_id)},
         {"by", user_ref(names, e.user_id)},
         {"comment", e.comment},
         {"time_ms", e.time_ms}});
  return json{{"items", items}};
}

FileDownload image_file(Lab& lab, const Actor& actor, std::int64_t case_id) {
  auto& st = lab.store();
  auto im = st.read([&](store::ReadTxn& t) { return t.get_image(t.get_case(case_id).image_id); });
  st.audit(audit_entry(actor, "download", case_id, {{"what", "image"}, {"image_id", im.id}}));
  return FileDownload{im.path, "case-" + std::to_string(case_id) + "-image.nii.gz", "application/gzip"};
}

std::string uncertainty_path(Lab& lab, const std::string& ai_label_sha256) {
  return (lab.data_dir() / "uncertainty" / (ai_label_sha256 + ".nii.gz")).string();
}

FileDownload uncertainty_file(Lab& lab, const Actor& actor, std::int64_t case_id) {
  auto& st = lab.store();
  auto ai = st.read([&](store::ReadTxn& t) {
    t.get_case(case_id);
    return t.first_ai_revision(case_id);
  });
  if (!ai)
    throw Error(ErrorCode::NotFound,
                "case " + std::to_string(case_id) + " has no AI pre-segmentation, so no uncertainty map");
  std::string path = uncertainty_path(lab, ai->sha256);
  if (!fs::exists(path))
    throw Error(ErrorCode::NotFound, "case " + std::to_string(case_id) + " has no uncertainty map");
  st.audit(audit_entry(actor, "download", case_id, {{"what", "uncertainty"}, {"revision_id", ai->id}}));
  return FileDownload{path, "case-" + std::to_string(case_id) + "-uncertainty.nii.gz", "application/gzip"};
}

// ---- Revisions -------------------------------------------------------------------------------

json record_ai_prediction(Lab& lab, const AiPrediction& p) {
  auto& st = lab.store();
  if (p.model_name.empty() || p.model_version.empty())
    throw Error(ErrorCode::BadArgument, "AI prediction: model name and version are required");
  store::Case c = st.read([&](store::ReadTxn& t) { return t.get_case(p.case_id); });
  const Geometry grid = lab.image_geometry(c.image_id);
  if (!p.label.geometry().same_grid(grid))
    throw Error(ErrorCode::GeometryMismatch,
                "AI label of case " + std::to_string(c.id) + ": " + p.label.geometry().difference(grid));
  std::string uncertainty_file;
  if (p.uncertainty) {
    if (!p.uncertainty->geometry().same_grid(grid) || p.uncertainty->channels() != 1)
      throw Error(ErrorCode::GeometryMismatch,
                  "uncertainty map of case " + std::to_string(c.id) + ": expected one channel on the image grid");
  }
  std::string bytes = encode_label(lab, p.label);
  store::NewRevision nr;
  nr.case_id = c.id;
  nr.expected_parent_id = c.current_revision_id;
  nr.model_name = p.model_name;
  nr.model_version = p.model_version;
  nr.kind = store::RevisionKind::Ai;
  nr.voxel_count = p.label.count_nonzero();
  nr.volume_ml = static_cast<double>(nr.voxel_count) * grid.voxel_volume_ml();
  store::AuditEntry a;
  a.actor = p.model_name + "@" + p.model_version;
  a.action = "save";
  a.detail_json = json{{"kind", "ai"}, {"voxels", nr.voxel_count}}.dump();
  auto rev = st.save_revision(nr, bytes, a);
  if (p.uncertainty) {
    // After the revision: a crash in between leaves it without a map (404), never with half a
    // map (write_image writes a temp file and renames it).
    fs::path path = uncertainty_path(lab, rev.sha256);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw Error(ErrorCode::IoFailure, "cannot create " + path.parent_path().string() + ": " + ec.message());
    io::write_image(*p.uncertainty, path);
  }
  st.write([&](store::WriteTxn& t) {
    if (p.case_uncertainty || p.al_rank) t.set_case_scores(c.id, p.case_uncertainty, p.al_rank);
    if (t.get_case(c.id).status == store::CaseStatus::New)
      t.set_case_status(c.id, store::CaseStatus::Presegmented, std::nullopt, "pre-segmented by " + a.actor);
  });
  return revision_json(rev, usernames(lab));
}

json list_revisions(Lab& lab, const Actor& actor, std::int64_t case_id) {
  auto revs = lab.store().read([&](store::ReadTxn& t) {
    t.get_case(case_id);
    return t.list_revisions(case_id);
  });
  auto names = usernames(lab);
  json items = json::array();
  for (const auto& r : revs) items.push_back(revision_json(r, names));
  return json{{"items", items}};
}

json get_revision(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id) {
  auto r = lab.store().read([&](store::ReadTxn& t) { return revision_of_case(t, case_id, revision_id); });
  return revision_json(r, usernames(lab));
}

FileDownload revision_file(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id) {
  auto& st = lab.store();
  auto r = st.read([&](store::ReadTxn& t) { return revision_of_case(t, case_id, revision_id); });
  st.audit(audit_entry(actor, "download", case_id, {{"what", "label"}, {"revision_id", revision_id}}));
  return FileDownload{r.path, "case-" + std::to_string(case_id) + "-rev-" + std::to_string(revision_id) + ".nii.gz",
                      "application/gzip"};
}

json save_revision(Lab& lab, const Actor& actor, const SaveRevisionRequest& req) {
  auto& st = lab.store();
  store::Case c = st.read([&](store::ReadTxn& t) { return t.get_case(req.case_id); });
  require_edit(actor, c, "save");
  if (c.status == store::CaseStatus::Validated)
    throw Error(ErrorCode::Conflict,
                "case " + std::to_string(c.id) + " is validated: reopen it (status in_progress) before saving");
  store::RevisionKind kind = store::parse_revision_kind(req.kind);
  if (kind != store::RevisionKind::Manual && kind != store::RevisionKind::Refined)
    throw Error(ErrorCode::BadArgument, "kind: expected manual or refined, got " + req.kind);
  if (req.note.size() > 2000) throw Error(ErrorCode::BadArgument, "note: at most 2000 characters");
  if (!(req.editing_seconds >= 0 && req.editing_seconds <= 86400))
    throw Error(ErrorCode::BadArgument, "editing_seconds: expected 0..86400");

  const Geometry grid = lab.image_geometry(c.image_id);
  LabelMap label = parse_label_bytes(lab, req.label_bytes, grid, "label upload");
  // Stored in one canonical encoding (our writer), whatever the client sent.
  std::string bytes = encode_label(lab, label);

  store::NewRevision nr;
  nr.case_id = c.id;
  if (req.parent_is_none)
    nr.expected_parent_id = std::nullopt;
  else if (req.parent_revision_id)
    nr.expected_parent_id = req.parent_revision_id;
  else
    nr.expected_parent_id = c.current_revision_id;
  nr.author_user_id = actor.user_id;
  nr.kind = kind;
  nr.voxel_count = label.count_nonzero();
  nr.volume_ml = static_cast<double>(nr.voxel_count) * grid.voxel_volume_ml();
  nr.note = req.note;
  // The label file is durable before the row exists; the row, its audit entry, the status
  // change and the editing time commit together (one transaction, one fsync of the database).
  const store::StoredFile file = st.put_label_bytes(bytes);
  nr.sha256 = file.sha256;
  auto rev = st.write([&](store::WriteTxn& t) {
    auto r = t.add_revision(nr);
    t.append_audit(
        audit_entry(actor, "save", c.id,
              {{"kind", req.kind}, {"voxels", nr.voxel_count}, {"revision_id", r.id}, {"sha256", r.sha256}}));
    // Saving starts (or resumes) work on the case; the time spent is added.
    auto now = t.get_case(c.id);
    if (now.status == store::CaseStatus::New || now.status == store::CaseStatus::Presegmented ||
        now.status == store::CaseStatus::Rejected)
      t.set_case_status(c.id, store::CaseStatus::InProgress, actor.user_id, "saved a revision");
    if (req.editing_seconds > 0) t.add_editing_seconds(c.id, req.editing_seconds);
    return r;
  });
  return revision_json(rev, usernames(lab));
}

json revision_stats(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id) {
  auto& st = lab.store();
  struct Pair {
    store::LabelRevision rev;
    std::optional<store::LabelRevision> ai;
  };
  auto p = st.read([&](store::ReadTxn& t) {
    return Pair{revision_of_case(t, case_id, revision_id), t.first_ai_revision(case_id)};
  });
  json out{{"revision_id", revision_id}, {"voxel_count", p.rev.voxel_count}, {"volume_ml", p.rev.volume_ml}};
  if (!p.ai) {
    out["ai_revision_id"] = nullptr;
    out["dice"] = nullptr;
    out["changed_voxels"] = nullptr;
    out["volume_change_ml"] = nullptr;
    out["hd95_mm"] = nullptr;
    return out;
  }
  LabelMap rev = io::read_label(p.rev.path);
  LabelMap ai = io::read_label(p.ai->path);
  if (!rev.geometry().same_grid(ai.geometry()))
    throw Error(ErrorCode::GeometryMismatch,
                "revision " + std::to_string(revision_id) + " and the AI original are on different grids");
  std::int64_t changed = 0;
  for (std::size_t i = 0; i < rev.voxels().size(); ++i) changed += rev.voxels()[i] != ai.voxels()[i];
  auto m = imaging::compute_metrics(rev, ai);
  out["ai_revision_id"] = p.ai->id;
  out["ai_voxel_count"] = p.ai->voxel_count;
  out["dice"] = m.dice;
  out["changed_voxels"] = changed;
  out["volume_change_ml"] = p.rev.volume_ml - p.ai->volume_ml;
  out["hd95_mm"] = std::isfinite(m.hd95_mm) ? json(m.hd95_mm) : json(nullptr);
  return out;
}

// ---- Workflow --------------------------------------------------------------------------------

json change_status(Lab& lab, const Actor& actor, std::int64_t case_id, const json& body) {
  store::CaseStatus to = store::parse_case_status(json_string(body, "status"));
  std::string comment = json_opt_string(body, "comment").value_or("");
  if (comment.size() > 2000) throw Error(ErrorCode::BadArgument, "comment: at most 2000 characters");
  std::optional<store::CaseStatus> expected;
  if (auto e = json_opt_string(body, "expected_from")) expected = store::parse_case_status(*e);
  auto& st = lab.store();
  store::Case c = st.read([&](store::ReadTxn& t) { return t.get_case(case_id); });
  const bool review = to == store::CaseStatus::Validated || to == store::CaseStatus::Rejected;
  if (review && !actor.is_reviewer_or_admin()) {
    st.audit(audit_entry(actor, "status", case_id, {{"to", std::string(store::to_string(to))}}, "denied"));
    throw Error(ErrorCode::Forbidden,
                "status " + std::string(store::to_string(to)) + ": only reviewers and admins may validate or reject");
  }
  require_edit(actor, c, "status");
  auto updated = st.write([&](store::WriteTxn& t) {
    auto before = t.get_case(case_id);
    auto after = t.set_case_status(case_id, to, actor.user_id, comment, expected);
    t.append_audit(
        audit_entry(actor, "status", case_id,
              {{"from", std::string(store::to_string(before.status))}, {"to", std::string(store::to_string(to))}}));
    return after;
  });
  return case_json(updated, usernames(lab));
}

json assign_case(Lab& lab, const Actor& actor, std::int64_t case_id, const json& body) {
  if (!body.contains("user_id")) throw Error(ErrorCode::BadArgument, "field 'user_id' is required (a user id or null)");
  std::optional<Id> who = json_opt_int(body, "user_id");
  auto& st = lab.store();
  store::Case c = st.read([&](store::ReadTxn& t) { return t.get_case(case_id); });
  if (!actor.is_reviewer_or_admin()) {
    // Annotators may take an unassigned case, or give back their own.
    const bool take = who && *who == actor.user_id && !c.assignee_user_id;
    const bool give_back = !who && c.assignee_user_id && *c.assignee_user_id == actor.user_id;
    if (!take && !give_back)
      throw Error(ErrorCode::Forbidden, "assign: annotators may only take an unassigned case or give back their own");
  }
  auto updated = st.write([&](store::WriteTxn& t) {
    if (who) {
      auto u = t.get_user(*who);
      if (u.disabled) throw Error(ErrorCode::Conflict, "user_id: user " + std::to_string(*who) + " is disabled");
    }
    auto after = t.assign_case(case_id, who, actor.user_id);
    t.append_audit(audit_entry(actor, "assign", case_id, {{"user_id", opt(who)}}));
    return after;
  });
  return case_json(updated, usernames(lab));
}

// ---- Jobs ------------------------------------------------------------------------------------

json list_jobs(Lab& lab, const Actor& actor, const JobQuery& q) {
  store::JobFilter f;
  if (q.state) f.state = store::parse_job_state(*q.state);
  if (q.type) f.type = store::parse_job_type(*q.type);
  f.case_id = q.case_id;
  if (q.mine) f.owner_user_id = actor.user_id;
  if (q.limit < 1 || q.limit > 1000) throw Error(ErrorCode::BadArgument, "limit: expected 1..1000");
  if (q.offset < 0) throw Error(ErrorCode::BadArgument, "offset: expected >= 0");
  f.limit = q.limit;
  f.offset = q.offset;
  auto jobs = lab.store().read([&](store::ReadTxn& t) { return t.list_jobs(f); });
  json items = json::array();
  for (const auto& j : jobs) items.push_back(job_json(j));
  return json{{"items", items}};
}

json get_job(Lab& lab, const Actor& actor, std::int64_t job_id) {
  return job_json(lab.store().read([&](store::ReadTxn& t) { return t.get_job(job_id); }));
}

json cancel_job(Lab& lab, const Actor& actor, std::int64_t job_id) {
  auto& st = lab.store();
  auto j = st.write([&](store::WriteTxn& t) {
    auto job = t.get_job(job_id);
    const bool owner = job.owner_user_id && *job.owner_user_id == actor.user_id;
    if (!owner && !actor.is_reviewer_or_admin())
      throw Error(ErrorCode::Forbidden,
                  "cancel: only the job's owner, a reviewer or an admin may cancel job " + std::to_string(job_id));
    if (job.state != store::JobState::Queued && job.state != store::JobState::Running)
      throw Error(ErrorCode::Conflict, "job " + std::to_string(job_id) + " already ended (" +
                                           std::string(store::to_string(job.state)) + ")");
    auto after = t.request_job_cancel(job_id);
    t.append_audit(audit_entry(actor, "job.cancel", job.case_id, {{"job_id", job_id}}));
    return after;
  });
  return job_json(j);
}

bool job_finished(const json& job) {
  std::string s = job.value("state", "");
  return s == "succeeded" || s == "failed" || s == "cancelled";
}

// ---- Models ----------------------------------------------------------------------------------

json list_models(Lab& lab, const Actor& actor) {
  auto models = lab.store().read([](store::ReadTxn& t) { return t.list_models(); });
  json items = json::array();
  for (const auto& m : models) {
    const json meta = stored_object(m.metadata_json);
    items.push_back({{"id", m.id},
                     {"name", m.name},
                     {"version", m.version},
                     {"active", m.active},
                     {"metadata", meta},
                     {"created_ms", m.created_ms}});
  }
  return json{{"items", items}};
}

json activate_model(Lab& lab, const Actor& actor, std::int64_t model_id) {
  if (!actor.is_admin()) throw Error(ErrorCode::Forbidden, "activate model: admin only");
  auto m = lab.store().write([&](store::WriteTxn& t) {
    auto after = t.activate_model(model_id);
    t.append_audit(audit_entry(actor, "admin.model_activate", std::nullopt,
                         {{"model_id", model_id}, {"name", after.name}, {"version", after.version}}));
    return after;
  });
  return json{{"id", m.id}, {"name", m.name}, {"version", m.version}, {"active", m.active}};
}

// ---- Audit -----------------------------------------------------------------------------------

json query_audit(Lab& lab, const Actor& actor, const AuditFilter& filter) {
  if (!actor.is_admin()) throw Error(ErrorCode::Forbidden, "audit: admin only");
  store::AuditQuery q;
  q.user_id = filter.user_id;
  q.case_id = filter.case_id;
  q.action = filter.action;
  q.after_seq = filter.after_seq;
  if (filter.limit < 1 || filter.limit > 1000) throw Error(ErrorCode::BadArgument, "limit: expected 1..1000");
  q.limit = filter.limit;
  auto rows = lab.store().read([&](store::ReadTxn& t) { return t.list_audit(q); });
  json items = json::array();
  for (const auto& r : rows) {
    const json detail = stored_object(r.detail_json);
    items.push_back({{"seq", r.seq},
                     {"time_ms", r.time_ms},
                     {"user_id", opt(r.user_id)},
                     {"actor", r.actor},
                     {"action", r.action},
                     {"case_id", opt(r.case_id)},
                     {"outcome", r.outcome},
                     {"detail", detail},
                     {"hash", r.hash}});
  }
  return json{{"items", items}};
}

json verify_audit(Lab& lab, const Actor& actor) {
  if (!actor.is_admin()) throw Error(ErrorCode::Forbidden, "audit: admin only");
  auto v = lab.store().verify_audit();
  return json{{"intact", v.intact},
              {"rows_checked", v.rows_checked},
              {"first_broken_seq", v.first_broken_seq ? json(*v.first_broken_seq) : json(nullptr)},
              {"reason", v.reason}};
}

// ---- Metrics ---------------------------------------------------------------------------------

json metrics_summary(Lab& lab, const Actor& actor) {
  auto& st = lab.store();
  struct Row {
    store::Case c;
    std::optional<store::LabelRevision> ai, current;
  };
  std::vector<Row> rows;
  st.read([&](store::ReadTxn& t) {
    rows.clear();
    store::CaseFilter f;
    f.limit = 1000;
    for (int offset = 0;; offset += f.limit) {
      f.offset = offset;
      auto list = t.list_cases(f);
      for (auto& c : list.items) {
        Row r{c, t.first_ai_revision(c.id), std::nullopt};
        if (c.current_revision_id) r.current = t.get_revision(*c.current_revision_id);
        rows.push_back(std::move(r));
      }
      if (static_cast<std::int64_t>(offset + f.limit) >= list.total) break;
    }
  });
  std::map<std::string, int> by_status;
  json per_case = json::array();
  std::map<std::string, std::pair<double, int>> per_model;  // sum of Dice, count
  double editing_sum = 0;
  int editing_n = 0;
  for (const auto& r : rows) {
    by_status[std::string(store::to_string(r.c.status))]++;
    json entry{{"case_id", r.c.id},
               {"name", r.c.name},
               {"status", std::string(store::to_string(r.c.status))},
               {"editing_seconds", r.c.editing_seconds},
               {"dice_ai_vs_current", nullptr},
               {"model", nullptr},
               {"final_ms", r.current ? json(r.current->created_ms) : json(nullptr)}};
    if (r.c.editing_seconds > 0) {
      editing_sum += r.c.editing_seconds;
      ++editing_n;
    }
    if (r.ai && r.current && r.current->id != r.ai->id) {
      try {
        LabelMap a = io::read_label(r.ai->path);
        LabelMap b = io::read_label(r.current->path);
        if (a.geometry().same_grid(b.geometry())) {
          std::int64_t inter = 0, na = 0, nb = 0;
          for (std::size_t i = 0; i < a.voxels().size(); ++i) {
            bool x = a.voxels()[i] != 0, y = b.voxels()[i] != 0;
            inter += x && y;
            na += x;
            nb += y;
          }
          double dice = na + nb == 0 ? 1.0 : 2.0 * static_cast<double>(inter) / static_cast<double>(na + nb);
          std::string model = r.ai->model_name + "@" + r.ai->model_version;
          entry["dice_ai_vs_current"] = dice;
          entry["model"] = model;
          per_model[model].first += dice;
          per_model[model].second += 1;
        }
      } catch (const Error&) {
        // An unreadable label file is reported by the revision routes; the summary skips it.
      }
    } else if (r.ai && r.current && r.current->id == r.ai->id) {
      entry["dice_ai_vs_current"] = 1.0;  // accepted unchanged
      std::string model = r.ai->model_name + "@" + r.ai->model_version;
      entry["model"] = model;
      per_model[model].first += 1.0;
      per_model[model].second += 1;
    }
    per_case.push_back(entry);
  }
  json models = json::array();
  for (const auto& [name, v] : per_model)
    models.push_back({{"model", name}, {"mean_dice", v.first / v.second}, {"cases", v.second}});
  return json{{"cases_by_status", by_status},
              {"cases", per_case},
              {"per_model", models},
              {"mean_editing_seconds", editing_n ? json(editing_sum / editing_n) : json(nullptr)},
              {"total_cases", rows.size()}};
}

// ---- Region tools ----------------------------------------------------------------------------

namespace {

Size3 json_index(const json& body, const std::string& key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_array() || it->size() != 3)
    throw Error(ErrorCode::BadArgument, "field '" + key + "': expected [i, j, k]");
  Size3 out{};
  for (int a = 0; a < 3; ++a) {
    if (!(*it)[a].is_number_integer()) throw Error(ErrorCode::BadArgument, "field '" + key + "': expected integers");
    out[a] = (*it)[a].get<std::int64_t>();
  }
  return out;
}

imaging::Box json_box(const json& body, const std::string& key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_object())
    throw Error(ErrorCode::BadArgument, "field '" + key + "': expected {begin: [i,j,k], end: [i,j,k]}");
  return imaging::Box{json_index(*it, "begin"), json_index(*it, "end")};
}

edit::DrawOver json_draw_over(const json& body, edit::DrawOver fallback) {
  auto v = json_opt_string(body, "draw_over");
  if (!v) return fallback;
  if (*v == "all") return edit::DrawOver::all();
  if (*v == "background") return edit::DrawOver::background();
  if (v->rfind("label:", 0) == 0) {
    int l = std::atoi(v->c_str() + 6);
    if (l < 0 || l > 255) throw Error(ErrorCode::BadArgument, "draw_over: label must be 0..255");
    return edit::DrawOver::only(static_cast<uint8_t>(l));
  }
  throw Error(ErrorCode::BadArgument, "draw_over: expected all, background or label:N");
}

edit::Connectivity json_connectivity(const json& body, edit::Connectivity fallback) {
  auto v = json_opt_string(body, "connectivity");
  if (!v) return fallback;
  if (*v == "face") return edit::Connectivity::Face;
  if (*v == "full") return edit::Connectivity::Full;
  throw Error(ErrorCode::BadArgument, "connectivity: expected face or full");
}

edit::BrushSettings json_brush(const json& body) {
  edit::BrushSettings s;
  auto it = body.find("points");
  if (it == body.end() || !it->is_array() || it->empty() || it->size() > 100000)
    throw Error(ErrorCode::BadArgument, "field 'points': expected a list of [i, j, k] (1..100000 points)");
  for (const auto& p : *it) {
    if (!p.is_array() || p.size() != 3 || !p[0].is_number() || !p[1].is_number() || !p[2].is_number())
      throw Error(ErrorCode::BadArgument, "field 'points': each point is [i, j, k]");
    s.points.push_back(IndexIJK{p[0].get<double>(), p[1].get<double>(), p[2].get<double>()});
  }
  s.radius_mm = json_opt_double(body, "radius_mm").value_or(1.0);
  if (!(s.radius_mm >= 0 && s.radius_mm <= 100)) throw Error(ErrorCode::BadArgument, "radius_mm: expected 0..100");
  auto shape = json_opt_string(body, "shape").value_or("disc");
  if (shape == "disc")
    s.shape = edit::BrushShape::Disc;
  else if (shape == "sphere")
    s.shape = edit::BrushShape::Sphere;
  else
    throw Error(ErrorCode::BadArgument, "shape: expected disc or sphere");
  s.axis = static_cast<int>(json_int_in(body, "axis", 0, 2, 2));
  s.label = static_cast<uint8_t>(json_int_in(body, "label_value", 0, 255, 1));
  s.draw_over = json_draw_over(body, edit::DrawOver::all());
  return s;
}

}  // namespace

json apply_region_tool(Lab& lab, const Actor& actor, std::int64_t case_id, const std::string& tool, const json& body) {
  auto& st = lab.store();
  store::Case c = st.read([&](store::ReadTxn& t) { return t.get_case(case_id); });
  const Geometry grid = lab.image_geometry(c.image_id);

  // The label to start from.
  LabelMap labels;
  if (auto b64 = json_opt_string(body, "label")) {
    labels = parse_label_bytes(lab, base64_decode(*b64, "label"), grid, "label");
  } else {
    std::optional<Id> rid = json_opt_int(body, "revision_id");
    if (!rid) rid = c.current_revision_id;
    if (rid) {
      auto r = st.read([&](store::ReadTxn& t) { return revision_of_case(t, case_id, *rid); });
      labels = io::read_label(r.path, &grid);
    } else {
      labels = LabelMap(grid);
    }
  }
  auto image = [&] {
    auto im = st.read([&](store::ReadTxn& t) { return t.get_image(c.image_id); });
    return io::read_image(im.path);
  };
  const int channel = static_cast<int>(json_int_in(body, "channel", 0, 255, 0));
  const uint8_t value = static_cast<uint8_t>(json_int_in(body, "label_value", 0, 255, 1));

  edit::LabelDelta delta;
  if (tool == "grow") {
    edit::RegionGrowSettings s;
    s.seed = json_index(body, "seed");
    s.tolerance = json_opt_double(body, "tolerance").value_or(0);
    s.lower = json_opt_double(body, "lower");
    s.upper = json_opt_double(body, "upper");
    s.connectivity = json_connectivity(body, edit::Connectivity::Face);
    if (body.contains("box")) s.box = json_box(body, "box");
    if (auto ax = json_opt_int(body, "slice_axis")) s.slice_axis = static_cast<int>(*ax);
    s.channel = channel;
    s.label = value;
    s.draw_over = json_draw_over(body, edit::DrawOver::all());
    s.max_voxels = json_opt_int(body, "max_voxels").value_or(0);
    delta = edit::region_grow(image(), labels, s);
  } else if (tool == "threshold") {
    edit::ThresholdSettings s;
    s.box = json_box(body, "box");
    s.lower = json_double(body, "lower");
    s.upper = json_double(body, "upper");
    if (auto ax = json_opt_int(body, "slice_axis"))
      s.slice = edit::SliceRestriction{static_cast<int>(*ax), json_int(body, "slice_index")};
    s.channel = channel;
    s.label = value;
    s.draw_over = json_draw_over(body, edit::DrawOver::all());
    delta = edit::threshold_box(image(), labels, s);
  } else if (tool == "fill_holes") {
    edit::FillHolesSettings s;
    s.label = value;
    auto mode = json_opt_string(body, "mode").value_or("slice");
    if (mode == "slice")
      s.mode = edit::FillMode::PerSlice2D;
    else if (mode == "volume")
      s.mode = edit::FillMode::Volume3D;
    else
      throw Error(ErrorCode::BadArgument, "mode: expected slice or volume");
    s.axis = static_cast<int>(json_int_in(body, "axis", 0, 2, 2));
    s.slice = json_opt_int(body, "slice_index");
    s.draw_over = json_draw_over(body, edit::DrawOver::background());
    delta = edit::fill_holes(labels, s);
  } else if (tool == "remove_islands") {
    edit::IslandSettings s;
    s.label = static_cast<uint8_t>(json_int_in(body, "label_value", 0, 255, 0));
    s.min_voxels = json_opt_int(body, "min_voxels").value_or(1);
    s.keep_largest = json_opt_bool(body, "keep_largest").value_or(false);
    s.connectivity = json_connectivity(body, edit::Connectivity::Full);
    delta = edit::remove_islands(labels, s);
  } else if (tool == "interpolate") {
    edit::InterpolateSettings s;
    s.label = value;
    s.axis = static_cast<int>(json_int_in(body, "axis", 0, 2, 2));
    s.first = json_opt_int(body, "first");
    s.last = json_opt_int(body, "last");
    s.draw_over = json_draw_over(body, edit::DrawOver::background());
    delta = edit::interpolate_slices(labels, s);
  } else if (tool == "brush") {
    delta = edit::brush(labels, json_brush(body));
  } else if (tool == "erase") {
    delta = edit::erase(labels, json_brush(body));
  } else if (tool == "threshold_brush") {
    edit::IntensityRange range{json_double(body, "lower"), json_double(body, "upper"), channel};
    delta = edit::threshold_brush(image(), labels, json_brush(body), range);
  } else {
    throw Error(ErrorCode::NotFound,
                "no such region tool '" + tool.substr(0, 40) +
                    "' (grow, threshold, fill_holes, remove_islands, interpolate, brush, erase, threshold_brush)");
  }

  json runs = json::array();
  for (const auto& r : delta.runs()) runs.push_back({r.length, r.before, r.after});
  json out{{"tool", tool},
           {"changed_voxels", delta.changed_voxels()},
           {"foreground_change", delta.foreground_change()},
           {"grid_size", delta.grid_size()},
           {"box", {{"begin", delta.box().begin}, {"end", delta.box().end}}},
           {"runs", runs}};
  if (json_opt_bool(body, "return_label").value_or(false)) {
    delta.apply(labels);
    out["label"] = base64_encode(encode_label(lab, labels));
  }
  return out;
}

}  // namespace tumorlab::app
