// Patients, studies, images, cases (workflow, assignment, scores), immutable label revisions,
// and models.
#include <cmath>
#include <nlohmann/json.hpp>

#include "tumorlab/store/internal.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store {

using detail::Stmt;

namespace {

std::string clip(std::string_view s, std::size_t n = 64) {
  return std::string(s.substr(0, n));
}

void check_text(std::string_view value, std::string_view field, std::size_t max_len, bool allow_empty = false) {
  if ((!allow_empty && value.empty()) || value.size() > max_len)
    throw Error(ErrorCode::BadArgument, std::string(field) + ": expected 1.." + std::to_string(max_len) +
                                            " characters, got " + std::to_string(value.size()));
  for (unsigned char ch : value)
    if (ch < 0x20) throw Error(ErrorCode::BadArgument, std::string(field) + ": control characters not allowed");
}

// ---- row readers --------------------------------------------------------------------------

constexpr const char* kImageCols =
    "id, study_id, sha256, file_bytes, modality, channel_names, size_x, size_y, size_z, "
    "spacing_x, spacing_y, spacing_z, demo, created_ms";

Image read_image(const Stmt& s, const std::string& data_dir) {
  Image im;
  im.id = s.i64(0);
  im.study_id = s.opt_i64(1);
  im.sha256 = s.text(2);
  im.path = detail::content_path(data_dir, detail::kImagesDir, im.sha256);
  im.file_bytes = s.i64(3);
  im.modality = s.text(4);
  for (const auto& n : nlohmann::json::parse(s.text(5))) im.channel_names.push_back(n.get<std::string>());
  im.size = {s.i64(6), s.i64(7), s.i64(8)};
  im.spacing_mm = {s.f64(9), s.f64(10), s.f64(11)};
  im.demo = s.i64(12) != 0;
  im.created_ms = s.i64(13);
  return im;
}

constexpr const char* kCaseCols =
    "c.id, c.name, c.image_id, c.status, c.assignee_user_id, c.editing_seconds, c.uncertainty, "
    "c.al_rank, c.current_revision_id, c.status_comment, i.demo, c.created_ms, c.updated_ms";
constexpr const char* kCaseFrom = " FROM cases c JOIN images i ON i.id = c.image_id ";

Case read_case(const Stmt& s) {
  Case c;
  c.id = s.i64(0);
  c.name = s.text(1);
  c.image_id = s.i64(2);
  c.status = parse_case_status(s.text(3));
  c.assignee_user_id = s.opt_i64(4);
  c.editing_seconds = s.f64(5);
  c.uncertainty = s.opt_f64(6);
  c.al_rank = s.opt_f64(7);
  c.current_revision_id = s.opt_i64(8);
  c.status_comment = s.text(9);
  c.demo = s.i64(10) != 0;
  c.created_ms = s.i64(11);
  c.updated_ms = s.i64(12);
  return c;
}

constexpr const char* kRevCols =
    "id, case_id, image_id, parent_id, author_user_id, model_name, model_version, kind, "
    "created_ms, voxel_count, volume_ml, sha256, file_bytes, note";

LabelRevision read_revision(const Stmt& s, const std::string& data_dir) {
  LabelRevision r;
  r.id = s.i64(0);
  r.case_id = s.i64(1);
  r.image_id = s.i64(2);
  r.parent_id = s.opt_i64(3);
  r.author_user_id = s.opt_i64(4);
  r.model_name = s.text(5);
  r.model_version = s.text(6);
  r.kind = parse_revision_kind(s.text(7));
  r.created_ms = s.i64(8);
  r.voxel_count = s.i64(9);
  r.volume_ml = s.f64(10);
  r.sha256 = s.text(11);
  r.path = detail::content_path(data_dir, detail::kLabelsDir, r.sha256);
  r.file_bytes = s.i64(12);
  r.note = s.text(13);
  return r;
}

constexpr const char* kModelCols = "id, name, version, path, metadata_json, active, created_ms";

Model read_model(const Stmt& s) {
  Model m;
  m.id = s.i64(0);
  m.name = s.text(1);
  m.version = s.text(2);
  m.path = s.text(3);
  m.metadata_json = s.text(4);
  m.active = s.i64(5) != 0;
  m.created_ms = s.i64(6);
  return m;
}

std::string opt_id_text(const std::optional<Id>& id) {
  return id ? std::to_string(*id) : std::string("none");
}

}  // namespace

// ---- patients, studies, images ------------------------------------------------------------

Patient ReadTxn::get_patient(Id id) {
  auto s = c_.prepare("SELECT id, pseudonym, created_ms FROM patients WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("patient", id);
  return Patient{s.i64(0), s.text(1), s.i64(2)};
}

std::optional<Patient> ReadTxn::find_patient(std::string_view pseudonym) {
  auto s = c_.prepare("SELECT id, pseudonym, created_ms FROM patients WHERE pseudonym = ?1");
  s.bind(1, pseudonym);
  if (!s.step()) return std::nullopt;
  return Patient{s.i64(0), s.text(1), s.i64(2)};
}

Study ReadTxn::get_study(Id id) {
  auto s = c_.prepare("SELECT id, patient_id, study_key, description, created_ms FROM studies WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("study", id);
  return Study{s.i64(0), s.i64(1), s.text(2), s.text(3), s.i64(4)};
}

std::vector<Study> ReadTxn::list_studies(Id patient_id) {
  auto s = c_.prepare(
      "SELECT id, patient_id, study_key, description, created_ms FROM studies WHERE patient_id = "
      "?1 ORDER BY id");
  s.bind(1, patient_id);
  std::vector<Study> out;
  while (s.step()) out.push_back(Study{s.i64(0), s.i64(1), s.text(2), s.text(3), s.i64(4)});
  return out;
}

Image ReadTxn::get_image(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kImageCols + " FROM images WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("image", id);
  return read_image(s, data_dir_);
}

std::optional<Image> ReadTxn::find_image_by_hash(std::string_view sha256) {
  auto s = c_.prepare(std::string("SELECT ") + kImageCols + " FROM images WHERE sha256 = ?1");
  s.bind(1, sha256);
  if (!s.step()) return std::nullopt;
  return read_image(s, data_dir_);
}

Patient WriteTxn::add_patient(std::string_view pseudonym) {
  check_text(pseudonym, "patient pseudonym", 128);
  if (auto p = find_patient(pseudonym)) return *p;
  auto s = c_.prepare("INSERT INTO patients (pseudonym, created_ms) VALUES (?1, ?2)");
  s.bind(1, pseudonym).bind(2, now_ms_).run();
  return get_patient(c_.last_id());
}

Study WriteTxn::add_study(Id patient_id, std::string_view study_key, std::string_view description) {
  check_text(study_key, "study key", 128);
  check_text(description, "study description", 1024, true);
  get_patient(patient_id);
  {
    auto s = c_.prepare("SELECT id FROM studies WHERE patient_id = ?1 AND study_key = ?2");
    s.bind(1, patient_id).bind(2, study_key);
    if (s.step()) return get_study(s.i64(0));
  }
  auto s = c_.prepare("INSERT INTO studies (patient_id, study_key, description, created_ms) VALUES (?1, ?2, ?3, ?4)");
  s.bind(1, patient_id).bind(2, study_key).bind(3, description).bind(4, now_ms_).run();
  return get_study(c_.last_id());
}

Image WriteTxn::add_image(const NewImage& im) {
  const std::string path = detail::content_path(data_dir_, detail::kImagesDir, im.sha256);
  if (auto existing = find_image_by_hash(im.sha256)) return *existing;
  const std::int64_t bytes = detail::file_size_or_minus_one(path);
  if (bytes < 0)
    throw Error(ErrorCode::IoFailure, "image file " + path + " is missing: store it with put_image_bytes first");
  check_text(im.modality, "modality", 16, true);
  if (im.study_id) get_study(*im.study_id);
  for (int a = 0; a < 3; ++a) {
    if (im.size[a] < 1) throw Error(ErrorCode::BadArgument, "image size: expected >= 1 voxel per axis");
    if (!(im.spacing_mm[a] > 0) || !std::isfinite(im.spacing_mm[a]))
      throw Error(ErrorCode::BadArgument, "image spacing_mm: expected finite values > 0");
  }
  nlohmann::json names = nlohmann::json::array();
  for (const auto& n : im.channel_names) {
    check_text(n, "channel name", 64);
    names.push_back(n);
  }
  auto s = c_.prepare(
      "INSERT INTO images (study_id, sha256, file_bytes, modality, channel_names, size_x, size_y, "
      "size_z, spacing_x, spacing_y, spacing_z, demo, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
      "?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  s.bind(1, im.study_id)
      .bind(2, im.sha256)
      .bind(3, bytes)
      .bind(4, im.modality)
      .bind(5, names.dump())
      .bind(6, im.size[0])
      .bind(7, im.size[1])
      .bind(8, im.size[2])
      .bind(9, im.spacing_mm[0])
      .bind(10, im.spacing_mm[1])
      .bind(11, im.spacing_mm[2])
      .bind(12, im.demo)
      .bind(13, now_ms_)
      .run();
  return get_image(c_.last_id());
}

void WriteTxn::set_image_demo(Id image_id, bool demo) {
  get_image(image_id);
  auto s = c_.prepare("UPDATE images SET demo = ?2 WHERE id = ?1");
  s.bind(1, image_id).bind(2, demo).run();
}

// ---- cases --------------------------------------------------------------------------------

Case ReadTxn::get_case(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kCaseCols + kCaseFrom + "WHERE c.id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("case", id);
  return read_case(s);
}

std::optional<Case> ReadTxn::find_case(std::string_view name) {
  auto s = c_.prepare(std::string("SELECT ") + kCaseCols + kCaseFrom + "WHERE c.name = ?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return read_case(s);
}

CaseList ReadTxn::list_cases(const CaseFilter& f) {
  if (f.limit < 1 || f.limit > 1000)
    throw Error(ErrorCode::BadArgument, "limit: expected 1..1000, got " + std::to_string(f.limit));
  if (f.offset < 0) throw Error(ErrorCode::BadArgument, "offset: expected >= 0");
  // Only fixed SQL fragments are concatenated; every value is bound.
  std::string where =
      "WHERE (?1 IS NULL OR c.status = ?1) AND (?2 IS NULL OR c.assignee_user_id = ?2)"
      " AND (?3 = 0 OR c.assignee_user_id IS NULL) AND (?4 IS NULL OR i.demo = ?4) ";
  const char* key = "c.id";
  switch (f.sort) {
    case CaseSort::Id:
      key = "c.id";
      break;
    case CaseSort::Name:
      key = "c.name";
      break;
    case CaseSort::Updated:
      key = "c.updated_ms";
      break;
    case CaseSort::Uncertainty:
      key = "c.uncertainty";
      break;
    case CaseSort::AlRank:
      key = "c.al_rank";
      break;
    case CaseSort::Status:
      key = "c.status";
      break;
  }
  const std::string dir = f.descending ? " DESC" : " ASC";
  const std::string order = std::string("ORDER BY ") + key + " IS NULL, " + key + dir + ", c.id" + dir;
  auto bind_filter = [&](Stmt& s) {
    if (f.status)
      s.bind(1, to_string(*f.status));
    else
      s.bind_null(1);
    s.bind(2, f.assignee_user_id).bind(3, f.unassigned_only);
    if (f.demo)
      s.bind(4, *f.demo);
    else
      s.bind_null(4);
  };
  CaseList out;
  {
    auto s = c_.prepare(std::string("SELECT count(*)") + kCaseFrom + where);
    bind_filter(s);
    s.step();
    out.total = s.i64(0);
  }
  auto s = c_.prepare(std::string("SELECT ") + kCaseCols + kCaseFrom + where + order + " LIMIT ?5 OFFSET ?6");
  bind_filter(s);
  s.bind(5, f.limit).bind(6, f.offset);
  while (s.step()) out.items.push_back(read_case(s));
  return out;
}

std::optional<Case> ReadTxn::next_case(Id user_id) {
  auto s = c_.prepare(std::string("SELECT ") + kCaseCols + kCaseFrom +
                      "WHERE c.status IN ('in_progress', 'rejected', 'presegmented', 'new') AND "
                      "(c.assignee_user_id = ?1 OR c.assignee_user_id IS NULL) "
                      "ORDER BY (c.assignee_user_id IS NULL), "
                      "CASE c.status WHEN 'in_progress' THEN 0 WHEN 'rejected' THEN 1 WHEN 'presegmented' THEN 2 "
                      "ELSE 3 END, c.al_rank IS NULL, c.al_rank, c.uncertainty IS NULL, c.uncertainty DESC, c.id "
                      "LIMIT 1");
  s.bind(1, user_id);
  if (!s.step()) return std::nullopt;
  return read_case(s);
}

std::vector<CaseEvent> ReadTxn::case_history(Id case_id) {
  get_case(case_id);
  auto s = c_.prepare(
      "SELECT id, case_id, event, from_status, to_status, assignee_user_id, user_id, comment, "
      "time_ms FROM case_events WHERE case_id = ?1 ORDER BY id");
  s.bind(1, case_id);
  std::vector<CaseEvent> out;
  while (s.step()) {
    CaseEvent e;
    e.id = s.i64(0);
    e.case_id = s.i64(1);
    e.event = s.text(2);
    if (!s.is_null(3)) e.from_status = parse_case_status(s.text(3));
    if (!s.is_null(4)) e.to_status = parse_case_status(s.text(4));
    e.assignee_user_id = s.opt_i64(5);
    e.user_id = s.opt_i64(6);
    e.comment = s.text(7);
    e.time_ms = s.i64(8);
    out.push_back(std::move(e));
  }
  return out;
}

Case WriteTxn::add_case(const NewCase& nc) {
  check_text(nc.name, "case name", 128);
  get_image(nc.image_id);
  if (nc.assignee_user_id) get_user(*nc.assignee_user_id);
  if (find_case(nc.name)) throw Error(ErrorCode::Conflict, "case '" + clip(nc.name, 128) + "' already exists");
  auto s = c_.prepare(
      "INSERT INTO cases (name, image_id, status, assignee_user_id, created_ms, updated_ms) "
      "VALUES (?1, ?2, 'new', ?3, ?4, ?4)");
  s.bind(1, nc.name).bind(2, nc.image_id).bind(3, nc.assignee_user_id).bind(4, now_ms_).run();
  return get_case(c_.last_id());
}

Case WriteTxn::set_case_status(Id case_id, CaseStatus to, std::optional<Id> by_user_id, std::string_view comment,
                               std::optional<CaseStatus> expected_from) {
  Case c = get_case(case_id);
  check_text(comment, "comment", 4000, true);
  if (expected_from && *expected_from != c.status)
    throw Error(ErrorCode::Conflict, "case " + std::to_string(case_id) + ": status is " +
                                         std::string(to_string(c.status)) + ", expected " +
                                         std::string(to_string(*expected_from)));
  if (!is_allowed_transition(c.status, to))
    throw Error(ErrorCode::Conflict, "case " + std::to_string(case_id) + ": cannot go from " +
                                         std::string(to_string(c.status)) + " to " + std::string(to_string(to)));
  if (to == CaseStatus::Rejected && comment.empty())
    throw Error(ErrorCode::BadArgument, "comment: a rejection needs a comment saying why");
  if (by_user_id) get_user(*by_user_id);
  auto s = c_.prepare("UPDATE cases SET status = ?2, status_comment = ?3, updated_ms = ?4 WHERE id = ?1");
  s.bind(1, case_id).bind(2, to_string(to)).bind(3, comment).bind(4, now_ms_).run();
  auto e = c_.prepare(
      "INSERT INTO case_events (case_id, event, from_status, to_status, user_id, comment, time_ms) "
      "VALUES (?1, 'status', ?2, ?3, ?4, ?5, ?6)");
  e.bind(1, case_id)
      .bind(2, to_string(c.status))
      .bind(3, to_string(to))
      .bind(4, by_user_id)
      .bind(5, comment)
      .bind(6, now_ms_)
      .run();
  return get_case(case_id);
}

Case WriteTxn::assign_case(Id case_id, std::optional<Id> assignee, std::optional<Id> by_user_id) {
  get_case(case_id);
  if (assignee) {
    User u = get_user(*assignee);
    if (u.disabled) throw Error(ErrorCode::BadArgument, "assignee: user '" + u.username + "' is disabled");
  }
  if (by_user_id) get_user(*by_user_id);
  auto s = c_.prepare("UPDATE cases SET assignee_user_id = ?2, updated_ms = ?3 WHERE id = ?1");
  s.bind(1, case_id).bind(2, assignee).bind(3, now_ms_).run();
  auto e = c_.prepare(
      "INSERT INTO case_events (case_id, event, assignee_user_id, user_id, comment, time_ms) "
      "VALUES (?1, 'assign', ?2, ?3, '', ?4)");
  e.bind(1, case_id).bind(2, assignee).bind(3, by_user_id).bind(4, now_ms_).run();
  return get_case(case_id);
}

void WriteTxn::add_editing_seconds(Id case_id, double seconds) {
  if (!(seconds >= 0 && seconds <= 86400)) throw Error(ErrorCode::BadArgument, "editing seconds: expected 0..86400");
  get_case(case_id);
  auto s = c_.prepare("UPDATE cases SET editing_seconds = editing_seconds + ?2, updated_ms = ?3 WHERE id = ?1");
  s.bind(1, case_id).bind(2, seconds).bind(3, now_ms_).run();
}

void WriteTxn::set_case_scores(Id case_id, std::optional<double> uncertainty, std::optional<double> al_rank) {
  if ((uncertainty && !std::isfinite(*uncertainty)) || (al_rank && !std::isfinite(*al_rank)))
    throw Error(ErrorCode::BadArgument, "case scores: expected finite numbers");
  get_case(case_id);
  auto s = c_.prepare("UPDATE cases SET uncertainty = ?2, al_rank = ?3, updated_ms = ?4 WHERE id = ?1");
  s.bind(1, case_id).bind(2, uncertainty).bind(3, al_rank).bind(4, now_ms_).run();
}

// ---- label revisions ----------------------------------------------------------------------

LabelRevision ReadTxn::get_revision(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kRevCols + " FROM label_revisions WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("label revision", id);
  return read_revision(s, data_dir_);
}

std::vector<LabelRevision> ReadTxn::list_revisions(Id case_id) {
  get_case(case_id);
  auto s = c_.prepare(std::string("SELECT ") + kRevCols + " FROM label_revisions WHERE case_id = ?1 ORDER BY id");
  s.bind(1, case_id);
  std::vector<LabelRevision> out;
  while (s.step()) out.push_back(read_revision(s, data_dir_));
  return out;
}

std::optional<LabelRevision> ReadTxn::first_ai_revision(Id case_id) {
  auto s = c_.prepare(std::string("SELECT ") + kRevCols +
                      " FROM label_revisions WHERE case_id = ?1 AND kind = 'ai' ORDER BY id LIMIT 1");
  s.bind(1, case_id);
  if (!s.step()) return std::nullopt;
  return read_revision(s, data_dir_);
}

LabelRevision WriteTxn::add_revision(const NewRevision& r) {
  Case c = get_case(r.case_id);
  if (c.current_revision_id != r.expected_parent_id)
    throw Error(ErrorCode::Conflict, "case " + std::to_string(r.case_id) + ": the current revision is " +
                                         opt_id_text(c.current_revision_id) + ", but this save was based on " +
                                         opt_id_text(r.expected_parent_id) + " (someone saved in between; reload)");
  switch (r.kind) {
    case RevisionKind::Ai:
      if (r.model_name.empty()) throw Error(ErrorCode::BadArgument, "revision of kind ai: model name is required");
      break;
    case RevisionKind::Manual:
    case RevisionKind::Refined:
      if (!r.author_user_id)
        throw Error(ErrorCode::BadArgument,
                    std::string("revision of kind ") + std::string(to_string(r.kind)) + ": author user is required");
      break;
    case RevisionKind::Imported:
      if (!r.author_user_id && r.model_name.empty())
        throw Error(ErrorCode::BadArgument, "imported revision: an author user or a source name is required");
      break;
  }
  check_text(r.model_name, "model name", 128, true);
  check_text(r.model_version, "model version", 64, true);
  check_text(r.note, "note", 4000, true);
  if (r.voxel_count < 0 || !(r.volume_ml >= 0) || !std::isfinite(r.volume_ml))
    throw Error(ErrorCode::BadArgument, "revision: voxel count and volume_ml must be >= 0");
  if (r.author_user_id) get_user(*r.author_user_id);
  const std::string path = detail::content_path(data_dir_, detail::kLabelsDir, r.sha256);
  const std::int64_t bytes = detail::file_size_or_minus_one(path);
  if (bytes <= 0)
    throw Error(ErrorCode::IoFailure, "label file " + path + " is missing: store it with put_label_bytes first");
  auto s = c_.prepare(
      "INSERT INTO label_revisions (case_id, image_id, parent_id, author_user_id, model_name, "
      "model_version, kind, created_ms, voxel_count, volume_ml, sha256, file_bytes, note) VALUES "
      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  s.bind(1, r.case_id)
      .bind(2, c.image_id)
      .bind(3, c.current_revision_id)
      .bind(4, r.author_user_id)
      .bind(5, r.model_name)
      .bind(6, r.model_version)
      .bind(7, to_string(r.kind))
      .bind(8, now_ms_)
      .bind(9, r.voxel_count)
      .bind(10, r.volume_ml)
      .bind(11, r.sha256)
      .bind(12, bytes)
      .bind(13, r.note)
      .run();
  const Id id = c_.last_id();
  auto u = c_.prepare("UPDATE cases SET current_revision_id = ?2, updated_ms = ?3 WHERE id = ?1");
  u.bind(1, r.case_id).bind(2, id).bind(3, now_ms_).run();
  return get_revision(id);
}

Case WriteTxn::set_current_revision(Id case_id, Id revision_id, std::optional<Id> expected_current) {
  Case c = get_case(case_id);
  if (c.current_revision_id != expected_current)
    throw Error(ErrorCode::Conflict, "case " + std::to_string(case_id) + ": the current revision is " +
                                         opt_id_text(c.current_revision_id) + ", expected " +
                                         opt_id_text(expected_current));
  LabelRevision r = get_revision(revision_id);
  if (r.case_id != case_id)
    throw Error(ErrorCode::BadArgument, "revision " + std::to_string(revision_id) + " belongs to case " +
                                            std::to_string(r.case_id) + ", not case " + std::to_string(case_id));
  auto u = c_.prepare("UPDATE cases SET current_revision_id = ?2, updated_ms = ?3 WHERE id = ?1");
  u.bind(1, case_id).bind(2, revision_id).bind(3, now_ms_).run();
  return get_case(case_id);
}

// ---- models -------------------------------------------------------------------------------

Model ReadTxn::get_model(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kModelCols + " FROM models WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("model", id);
  return read_model(s);
}

std::vector<Model> ReadTxn::list_models() {
  auto s = c_.prepare(std::string("SELECT ") + kModelCols + " FROM models ORDER BY name, id");
  std::vector<Model> out;
  while (s.step()) out.push_back(read_model(s));
  return out;
}

std::optional<Model> ReadTxn::active_model(std::string_view name) {
  auto s = c_.prepare(std::string("SELECT ") + kModelCols + " FROM models WHERE name = ?1 AND active = 1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return read_model(s);
}

Model WriteTxn::add_model(std::string_view name, std::string_view version, std::string_view path,
                          std::string_view metadata_json) {
  check_text(name, "model name", 128);
  check_text(version, "model version", 64);
  check_text(path, "model path", 4096);
  const std::string meta = detail::canonical_json_object(metadata_json, "model metadata");
  {
    auto s = c_.prepare("SELECT 1 FROM models WHERE name = ?1 AND version = ?2");
    s.bind(1, name).bind(2, version);
    if (s.step())
      throw Error(ErrorCode::Conflict,
                  "model " + clip(name, 128) + " version " + clip(version) + " is already registered");
  }
  auto s = c_.prepare(
      "INSERT INTO models (name, version, path, metadata_json, active, created_ms) VALUES (?1, "
      "?2, ?3, ?4, 0, ?5)");
  s.bind(1, name).bind(2, version).bind(3, path).bind(4, meta).bind(5, now_ms_).run();
  return get_model(c_.last_id());
}

Model WriteTxn::activate_model(Id model_id) {
  Model m = get_model(model_id);
  auto off = c_.prepare("UPDATE models SET active = 0 WHERE name = ?1 AND active = 1");
  off.bind(1, m.name).run();
  auto on = c_.prepare("UPDATE models SET active = 1 WHERE id = ?1");
  on.bind(1, model_id).run();
  return get_model(model_id);
}

}  // namespace tumorlab::store
