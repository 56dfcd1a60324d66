// Jobs: a persistent priority queue with progress, cancellation and crash recovery (the
// recovery itself runs in Store::open).
#include <algorithm>
#include <cmath>

#include "tumorlab/store/internal.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store {

using detail::Stmt;

namespace {

constexpr const char* kJobCols =
    "id, type, state, priority, progress, message, error, owner_user_id, case_id, "
    "cancel_requested, restartable, attempts, created_ms, started_ms, finished_ms, params_json, "
    "result_json";

Job read_job(const Stmt& s) {
  Job j;
  j.id = s.i64(0);
  j.type = parse_job_type(s.text(1));
  j.state = parse_job_state(s.text(2));
  j.priority = static_cast<int>(s.i64(3));
  j.progress = s.f64(4);
  j.message = s.text(5);
  j.error = s.text(6);
  j.owner_user_id = s.opt_i64(7);
  j.case_id = s.opt_i64(8);
  j.cancel_requested = s.i64(9) != 0;
  j.restartable = s.i64(10) != 0;
  j.attempts = static_cast<int>(s.i64(11));
  j.created_ms = s.i64(12);
  j.started_ms = s.opt_i64(13);
  j.finished_ms = s.opt_i64(14);
  j.params_json = s.text(15);
  j.result_json = s.text(16);
  return j;
}

std::string clip_message(std::string_view m) {
  std::string out(m.substr(0, 2000));
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n') ch = ' ';
  return out;
}

bool is_final(JobState s) {
  return s == JobState::Succeeded || s == JobState::Failed || s == JobState::Cancelled;
}

}  // namespace

Job ReadTxn::get_job(Id id) {
  auto s = c_.prepare(std::string("SELECT ") + kJobCols + " FROM jobs WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) detail::throw_not_found("job", id);
  return read_job(s);
}

std::vector<Job> ReadTxn::list_jobs(const JobFilter& f) {
  if (f.limit < 1) throw Error(ErrorCode::BadArgument, "limit: expected >= 1");
  if (f.offset < 0) throw Error(ErrorCode::BadArgument, "offset: expected >= 0");
  auto s = c_.prepare(std::string("SELECT ") + kJobCols +
                      " FROM jobs WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR type = ?2) "
                      "AND (?3 IS NULL OR owner_user_id = ?3) AND (?4 IS NULL OR case_id = ?4) "
                      "ORDER BY id DESC LIMIT ?5 OFFSET ?6");
  if (f.state)
    s.bind(1, to_string(*f.state));
  else
    s.bind_null(1);
  if (f.type)
    s.bind(2, to_string(*f.type));
  else
    s.bind_null(2);
  s.bind(3, f.owner_user_id).bind(4, f.case_id).bind(5, f.limit).bind(6, f.offset);
  std::vector<Job> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::int64_t ReadTxn::count_jobs(JobState state, const std::vector<JobType>& types) {
  if (types.empty()) {
    auto s = c_.prepare("SELECT count(*) FROM jobs WHERE state = ?1");
    s.bind(1, to_string(state));
    s.step();
    return s.i64(0);
  }
  auto s = c_.prepare("SELECT type, count(*) FROM jobs WHERE state = ?1 GROUP BY type");
  s.bind(1, to_string(state));
  std::int64_t n = 0;
  while (s.step())
    if (std::find(types.begin(), types.end(), parse_job_type(s.text(0))) != types.end()) n += s.i64(1);
  return n;
}

Job WriteTxn::enqueue_job(const NewJob& j) {
  const std::string params = detail::canonical_json_object(j.params_json, "job params");
  if (j.owner_user_id) get_user(*j.owner_user_id);
  if (j.case_id) get_case(*j.case_id);
  auto s = c_.prepare(
      "INSERT INTO jobs (type, state, priority, owner_user_id, case_id, restartable, created_ms, "
      "params_json) VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind(1, to_string(j.type))
      .bind(2, static_cast<int>(j.priority))
      .bind(3, j.owner_user_id)
      .bind(4, j.case_id)
      .bind(5, j.restartable)
      .bind(6, now_ms_)
      .bind(7, params)
      .run();
  return get_job(c_.last_id());
}

std::optional<Job> WriteTxn::claim_next_job(const std::vector<JobType>& types) {
  std::optional<Id> pick;
  {
    auto s = c_.prepare(
        "SELECT id, type FROM jobs WHERE state = 'queued' AND cancel_requested = 0 ORDER BY "
        "priority, id");
    while (s.step()) {
      const JobType t = parse_job_type(s.text(1));
      if (types.empty() || std::find(types.begin(), types.end(), t) != types.end()) {
        pick = s.i64(0);
        break;
      }
    }
  }
  if (!pick) return std::nullopt;
  auto u = c_.prepare(
      "UPDATE jobs SET state = 'running', started_ms = ?2, attempts = attempts + 1, progress = 0, "
      "message = '' WHERE id = ?1 AND state = 'queued'");
  u.bind(1, *pick).bind(2, now_ms_).run();
  return get_job(*pick);
}

Job WriteTxn::update_job_progress(Id job_id, double progress, std::string_view message) {
  Job j = get_job(job_id);
  if (j.state != JobState::Running)
    throw Error(ErrorCode::Conflict,
                "job " + std::to_string(job_id) + " is " + std::string(to_string(j.state)) + ", not running");
  if (!std::isfinite(progress)) progress = 0;
  progress = std::clamp(progress, 0.0, 1.0);
  auto s = c_.prepare("UPDATE jobs SET progress = ?2, message = ?3 WHERE id = ?1");
  s.bind(1, job_id).bind(2, progress).bind(3, clip_message(message)).run();
  return get_job(job_id);
}

Job WriteTxn::finish_job(Id job_id, JobState state, std::string_view error, std::string_view result_json) {
  if (!is_final(state)) throw Error(ErrorCode::BadArgument, "finish_job: state must be succeeded, failed or cancelled");
  Job j = get_job(job_id);
  if (is_final(j.state))
    throw Error(ErrorCode::Conflict,
                "job " + std::to_string(job_id) + " already finished (" + std::string(to_string(j.state)) + ")");
  const std::string result = detail::canonical_json_object(result_json, "job result");
  auto s = c_.prepare(
      "UPDATE jobs SET state = ?2, error = ?3, result_json = ?4, finished_ms = ?5, progress = "
      "CASE WHEN ?2 = 'succeeded' THEN 1 ELSE progress END WHERE id = ?1");
  s.bind(1, job_id).bind(2, to_string(state)).bind(3, clip_message(error)).bind(4, result).bind(5, now_ms_).run();
  return get_job(job_id);
}

Job WriteTxn::request_job_cancel(Id job_id) {
  Job j = get_job(job_id);
  if (is_final(j.state)) return j;
  if (j.state == JobState::Queued) {
    auto s = c_.prepare(
        "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_ms = ?2, message = "
        "'cancelled before it started' WHERE id = ?1");
    s.bind(1, job_id).bind(2, now_ms_).run();
  } else {
    auto s = c_.prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1");
    s.bind(1, job_id).run();
  }
  return get_job(job_id);
}

}  // namespace tumorlab::store
