// The real `tumorlab serve` binary on 127.0.0.1 (a free port, a fresh data folder per test),
// driven over HTTP with httplib's client: login, the role matrix over every registered route,
// CSRF, throttling, revisions with If-Match, bad input of every kind, SSE, TLS, static files,
// graceful shutdown. The data folder is seeded through the real store before the server starts.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "api_test_support.h"
#include "server_process.h"
#include "test_support.h"
#include "tumorlab/app/cases.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
using nlohmann::json;
using namespace tumorlab::testing;  // TempDir, ServeProcess, api_test_support.h
namespace fs = std::filesystem;

namespace {

std::string label_bytes(const LabelMap& l, const fs::path& dir, const std::string& name) {
  fs::path p = dir / (name + ".nii.gz");
  io::write_label(l, p);
  return slurp_file(p);
}

struct Seeded {
  store::Id case_id = 0, other_case_id = 0, ai_revision_id = 0, job_id = 0, annotator_id = 0, reviewer_id = 0;
};

// Users, one case with an AI revision, a second case assigned to the reviewer, a queued job.
Seeded seed(const fs::path& data_dir, const fs::path& scratch) {
  store::StoreOptions so;
  so.data_dir = data_dir.string();
  std::optional<store::Store> holder(store::Store::open(so));
  auto& st = *holder;
  Seeded s;
  s.reviewer_id = st.create_user("rita", store::Role::Reviewer, kReviewerPassword).id;
  s.annotator_id = st.create_user("anna", store::Role::Annotator, kAnnotatorPassword).id;
  io::write_image(block_image(), scratch / "image.nii.gz");
  auto file = st.put_image_bytes(slurp_file(scratch / "image.nii.gz"));
  store::NewImage ni;
  ni.sha256 = file.sha256;
  ni.modality = "MR";
  ni.channel_names = {"T1"};
  ni.size = {16, 12, 6};
  ni.spacing_mm = {1, 1, 2};
  auto image = st.write([&](store::WriteTxn& t) { return t.add_image(ni); });
  auto c = st.write([&](store::WriteTxn& t) { return t.add_case({"case_a", image.id, std::nullopt}); });
  auto c2 = st.write([&](store::WriteTxn& t) { return t.add_case({"case_b", image.id, s.reviewer_id}); });
  s.case_id = c.id;
  s.other_case_id = c2.id;
  store::NewJob nj;
  nj.type = store::JobType::PredictBatch;
  nj.priority = store::JobPriority::Batch;
  nj.owner_user_id = s.annotator_id;
  s.job_id = st.write([&](store::WriteTxn& t) { return t.enqueue_job(nj); }).id;
  holder.reset();  // released before the app opens the folder
  // The AI pre-segmentation through the app use case the pre-segmentation job calls: the block
  // as label, an uncertainty map that is 0.5 on the block's border slices.
  auto lab = app::Lab::open_beside_server(data_dir);
  app::AiPrediction p;
  p.case_id = s.case_id;
  p.label = block_label(block_grid(), 4, 8);
  Volume u(block_grid(), PixelType::Float32);
  for (int j = 4; j < 8; ++j)
    for (int i = 4; i < 8; ++i) u.data<float>()[u.linear_index(i, j, 1)] = 0.5f;
  p.uncertainty = u;
  p.model_name = "test-model";
  p.model_version = "1";
  p.case_uncertainty = 0.25;
  p.al_rank = 1;
  s.ai_revision_id = app::record_ai_prediction(*lab, p)["id"].get<int64_t>();
  return s;
}

// One `tumorlab serve` child process. The seeded job must stay queued (cancel tests), so no job
// runs here (the runner: server_jobs_test.cpp).
class ServerProcess : public tumorlab::testing::ServeProcess {
 public:
  explicit ServerProcess(const fs::path& data_dir, std::vector<std::string> extra = {}, const fs::path& web_dir = {})
      : ServeProcess(data_dir, kAdminPassword, {}, with_no_jobs(std::move(extra)), web_dir) {}

 private:
  static std::vector<std::string> with_no_jobs(std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--job-workers", "0"});
    return extra;
  }
};

struct Session {
  std::string token, csrf;
  json user;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp_ / "data";
    fs::create_directories(tmp_ / "scratch");
    seeded_ = seed(data_, tmp_ / "scratch");
  }
  void start(std::vector<std::string> extra = {}, const fs::path& web = {}) {
    server_ = std::make_unique<ServerProcess>(data_, std::move(extra), web);
    ASSERT_GT(server_->port(), 0);
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    c.set_write_timeout(60, 0);
    return c;
  }
  Session login(const std::string& user, const std::string& password) {
    auto c = client();
    auto r = c.Post("/api/auth/login", json{{"username", user}, {"password", password}}.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    json j = parse_body(r);
    return Session{j.value("token", ""), j.value("csrf_token", ""), j.value("user", json())};
  }
  static httplib::Headers bearer(const Session& s) { return {{"Authorization", "Bearer " + s.token}}; }
  std::string case_path(const std::string& rest = "") const {
    return "/api/cases/" + std::to_string(seeded_.case_id) + rest;
  }

  TempDir tmp_;
  fs::path data_;
  Seeded seeded_;
  std::unique_ptr<ServerProcess> server_;
};

// Sends `method` to `path` with a body; returns the result.
httplib::Result call(httplib::Client& c, const std::string& method, const std::string& path, const httplib::Headers& h,
                     const std::string& body = "", const std::string& type = "application/json") {
  if (method == "GET") return c.Get(path, h);
  if (method == "POST") return c.Post(path, h, body, type);
  if (method == "PUT") return c.Put(path, h, body, type);
  if (method == "PATCH") return c.Patch(path, h, body, type);
  if (method == "DELETE") return c.Delete(path, h, body, type);
  return httplib::Result(nullptr, httplib::Error::Unknown);
}

}  // namespace

TEST_F(ServerTest, Login_Me_Logout_WithCookieAndBearer) {
  start();
  auto c = client();
  // Wrong password: 401 JSON.
  expect_error(c.Post("/api/auth/login", R"({"username":"admin","password":"wrong-password"})", "application/json"),
               401, "Unauthenticated");
  auto r =
      c.Post("/api/auth/login", json{{"username", "admin"}, {"password", kAdminPassword}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = parse_body(r);
  EXPECT_EQ(j["user"]["role"], "admin");
  const std::string token = j["token"], csrf = j["csrf_token"];
  // Cookies: the session is HttpOnly + SameSite=Strict, the CSRF cookie is readable.
  std::vector<std::string> cookies;
  for (const auto& [k, v] : r->headers)
    if (k == "Set-Cookie") cookies.push_back(v);
  ASSERT_EQ(cookies.size(), 2u);
  bool saw_session = false;
  for (const auto& ck : cookies) {
    EXPECT_NE(ck.find("SameSite=Strict"), std::string::npos) << ck;
    EXPECT_EQ(ck.find("Secure"), std::string::npos) << "no Secure flag without TLS: " << ck;
    if (ck.rfind("tl_session=" + token, 0) == 0) {
      saw_session = true;
      EXPECT_NE(ck.find("HttpOnly"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_session);

  // /me with the cookie, and with the Bearer token.
  auto me = c.Get("/api/auth/me", {{"Cookie", "tl_session=" + token + "; tl_csrf=" + csrf}});
  ASSERT_TRUE(me);
  EXPECT_EQ(me->status, 200);
  EXPECT_EQ(parse_body(me)["user"]["username"], "admin");
  EXPECT_EQ(parse_body(me)["csrf_token"], csrf);
  me = c.Get("/api/auth/me", {{"Authorization", "Bearer " + token}});
  EXPECT_EQ(me->status, 200);
  // Anonymous and a made-up token: 401.
  expect_error(c.Get("/api/auth/me"), 401, "Unauthenticated");
  expect_error(c.Get("/api/auth/me", {{"Authorization", "Bearer not-a-token"}}), 401);

  // Logout with the cookie needs the CSRF header.
  expect_error(c.Post("/api/auth/logout", {{"Cookie", "tl_session=" + token}}, "", "application/json"), 403,
               "Forbidden");
  auto out =
      c.Post("/api/auth/logout", {{"Cookie", "tl_session=" + token}, {"X-CSRF-Token", csrf}}, "", "application/json");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 204);
  expect_error(c.Get("/api/auth/me", {{"Authorization", "Bearer " + token}}), 401);
}

TEST_F(ServerTest, Csrf_RequiredForCookieCalls_NotForBearer) {
  start();
  auto s = login("anna", kAnnotatorPassword);
  auto c = client();
  const std::string path = "/api/jobs/" + std::to_string(seeded_.job_id) + "/cancel";
  const httplib::Headers cookie{{"Cookie", "tl_session=" + s.token + "; tl_csrf=" + s.csrf}};
  // Cookie without the header, with a wrong header: 403.
  expect_error(c.Post(path, cookie, "", "application/json"), 403, "Forbidden");
  httplib::Headers wrong = cookie;
  wrong.emplace("X-CSRF-Token", std::string(s.csrf.size(), 'x'));
  expect_error(c.Post(path, wrong, "", "application/json"), 403, "Forbidden");
  // GET with the cookie needs no CSRF header.
  EXPECT_EQ(c.Get("/api/jobs", cookie)->status, 200);
  // Cookie + header: allowed (the annotator owns the job).
  httplib::Headers good = cookie;
  good.emplace("X-CSRF-Token", s.csrf);
  auto r = c.Post(path, good, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(parse_body(r)["state"], "cancelled");
  // Bearer: no CSRF header needed (the job has ended now: 409, not 403).
  expect_error(c.Post(path, bearer(s), "", "application/json"), 409, "Conflict");
}

// Every registered route (from the server's own OpenAPI document), called anonymously and as
// every role: 401 without a session on non-public routes, 403 for roles the route does not
// list, and neither for the roles it lists. New routes are covered automatically.
TEST_F(ServerTest, AuthMatrix_EveryRoute_EveryRole) {
  start();
  std::map<std::string, Session> sessions{{"admin", login("admin", kAdminPassword)},
                                          {"reviewer", login("rita", kReviewerPassword)},
                                          {"annotator", login("anna", kAnnotatorPassword)}};
  auto c = client();
  json api = parse_body(c.Get("/api/openapi.json"));
  ASSERT_TRUE(api.contains("paths"));
  int checked = 0;
  std::vector<std::pair<std::string, std::string>> logout_routes;
  for (const auto& [pattern, ops] : api["paths"].items()) {
    // Path parameters: ids that do not exist, tool names that do.
    std::string path = pattern;
    for (std::size_t b; (b = path.find('{')) != std::string::npos;) {
      std::size_t e = path.find('}', b);
      std::string name = path.substr(b + 1, e - b - 1);
      path.replace(b, e - b + 1, name == "tool" ? "grow" : "999999");
    }
    for (const auto& [method_lower, op] : ops.items()) {
      std::string method = method_lower;
      for (auto& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      SCOPED_TRACE(method + " " + pattern);
      const bool is_public = op["x-roles"] == "public";
      std::set<std::string> allowed;
      if (!is_public)
        for (const auto& r : op["x-roles"]) allowed.insert(r.get<std::string>());
      if (pattern == "/api/auth/logout") {  // ends the session: checked last
        logout_routes.emplace_back(method, path);
        continue;
      }
      auto anon = call(c, method, path, {}, "{}");
      ASSERT_TRUE(anon);
      if (is_public) {
        EXPECT_NE(anon->status, 401) << anon->body;
        EXPECT_NE(anon->status, 403) << anon->body;
      } else {
        expect_error(anon, 401, "Unauthenticated");
      }
      for (const auto& [role, s] : sessions) {
        auto r = call(c, method, path, bearer(s), "{}");
        ASSERT_TRUE(r);
        if (is_public || allowed.count(role)) {
          EXPECT_NE(r->status, 401) << role << ": " << r->body;
          EXPECT_NE(r->status, 403) << role << ": " << r->body;
          EXPECT_LT(r->status, 500) << role << ": " << r->body;
        } else {
          expect_error(r, 403, "Forbidden");
        }
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 3 * 30) << "the matrix should cover every route";
  ASSERT_EQ(logout_routes.size(), 1u);
  expect_error(call(c, "POST", "/api/auth/logout", {}), 401);
  for (const auto& [role, s] : sessions) {
    auto r = call(c, "POST", "/api/auth/logout", bearer(s));
    EXPECT_EQ(r->status, 204) << role;
    expect_error(c.Get("/api/auth/me", bearer(s)), 401);
  }

  // The declarations themselves: admin-only where it matters.
  EXPECT_EQ(api["paths"]["/api/audit"]["get"]["x-roles"], json::array({"admin"}));
  EXPECT_EQ(api["paths"]["/api/models/{model_id}/activate"]["post"]["x-roles"], json::array({"admin"}));
  EXPECT_EQ(api["paths"]["/api/users"]["post"]["x-roles"], json::array({"admin"}));
}

TEST_F(ServerTest, OpenApi_ListsEveryRoute_WithErrorsFromTheTable) {
  start();
  auto c = client();
  auto r = c.Get("/api/openapi.json");
  ASSERT_EQ(r->status, 200);
  json api = parse_body(r);
  EXPECT_EQ(api["openapi"], "3.0.3");
  const std::vector<std::pair<std::string, std::string>> expected{
      {"/api/auth/login", "post"},
      {"/api/auth/logout", "post"},
      {"/api/auth/me", "get"},
      {"/api/cases", "get"},
      {"/api/cases/next", "get"},
      {"/api/cases/{case_id}", "get"},
      {"/api/cases/{case_id}/image", "get"},
      {"/api/cases/{case_id}/uncertainty", "get"},
      {"/api/cases/{case_id}/revisions", "get"},
      {"/api/cases/{case_id}/revisions", "post"},
      {"/api/cases/{case_id}/revisions/{revision_id}", "get"},
      {"/api/cases/{case_id}/revisions/{revision_id}/label", "get"},
      {"/api/cases/{case_id}/revisions/{revision_id}/stats", "get"},
      {"/api/cases/{case_id}/status", "post"},
      {"/api/cases/{case_id}/tools/{tool}", "post"},
      {"/api/jobs", "get"},
      {"/api/jobs/{job_id}", "get"},
      {"/api/jobs/{job_id}/cancel", "post"},
      {"/api/jobs/{job_id}/events", "get"},
      {"/api/models", "get"},
      {"/api/models/{model_id}/activate", "post"},
      {"/api/audit", "get"},
      {"/api/metrics/summary", "get"},
      {"/api/openapi.json", "get"}};
  for (const auto& [p, m] : expected)
    EXPECT_TRUE(api["paths"].contains(p) && api["paths"][p].contains(m)) << m << " " << p;
  // Every operation in the document is served (no "no such API route"), and the revision save
  // lists its conflict and grid errors with their statuses from the error table.
  auto admin = login("admin", kAdminPassword);
  for (const auto& [p, ops] : api["paths"].items())
    for (const auto& [m, op] : ops.items()) {
      EXPECT_TRUE(op.contains("summary") && !op["summary"].get<std::string>().empty()) << p;
      EXPECT_TRUE(op["responses"].contains("500")) << p;
    }
  const json& save = api["paths"]["/api/cases/{case_id}/revisions"]["post"];
  EXPECT_TRUE(save["responses"].contains("409"));
  EXPECT_TRUE(save["responses"].contains("422"));
  auto codes = save["x-error-codes"];
  EXPECT_NE(std::find(codes.begin(), codes.end(), "Conflict"), codes.end());
  EXPECT_NE(std::find(codes.begin(), codes.end(), "GeometryMismatch"), codes.end());
  EXPECT_TRUE(api.contains("x-error-table"));
}

TEST_F(ServerTest, LoginThrottling_BacksOffAfterRepeatedFailures) {
  start();
  auto c = client();
  int throttled_at = -1;
  for (int i = 0; i < 8; ++i) {
    auto r = c.Post("/api/auth/login", R"({"username":"rita","password":"not-her-password"})", "application/json");
    ASSERT_TRUE(r);
    if (r->status == 429) {
      throttled_at = i;
      EXPECT_TRUE(r->has_header("Retry-After"));
      EXPECT_GE(std::stoi(r->get_header_value("Retry-After")), 1);
      expect_error(r, 429, "TooManyRequests");
      break;
    }
    expect_error(r, 401, "Unauthenticated");
  }
  // Five failures are free; the sixth starts the back-off (1 s), so the seventh attempt waits.
  EXPECT_EQ(throttled_at, 6);
  // While throttled even the right password is refused (nothing is checked).
  auto r =
      c.Post("/api/auth/login", json{{"username", "rita"}, {"password", kReviewerPassword}}.dump(), "application/json");
  expect_error(r, 429, "TooManyRequests");
  // The audit trail holds the denied attempts.
  // (Admin logs in from the same address, which is throttled too: the address backs off as well.)
}

TEST_F(ServerTest, Revisions_SaveWithIfMatch_ConflictAndStatsAgainstAi) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  // Image download: gzip bytes of the stored image.
  auto img = c.Get(case_path("/image"), bearer(anna));
  ASSERT_EQ(img->status, 200);
  ASSERT_GE(img->body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(img->body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(img->body[1]), 0x8b);

  json detail = parse_body(c.Get(case_path(), bearer(anna)));
  EXPECT_EQ(detail["status"], "presegmented");
  EXPECT_EQ(detail["ai_revision_id"], seeded_.ai_revision_id);
  EXPECT_EQ(detail["current_revision_id"], seeded_.ai_revision_id);

  // Save an edit (block widened by 2 columns: 48 -> 72 voxels) on top of the AI revision.
  std::string bytes = label_bytes(block_label(block_grid(), 2, 8), tmp_ / "scratch", "edit1");
  httplib::Headers h = bearer(anna);
  h.emplace("If-Match", "\"" + std::to_string(seeded_.ai_revision_id) + "\"");
  auto r = c.Post(case_path("/revisions?editing_seconds=30&note=widened"), h, bytes, "application/gzip");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  json rev = parse_body(r);
  EXPECT_EQ(rev["parent_id"], seeded_.ai_revision_id);
  EXPECT_EQ(rev["voxel_count"], 72);
  EXPECT_NEAR(rev["volume_ml"].get<double>(), 72 * 0.002, 1e-9);
  EXPECT_EQ(rev["author"]["username"], "anna");
  EXPECT_EQ(r->get_header_value("ETag"), "\"" + std::to_string(rev["id"].get<int64_t>()) + "\"");

  // A second client still editing from the AI revision: 409, and nothing is stored.
  auto stale =
      c.Post(case_path("/revisions"), h, label_bytes(block_label(block_grid(), 4, 6), tmp_ / "scratch", "edit2"), "application/gzip");
  expect_error(stale, 409, "Conflict");
  json revs = parse_body(c.Get(case_path("/revisions"), bearer(anna)));
  ASSERT_EQ(revs["items"].size(), 2u);

  // The saved label reads back identically.
  auto back = c.Get(case_path("/revisions/" + std::to_string(rev["id"].get<int64_t>()) + "/label"), bearer(anna));
  ASSERT_EQ(back->status, 200);
  {
    std::ofstream(tmp_ / "scratch" / "back.nii.gz", std::ios::binary) << back->body;
    LabelMap l = io::read_label(tmp_ / "scratch" / "back.nii.gz");
    EXPECT_EQ(l.voxels(), block_label(block_grid(), 2, 8).voxels());
  }

  // Stats against the AI original: Dice = 2*48/(48+72) = 0.8, 24 changed voxels, +0.048 mL.
  json stats =
      parse_body(c.Get(case_path("/revisions/" + std::to_string(rev["id"].get<int64_t>()) + "/stats"), bearer(anna)));
  EXPECT_EQ(stats["ai_revision_id"], seeded_.ai_revision_id);
  EXPECT_NEAR(stats["dice"].get<double>(), 0.8, 1e-9);
  EXPECT_EQ(stats["changed_voxels"], 24);
  EXPECT_NEAR(stats["volume_change_ml"].get<double>(), 24 * 0.002, 1e-9);

  // Saving moved the case to in_progress and counted the editing time.
  detail = parse_body(c.Get(case_path(), bearer(anna)));
  EXPECT_EQ(detail["status"], "in_progress");
  EXPECT_DOUBLE_EQ(detail["editing_seconds"].get<double>(), 30.0);
  EXPECT_EQ(detail["current_revision_id"], rev["id"]);
}

TEST_F(ServerTest, BadInput_Gives4xxJson_AndTheServerKeepsServing) {
  start({"--max-upload-mb", "1"});
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  // Malformed JSON, wrong types, missing fields.
  expect_error(c.Post("/api/auth/login", "{\"username\": ", "application/json"), 400, "BadArgument");
  expect_error(c.Post("/api/auth/login", "[1,2]", "application/json"), 400, "BadArgument");
  expect_error(c.Post("/api/auth/login", R"({"username": 5, "password": "x"})", "application/json"), 400,
               "BadArgument");
  expect_error(c.Post(case_path("/status"), bearer(anna), R"({"status": 17})", "application/json"), 400, "BadArgument");
  expect_error(c.Post(case_path("/status"), bearer(anna), R"({"status": "finished"})", "application/json"), 400,
               "BadArgument");
  // Unknown ids, unknown routes, wrong methods, bad query values.
  expect_error(c.Get("/api/cases/999999", bearer(anna)), 404, "NotFound");
  expect_error(c.Get("/api/cases/abc", bearer(anna)), 404, "NotFound");
  expect_error(c.Get("/api/cases/" + std::to_string(seeded_.case_id) + "/revisions/999999", bearer(anna)), 404,
               "NotFound");
  expect_error(c.Get("/api/jobs/424242", bearer(anna)), 404, "NotFound");
  expect_error(c.Get("/api/no/such/route", bearer(anna)), 404, "NotFound");
  expect_error(c.Get("/api/no/such/route"), 404, "NotFound");
  expect_error(c.Delete("/api/cases", bearer(anna)), 405, "MethodNotAllowed");
  expect_error(c.Get("/api/cases?limit=abc", bearer(anna)), 400, "BadArgument");
  expect_error(c.Get("/api/cases?sort=shoe_size", bearer(anna)), 400, "BadArgument");
  // Label uploads: garbage, truncated .nii.gz, wrong grid, labels out of range, empty.
  const auto& scratch = tmp_ / "scratch";
  std::string good = label_bytes(block_label(block_grid(), 4, 8), scratch, "good");
  auto save = [&](const std::string& body) {
    return c.Post(case_path("/revisions"), bearer(anna), body, "application/gzip");
  };
  auto garbage = save("this is not a NIfTI file at all, just text");
  ASSERT_TRUE(garbage);
  EXPECT_GE(garbage->status, 400);
  EXPECT_LT(garbage->status, 500) << garbage->body;
  {
    // Truncated anywhere (inside the header, inside the voxel data, just the gzip trailer) or
    // damaged: 422 CorruptFile, and nothing is stored.
    expect_error(save(good.substr(0, 40)), 422, "CorruptFile");
    LabelMap noisy(block_grid());
    uint32_t x = 12345;
    for (auto& v : noisy.voxels()) {
      x = x * 1664525u + 1013904223u;
      v = static_cast<uint8_t>((x >> 24) % 3);
    }
    std::string big_label = label_bytes(noisy, scratch, "noisy");
    expect_error(save(big_label.substr(0, big_label.size() * 7 / 10)), 422, "CorruptFile");
    expect_error(save(big_label.substr(0, big_label.size() - 4)), 422, "CorruptFile");  // no gzip trailer
    std::string flipped = big_label;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x5a);
    auto damaged = save(flipped);  // damaged deflate data or a CRC mismatch
    ASSERT_TRUE(damaged);
    EXPECT_EQ(damaged->status, 422) << damaged->body;
  }
  expect_error(save(""), 400, "BadArgument");
  {
    Geometry g = block_grid();
    g.size = {8, 8, 3};
    LabelMap other(g);
    fs::path p = scratch / "other.nii.gz";
    io::write_label(other, p);
    expect_error(save(slurp_file(p)), 422, "GeometryMismatch");
  }
  {
    Volume v(block_grid(), PixelType::Int16);
    v.data<int16_t>()[3] = 300;
    fs::path p = scratch / "bad_values.nii.gz";
    io::write_image(v, p);
    expect_error(save(slurp_file(p)), 422, "InvalidLabel");
  }
  // Oversized upload (> --max-upload-mb 1): 413 JSON.
  std::string big(3u << 20, 'x');
  expect_error(save(big), 413, "TooLarge");
  // Bad If-Match.
  httplib::Headers h = bearer(anna);
  h.emplace("If-Match", "\"yesterday\"");
  expect_error(c.Post(case_path("/revisions"), h, good, "application/gzip"), 400, "BadArgument");
  // Still serving, and nothing half-written was recorded.
  auto health = c.Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  json revs = parse_body(c.Get(case_path("/revisions"), bearer(anna)));
  EXPECT_EQ(revs["items"].size(), 1u);
  EXPECT_EQ(server_->stop(), 0) << server_->log();
}

TEST_F(ServerTest, StatusWorkflow_AnnotatorCannotValidate_ReviewerCan) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto rita = login("rita", kReviewerPassword);
  auto c = client();
  auto status = [&](const Session& s, const json& body) {
    return c.Post(case_path("/status"), bearer(s), body.dump(), "application/json");
  };
  EXPECT_EQ(status(anna, {{"status", "in_progress"}})->status, 200);
  EXPECT_EQ(status(anna, {{"status", "submitted"}})->status, 200);
  expect_error(status(anna, {{"status", "validated"}}), 403, "Forbidden");
  expect_error(status(rita, {{"status", "rejected"}}), 400, "BadArgument");  // needs a comment
  expect_error(status(rita, {{"status", "validated"}, {"expected_from", "in_progress"}}), 409, "Conflict");
  auto v = status(rita, {{"status", "validated"}, {"expected_from", "submitted"}});
  ASSERT_EQ(v->status, 200) << v->body;
  EXPECT_EQ(parse_body(v)["status"], "validated");
  // Not an allowed transition: validated -> submitted.
  expect_error(status(rita, {{"status", "submitted"}}), 409, "Conflict");
  // A validated case is locked for saving.
  expect_error(c.Post(case_path("/revisions"), bearer(anna), label_bytes(block_label(block_grid(), 4, 8), tmp_ / "scratch", "x"),
                      "application/gzip"),
               409, "Conflict");
  // The annotator may not touch a case assigned to the reviewer.
  expect_error(c.Post("/api/cases/" + std::to_string(seeded_.other_case_id) + "/status", bearer(anna),
                      R"({"status":"in_progress"})", "application/json"),
               403, "Forbidden");

  // Everything above is in the audit trail, and the chain verifies.
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?limit=1000", bearer(admin)));
  std::set<std::string> actions;
  for (const auto& row : audit["items"])
    actions.insert(row["action"].get<std::string>() + ":" + row["outcome"].get<std::string>());
  EXPECT_TRUE(actions.count("login:ok"));
  EXPECT_TRUE(actions.count("status:ok"));
  EXPECT_TRUE(actions.count("status:denied"));
  json verify = parse_body(c.Get("/api/audit/verify", bearer(admin)));
  EXPECT_EQ(verify["intact"], true);
  expect_error(c.Get("/api/audit", bearer(anna)), 403, "Forbidden");
}

TEST_F(ServerTest, WorklistFiltersAndNextCase) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto rita = login("rita", kReviewerPassword);
  auto c = client();
  json all = parse_body(c.Get("/api/cases?sort=name&order=desc", bearer(anna)));
  ASSERT_EQ(all["total"], 2);
  EXPECT_EQ(all["items"][0]["name"], "case_b");
  json mine = parse_body(c.Get("/api/cases?assignee=me", bearer(rita)));
  ASSERT_EQ(mine["total"], 1);
  EXPECT_EQ(mine["items"][0]["id"], seeded_.other_case_id);
  json pre = parse_body(c.Get("/api/cases?status=presegmented", bearer(anna)));
  ASSERT_EQ(pre["total"], 1);
  EXPECT_EQ(pre["items"][0]["id"], seeded_.case_id);
  // Next case for the annotator: the unassigned one (case_b belongs to the reviewer).
  json next = parse_body(c.Get("/api/cases/next", bearer(anna)));
  EXPECT_EQ(next["case"]["id"], seeded_.case_id);
  // Metrics summary counts cases by status.
  json m = parse_body(c.Get("/api/metrics/summary", bearer(anna)));
  EXPECT_EQ(m["cases_by_status"]["presegmented"], 1);
  EXPECT_EQ(m["cases_by_status"]["new"], 1);
}

TEST_F(ServerTest, RegionTools_GrowAndThresholdChangeTheRightVoxels) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  // Grow from inside the bright block on an empty label (revision of the AI block minus itself):
  // start from an empty working label sent by the client.
  std::string empty = label_bytes(LabelMap(block_grid()), tmp_ / "scratch", "empty");
  // base64 via the server's own round trip is not available here: encode in the test.
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  for (std::size_t i = 0; i < empty.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(empty[i]) << 16;
    if (i + 1 < empty.size()) n |= static_cast<unsigned char>(empty[i + 1]) << 8;
    if (i + 2 < empty.size()) n |= static_cast<unsigned char>(empty[i + 2]);
    b64 += a[(n >> 18) & 63];
    b64 += a[(n >> 12) & 63];
    b64 += i + 1 < empty.size() ? a[(n >> 6) & 63] : '=';
    b64 += i + 2 < empty.size() ? a[n & 63] : '=';
  }
  json grow{{"label", b64}, {"seed", {5, 5, 2}}, {"tolerance", 10}, {"return_label", true}};
  auto r = c.Post(case_path("/tools/grow"), bearer(anna), grow.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  json j = parse_body(r);
  EXPECT_EQ(j["changed_voxels"], 48);
  EXPECT_EQ(j["box"]["begin"], json::array({4, 4, 1}));
  EXPECT_EQ(j["box"]["end"], json::array({8, 8, 4}));
  ASSERT_TRUE(j["label"].is_string());

  // Threshold in a box on the current revision (the AI block): only voxels not yet labelled change.
  json thr{{"box", {{"begin", {0, 0, 0}}, {"end", {16, 12, 6}}}}, {"lower", 50}, {"upper", 200}, {"label_value", 2}};
  r = c.Post(case_path("/tools/threshold"), bearer(anna), thr.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(parse_body(r)["changed_voxels"], 48);  // 1 -> 2 on the block
  // Unknown tool and bad settings: 4xx JSON.
  expect_error(c.Post(case_path("/tools/magic_wand"), bearer(anna), "{}", "application/json"), 404, "NotFound");
  expect_error(c.Post(case_path("/tools/grow"), bearer(anna), R"({"seed": [1, 2]})", "application/json"), 400,
               "BadArgument");
  expect_error(c.Post(case_path("/tools/grow"), bearer(anna), R"({"seed": [100, 2, 2]})", "application/json"), 400,
               "BadArgument");
}

TEST_F(ServerTest, JobEvents_StreamProgressUntilTheJobEnds) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  std::string stream;
  std::thread reader([&] {
    auto c = client();
    c.Get("/api/jobs/" + std::to_string(seeded_.job_id) + "/events", bearer(anna), [&](const char* data, size_t n) {
      stream.append(data, n);
      return true;
    });
  });
  // Wait for the first event, then cancel the (queued) job: the stream ends with "end".
  auto c = client();
  for (int i = 0; i < 200; ++i) {
    auto j = parse_body(c.Get("/api/jobs/" + std::to_string(seeded_.job_id), bearer(anna)));
    if (j["state"] == "queued") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = c.Post("/api/jobs/" + std::to_string(seeded_.job_id) + "/cancel", bearer(anna), "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  reader.join();
  EXPECT_NE(stream.find("event: progress\ndata: {"), std::string::npos) << stream;
  EXPECT_NE(stream.find("event: end\n"), std::string::npos) << stream;
  EXPECT_NE(stream.find("\"state\":\"cancelled\""), std::string::npos) << stream;
}

TEST_F(ServerTest, StaticFiles_OnlyListedFilesAreServed) {
  fs::path web = tmp_ / "web";
  fs::create_directories(web / "assets");
  std::ofstream(web / "index.html") << "<!doctype html><title>tumorlab</title>";
  std::ofstream(web / "assets" / "app.js") << "console.log('tumorlab')";
  std::ofstream(tmp_ / "secret.txt") << "outside the web folder";
  start({}, web);
  auto c = client();
  auto r = c.Get("/");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("<title>tumorlab</title>"), std::string::npos);
  EXPECT_TRUE(r->has_header("Content-Security-Policy"));
  r = c.Get("/assets/app.js");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/javascript", 0), 0u);
  // Client-side routes get the page; files that were not listed do not exist.
  EXPECT_EQ(c.Get("/worklist")->status, 200);
  expect_error(c.Get("/assets/missing.js"), 404);
  auto escape = c.Get("/../secret.txt");
  ASSERT_TRUE(escape);
  EXPECT_EQ(escape->body.find("outside the web folder"), std::string::npos);
  escape = c.Get("/assets/..%2F..%2Fsecret.txt");
  ASSERT_TRUE(escape);
  EXPECT_EQ(escape->body.find("outside the web folder"), std::string::npos);
  // Files created after start-up are not served either.
  std::ofstream(web / "late.js") << "late";
  expect_error(c.Get("/late.js"), 404);
  expect_error(c.Post("/index.html", "x", "text/plain"), 405);
}

TEST_F(ServerTest, Tls_SelfSignedCertificate_SecureCookies) {
  if (std::system("openssl version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs the openssl command to make a certificate";
  fs::path cert = tmp_ / "cert.pem", key = tmp_ / "key.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 -keyout '" +
                          key.string() + "' -out '" + cert.string() + "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  start({"--tls-cert", cert.string(), "--tls-key", key.string()});
  EXPECT_EQ(server_->url().rfind("https://", 0), 0u);
  httplib::SSLClient c("127.0.0.1", server_->port());
  c.set_ca_cert_path(cert.string().c_str());
  c.enable_server_certificate_verification(false);  // CN-only self-signed certificate
  auto h = c.Get("/api/health");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  EXPECT_EQ(h->status, 200);
  auto r =
      c.Post("/api/auth/login", json{{"username", "admin"}, {"password", kAdminPassword}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  int secure = 0;
  for (const auto& [k, v] : r->headers)
    if (k == "Set-Cookie" && v.find("; Secure") != std::string::npos) ++secure;
  EXPECT_EQ(secure, 2);
  // Plain HTTP to the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", server_->port());
  plain.set_read_timeout(5, 0);
  auto p = plain.Get("/api/health");
  EXPECT_TRUE(!p || p->status != 200);
}

TEST_F(ServerTest, GracefulShutdownOnSigterm_AndRestartKeepsData) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  auto r = c.Post(case_path("/revisions"), bearer(anna), label_bytes(block_label(block_grid(), 3, 8), tmp_ / "scratch", "s"),
                  "application/gzip");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(server_->stop(), 0) << server_->log();
  EXPECT_NE(server_->log().find("stopped"), std::string::npos);
  // Restart on the same folder: the admin is not created again, the session and revision survive.
  start();
  EXPECT_EQ(server_->log().find("created user"), std::string::npos);
  auto c2 = client();
  auto revs = parse_body(c2.Get(case_path("/revisions"), bearer(anna)));
  EXPECT_EQ(revs["items"].size(), 2u);
}

TEST_F(ServerTest, Logs_CarryNoSecretsOrCaseNames) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  c.Get(case_path(), bearer(anna));
  c.Get("/api/cases?assignee=me", bearer(anna));
  EXPECT_EQ(server_->stop(), 0);
  const std::string log = server_->log();
  EXPECT_NE(log.find("GET /api/cases/{case_id} -> 200"), std::string::npos) << log;
  EXPECT_EQ(log.find(anna.token), std::string::npos);
  EXPECT_EQ(log.find(kAdminPassword), std::string::npos);
  EXPECT_EQ(log.find(kAnnotatorPassword), std::string::npos);
  EXPECT_EQ(log.find("case_a"), std::string::npos);
}

// Many clients saving on one case at once, each from the revision it last saw: every save is
// either acknowledged (201) or refused as a conflict (409), the acknowledged ones form one chain
// of parents, and each reads back as what its client sent.
TEST_F(ServerTest, ConcurrentSaves_OneChainNoLostOrHalfWrittenRevision) {
  start({"--workers", "16"});
  auto anna = login("anna", kAnnotatorPassword);
  const int clients = 8, rounds = 4;
  std::vector<std::string> bodies;
  for (int t = 0; t < clients; ++t)
    bodies.push_back(label_bytes(block_label(block_grid(), t % 8, 8 + (t % 8)), tmp_ / "scratch", "c" + std::to_string(t)));
  std::mutex mu;
  std::map<int64_t, int> acknowledged;  // revision id -> client
  int conflicts = 0, others = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      auto c = client();
      for (int r = 0; r < rounds; ++r) {
        json detail = parse_body(c.Get(case_path(), bearer(anna)));
        httplib::Headers h = bearer(anna);
        h.emplace("If-Match", "\"" + std::to_string(detail["current_revision_id"].get<int64_t>()) + "\"");
        auto res = c.Post(case_path("/revisions"), h, bodies[t], "application/gzip");
        std::lock_guard<std::mutex> lock(mu);
        if (res && res->status == 201)
          acknowledged[parse_body(res)["id"].get<int64_t>()] = t;
        else if (res && res->status == 409)
          ++conflicts;
        else
          ++others;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(others, 0);
  EXPECT_EQ(static_cast<int>(acknowledged.size()) + conflicts, clients * rounds);
  EXPECT_GE(acknowledged.size(), static_cast<std::size_t>(rounds));
  auto c = client();
  json revs = parse_body(c.Get(case_path("/revisions"), bearer(anna)));
  ASSERT_EQ(revs["items"].size(), acknowledged.size() + 1);  // + the AI revision
  // One chain: each revision's parent is the one before it.
  for (std::size_t i = 1; i < revs["items"].size(); ++i)
    EXPECT_EQ(revs["items"][i]["parent_id"], revs["items"][i - 1]["id"]);
  for (const auto& [id, t] : acknowledged) {
    auto l = c.Get(case_path("/revisions/" + std::to_string(id) + "/label"), bearer(anna));
    ASSERT_EQ(l->status, 200);
    fs::path p = tmp_ / "scratch" / ("back" + std::to_string(id) + ".nii.gz");
    std::ofstream(p, std::ios::binary) << l->body;
    EXPECT_EQ(io::read_label(p).voxels(), block_label(block_grid(), t % 8, 8 + (t % 8)).voxels()) << "revision " << id;
  }
}

// SIGKILL in the middle of saves, then a restart: every acknowledged revision is there and
// readable, nothing half-written shows up, and the audit chain verifies.
TEST_F(ServerTest, KilledDuringSaves_AcknowledgedRevisionsSurviveRestart) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  std::string body = label_bytes(block_label(block_grid(), 2, 8), tmp_ / "scratch", "k");
  std::mutex mu;
  std::vector<int64_t> acknowledged;
  std::atomic<bool> go{true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      auto c = client();
      c.set_read_timeout(5, 0);
      while (go) {
        auto res =
            c.Post(case_path("/revisions"), bearer(anna), body, "application/gzip");  // no If-Match: parent = current
        if (!res) break;
        if (res->status == 201) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.push_back(parse_body(res)["id"].get<int64_t>());
        }
      }
    });
  // Kill once some saves were acknowledged (bounded wait, no timing assertion).
  for (int i = 0; i < 600; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (acknowledged.size() >= 5) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  server_->kill_hard();
  go = false;
  for (auto& th : threads) th.join();
  ASSERT_GE(acknowledged.size(), 1u);
  start();
  auto c = client();
  json revs = parse_body(c.Get(case_path("/revisions"), bearer(anna)));
  std::set<int64_t> stored;
  for (const auto& r : revs["items"]) stored.insert(r["id"].get<int64_t>());
  for (int64_t id : acknowledged) {
    EXPECT_TRUE(stored.count(id)) << "acknowledged revision " << id << " is missing after the restart";
    auto l = c.Get(case_path("/revisions/" + std::to_string(id) + "/label"), bearer(anna));
    ASSERT_EQ(l->status, 200);
    fs::path p = tmp_ / "scratch" / ("k" + std::to_string(id) + ".nii.gz");
    std::ofstream(p, std::ios::binary) << l->body;
    EXPECT_EQ(io::read_label(p).count_nonzero(), block_label(block_grid(), 2, 8).count_nonzero());
  }
  // Every stored revision (acknowledged or not) is complete.
  for (int64_t id : stored) {
    auto l = c.Get(case_path("/revisions/" + std::to_string(id) + "/label"), bearer(anna));
    EXPECT_EQ(l->status, 200) << id;
  }
  auto admin = login("admin", kAdminPassword);
  EXPECT_EQ(parse_body(c.Get("/api/audit/verify", bearer(admin)))["intact"], true);
}

TEST_F(ServerTest, UncertaintyMap_DownloadedAsRecordedByThePrediction) {
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto c = client();
  json detail = parse_body(c.Get(case_path(), bearer(anna)));
  EXPECT_EQ(detail["has_uncertainty"], true);
  EXPECT_DOUBLE_EQ(detail["uncertainty"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(detail["al_rank"].get<double>(), 1.0);
  json revs = parse_body(c.Get(case_path("/revisions"), bearer(anna)));
  ASSERT_EQ(revs["items"].size(), 1u);
  EXPECT_EQ(revs["items"][0]["kind"], "ai");
  EXPECT_EQ(revs["items"][0]["model"]["name"], "test-model");
  EXPECT_TRUE(revs["items"][0]["author"].is_null());
  auto r = c.Get(case_path("/uncertainty"), bearer(anna));
  ASSERT_EQ(r->status, 200);
  fs::path p = tmp_ / "scratch" / "u.nii.gz";
  std::ofstream(p, std::ios::binary) << r->body;
  Volume u = io::read_image(p);
  EXPECT_TRUE(u.geometry().same_grid(block_grid()));
  double sum = 0;
  for (int64_t n = 0; n < u.voxel_count(); ++n) sum += u.value(n);
  EXPECT_DOUBLE_EQ(sum, 16 * 0.5);
  // The other case has no prediction: 404 JSON.
  expect_error(c.Get("/api/cases/" + std::to_string(seeded_.other_case_id) + "/uncertainty", bearer(anna)), 404,
               "NotFound");
}

// Sessions end after --session-ttl: the cookie's Max-Age and the token's lifetime say so, and a
// token used after it is 401 (a fresh login works again). A bad duration is refused at start.
TEST_F(ServerTest, SessionTtl_TokenRefusedAfterItsLifetime) {
  start({"--session-ttl", "2s"});
  auto c = client();
  auto r =
      c.Post("/api/auth/login", json{{"username", "admin"}, {"password", kAdminPassword}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string token = parse_body(r)["token"];
  bool max_age = false;
  for (const auto& [k, v] : r->headers)
    if (k == "Set-Cookie" && v.rfind("tl_session=", 0) == 0) max_age = v.find("Max-Age=2") != std::string::npos;
  EXPECT_TRUE(max_age);
  EXPECT_EQ(c.Get("/api/auth/me", {{"Authorization", "Bearer " + token}})->status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(2600));
  expect_error(c.Get("/api/auth/me", {{"Authorization", "Bearer " + token}}), 401, "Unauthenticated");
  r = c.Post("/api/auth/login", json{{"username", "admin"}, {"password", kAdminPassword}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  server_.reset();
  const std::string bad = std::string(TUMORLAB_CLI) + " serve --data-dir " + (tmp_ / "other").string() +
                          " --session-ttl forever > " + (tmp_ / "bad.log").string() + " 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
}
