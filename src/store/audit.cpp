// The audit trail: append-only rows, each carrying SHA-256(previous hash || canonical row).
// The canonical row is every field as <byte length>:<bytes>; in a fixed order, so no two
// different rows encode the same way. verify_audit recomputes the chain from the first row.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "tumorlab/store/internal.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store {

namespace detail {

std::string canonical_json_object(std::string_view json, std::string_view field) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json.empty() ? std::string_view("{}") : json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::BadArgument, std::string(field) + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(ErrorCode::BadArgument, std::string(field) + ": expected a JSON object");
  return j.dump();  // nlohmann's object is a std::map: keys come out sorted
}

namespace {
void check_keys(const nlohmann::json& j, std::string_view field) {
  static const std::set<std::string> kForbidden = {
      "patientname", "patientsname",   "patientid", "otherpatientids", "patientbirthdate", "birthdate", "dateofbirth",
      "dob",         "patientaddress", "mrn",       "accessionnumber", "patientsbirthdate"};
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string k;
      for (char ch : it.key())
        if (std::isalnum(static_cast<unsigned char>(ch)))
          k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
      if (kForbidden.count(k))
        throw Error(ErrorCode::BadArgument, std::string(field) + ": key '" + it.key() +
                                                "' looks like a patient identifier; the audit "
                                                "trail must not hold identifiers");
      check_keys(*it, field);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) check_keys(v, field);
  }
}
}  // namespace

void check_no_identifiers(const std::string& canonical_json, std::string_view field) {
  check_keys(nlohmann::json::parse(canonical_json), field);
}

}  // namespace detail

namespace {

const std::string kGenesis(64, '0');

void put_field(std::string& out, std::string_view v) {
  out += std::to_string(v.size());
  out += ':';
  out.append(v.data(), v.size());
  out += ';';
}

std::string opt_text(const std::optional<Id>& v) {
  return v ? std::to_string(*v) : std::string();
}

std::string chain_hash(const AuditRecord& r) {
  std::string canon = r.prev_hash;
  put_field(canon, std::to_string(r.seq));
  put_field(canon, std::to_string(r.time_ms));
  put_field(canon, opt_text(r.user_id));
  put_field(canon, r.actor);
  put_field(canon, r.action);
  put_field(canon, opt_text(r.case_id));
  put_field(canon, r.outcome);
  put_field(canon, r.detail_json);
  return sha256_hex(canon);
}

constexpr const char* kAuditCols =
    "seq, time_ms, user_id, actor, action, case_id, outcome, detail_json, prev_hash, hash";

AuditRecord read_audit(const detail::Stmt& s) {
  AuditRecord r;
  r.seq = s.i64(0);
  r.time_ms = s.i64(1);
  r.user_id = s.opt_i64(2);
  r.actor = s.text(3);
  r.action = s.text(4);
  r.case_id = s.opt_i64(5);
  r.outcome = s.text(6);
  r.detail_json = s.text(7);
  r.prev_hash = s.text(8);
  r.hash = s.text(9);
  return r;
}

void check_action(std::string_view a) {
  bool ok = !a.empty() && a.size() <= 64;
  for (char ch : a)
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-');
  if (!ok)
    throw Error(ErrorCode::BadArgument, "audit action: expected 1..64 characters from a-z 0-9 . _ -, got '" +
                                            std::string(a.substr(0, 64)) + "'");
}

}  // namespace

AuditRecord WriteTxn::append_audit(const AuditEntry& e) {
  check_action(e.action);
  if (e.outcome != "ok" && e.outcome != "denied" && e.outcome != "failed" && e.outcome != "error")
    throw Error(ErrorCode::BadArgument,
                "audit outcome: expected ok, denied, failed or error, got '" + e.outcome.substr(0, 32) + "'");
  if (e.actor.size() > 128) throw Error(ErrorCode::BadArgument, "audit actor: at most 128 bytes");
  AuditRecord r;
  r.detail_json = detail::canonical_json_object(e.detail_json, "audit detail");
  detail::check_no_identifiers(r.detail_json, "audit detail");
  {
    auto s = c_.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (s.step()) {
      r.seq = s.i64(0) + 1;
      r.prev_hash = s.text(1);
    } else {
      r.seq = 1;
      r.prev_hash = kGenesis;
    }
  }
  r.time_ms = now_ms_;
  r.user_id = e.user_id;
  r.actor = e.actor;
  r.action = e.action;
  r.case_id = e.case_id;
  r.outcome = e.outcome;
  r.hash = chain_hash(r);
  auto s = c_.prepare(
      "INSERT INTO audit (seq, time_ms, user_id, actor, action, case_id, outcome, detail_json, "
      "prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  s.bind(1, r.seq)
      .bind(2, r.time_ms)
      .bind(3, r.user_id)
      .bind(4, r.actor)
      .bind(5, r.action)
      .bind(6, r.case_id)
      .bind(7, r.outcome)
      .bind(8, r.detail_json)
      .bind(9, r.prev_hash)
      .bind(10, r.hash)
      .run();
  return r;
}

std::vector<AuditRecord> ReadTxn::list_audit(const AuditQuery& q) {
  if (q.limit < 1 || q.limit > 10000) throw Error(ErrorCode::BadArgument, "limit: expected 1..10000");
  auto s = c_.prepare(std::string("SELECT ") + kAuditCols +
                      " FROM audit WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR case_id "
                      "= ?2) AND (?3 = '' OR action = ?3) AND (?4 IS NULL OR seq > ?4) ORDER BY "
                      "seq DESC LIMIT ?5");
  s.bind(1, q.user_id).bind(2, q.case_id).bind(3, q.action).bind(4, q.after_seq).bind(5, q.limit);
  std::vector<AuditRecord> out;
  while (s.step()) out.push_back(read_audit(s));
  return out;
}

AuditVerifyResult Store::verify_audit() {
  return read([](ReadTxn& t) {
    AuditVerifyResult res;
    auto s = t.c_.prepare(std::string("SELECT ") + kAuditCols + " FROM audit ORDER BY seq");
    std::string prev = kGenesis;
    std::int64_t expected_seq = 1;
    while (s.step()) {
      const AuditRecord r = read_audit(s);
      std::string why;
      if (r.seq != expected_seq)
        why = "sequence number " + std::to_string(r.seq) + " where " + std::to_string(expected_seq) +
              " was expected (rows removed or inserted)";
      else if (r.prev_hash != prev)
        why = "its previous-hash field does not match the hash of row " + std::to_string(expected_seq - 1);
      else if (chain_hash(r) != r.hash)
        why = "its contents do not match its hash (the row was altered)";
      if (!why.empty()) {
        res.intact = false;
        res.first_broken_seq = r.seq;
        res.reason = std::move(why);
        return res;
      }
      ++res.rows_checked;
      prev = r.hash;
      ++expected_seq;
    }
    return res;
  });
}

}  // namespace tumorlab::store
