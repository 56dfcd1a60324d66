// The MONAI Label compatible subset (docs/monai_label.md) on the real `tumorlab serve` binary on
// 127.0.0.1, called the way MONAI Label's clients call it: OAuth2 password form at /auth/token,
// "Authorization: bearer <token>", /info/, /datastore/?output=all, image download, a label saved
// with the exact multipart body monailabel/client/client.py builds, active learning and training
// jobs. The data folder is seeded through the real store (as server_test.cpp does).
#include <dcmtk/config/osconfig.h>  // must precede other DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "api_test_support.h"
#include "server_process.h"
#include "test_support.h"
#include "tiny_plans.h"
#include "tumorlab/app/cases.h"
#include "tumorlab/app/jobs.h"
#include "tumorlab/io/archive.h"
#include "tumorlab/io/deidentify.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
using nlohmann::json;
using namespace tumorlab::testing;  // TempDir, ServeProcess, api_test_support.h
namespace fs = std::filesystem;

namespace {

struct Seeded {
  store::Id case_a = 0, case_b = 0, case_c = 0, ai_revision_id = 0, annotator_id = 0, reviewer_id = 0;
  std::string image_sha256;
};

// Users; case_a (AI revision, rank 1), case_b (assigned to the reviewer), case_c (unassigned,
// rank 2); an active registered model "test-model" (labels background/tumor, 3D).
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
  s.image_sha256 = file.sha256;
  store::NewImage ni;
  ni.sha256 = file.sha256;
  ni.modality = "MR";
  ni.channel_names = {"T1"};
  ni.size = {16, 12, 6};
  ni.spacing_mm = {1, 1, 2};
  auto im = st.write([&](store::WriteTxn& t) { return t.add_image(ni); });
  s.case_a = st.write([&](store::WriteTxn& t) { return t.add_case({"case_a", im.id, std::nullopt}); }).id;
  s.case_b = st.write([&](store::WriteTxn& t) { return t.add_case({"case_b", im.id, s.reviewer_id}); }).id;
  s.case_c = st.write([&](store::WriteTxn& t) { return t.add_case({"case_c", im.id, std::nullopt}); }).id;
  st.write([&](store::WriteTxn& t) { t.set_case_scores(s.case_c, 0.5, 2.0); });
  fs::create_directories(scratch / "test-model");
  const json meta{{"modality", "MR"}, {"channels", {"T1"}}, {"labels", {{"background", 0}, {"tumor", 1}}}, {"dims", 3}};
  st.write([&](store::WriteTxn& t) {
    auto m = t.add_model("test-model", "1", (scratch / "test-model").string(), meta.dump());
    t.activate_model(m.id);
  });
  holder.reset();
  auto lab = app::Lab::open_beside_server(data_dir);
  app::AiPrediction p;
  p.case_id = s.case_a;
  p.label = block_label(block_grid(), 4, 8);
  p.model_name = "test-model";
  p.model_version = "1";
  p.case_uncertainty = 0.25;
  p.al_rank = 1;
  s.ai_revision_id = app::record_ai_prediction(*lab, p)["id"].get<int64_t>();
  return s;
}

// No job worker: the /train/ test checks the queue (a worker would start the training;
// server_jobs_test runs one end to end).
class ServerProcess : public tumorlab::testing::ServeProcess {
 public:
  explicit ServerProcess(const fs::path& data_dir)
      : ServeProcess(data_dir, kAdminPassword, {}, {"--job-workers", "0"}) {}
};

// monailabel/client/client.py MONAILabelUtils.encode_multipart_formdata, byte for byte: the
// fixed boundary, fields first, then files with a guessed Content-Type, CRLF after every line.
std::pair<std::string, std::string> monai_multipart(
    const std::vector<std::pair<std::string, std::string>>& fields,
    const std::vector<std::tuple<std::string, std::string, std::string>>& files) {
  const std::string limit = "----------lImIt_of_THE_fIle_eW_$";
  std::vector<std::string> lines;
  for (const auto& [key, value] : fields) {
    lines.push_back("--" + limit);
    lines.push_back("Content-Disposition: form-data; name=\"" + key + "\"");
    lines.push_back("");
    lines.push_back(value);
  }
  for (const auto& [key, filename, data] : files) {
    lines.push_back("--" + limit);
    lines.push_back("Content-Disposition: form-data; name=\"" + key + "\"; filename=\"" + filename + "\"");
    lines.push_back("Content-Type: application/octet-stream");  // mimetypes.guess_type("x.nii.gz") -> None
    lines.push_back("");
    lines.push_back(data);
  }
  lines.push_back("--" + limit + "--");
  lines.push_back("");
  std::string body;
  for (const auto& l : lines) body += l + "\r\n";
  return {"multipart/form-data; boundary=" + limit, body};
}

class MonaiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp_ / "data";
    fs::create_directories(tmp_ / "scratch");
    seeded_ = seed(data_, tmp_ / "scratch");
    before_start();
    server_ = std::make_unique<ServerProcess>(data_);
    ASSERT_GT(server_->port(), 0);
  }
  virtual void before_start() {}
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    c.set_write_timeout(60, 0);
    return c;
  }
  // MONAILabelClient.auth_token: urlencoded username, password, grant_type=password; the header
  // is built as f"{token['token_type']} {token['access_token']}".
  httplib::Headers login(const std::string& user, const std::string& password) {
    auto c = client();
    httplib::Params form{{"username", user}, {"password", password}, {"grant_type", "password"}};
    auto r = c.Post("/auth/token", form);
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    json j = parse_body(r);
    return {{"Authorization", j.value("token_type", "") + " " + j.value("access_token", "")}};
  }
  std::string label_nii(const LabelMap& l, const std::string& name) {
    fs::path p = tmp_ / "scratch" / (name + ".nii.gz");
    io::write_label(l, p);
    return slurp_file(p);
  }

  TempDir tmp_;
  fs::path data_;
  Seeded seeded_;
  std::unique_ptr<ServerProcess> server_;
};

}  // namespace

TEST_F(MonaiTest, Auth_TokenFromPasswordForm_BearerWorks_NoTokenIs401) {
  auto c = client();
  auto a = c.Get("/auth/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(parse_body(a)["enabled"], true);

  auto r = c.Post("/auth/token",
                  httplib::Params{{"username", "anna"}, {"password", kAnnotatorPassword}, {"grant_type", "password"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json tok = parse_body(r);
  EXPECT_EQ(tok["token_type"], "bearer");
  EXPECT_GT(tok["expires_in"].get<int64_t>(), 0);
  const httplib::Headers h{{"Authorization", "bearer " + tok["access_token"].get<std::string>()}};
  auto v = c.Get("/auth/token/valid", h);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->status, 200);
  EXPECT_EQ(parse_body(v)["username"], "anna");
  EXPECT_EQ(parse_body(v)["roles"], json::array({"annotator"}));
  // The token is a tumorlab session: /api accepts it too.
  EXPECT_EQ(c.Get("/api/auth/me", h)->status, 200);

  expect_error(c.Post("/auth/token", httplib::Params{{"username", "anna"}, {"password", "wrong-password"}}), 401,
               "Unauthenticated");
  expect_error(c.Post("/auth/token", httplib::Params{{"username", "anna"}}), 400, "BadArgument");
  expect_error(c.Post("/auth/token", httplib::Params{{"username", "anna"},
                                                     {"password", kAnnotatorPassword},
                                                     {"grant_type", "client_credentials"}}),
               400, "BadArgument");
  // No token (or a made-up one): 401 JSON on every other route.
  expect_error(c.Get("/info/"), 401, "Unauthenticated");
  expect_error(c.Get("/datastore/?output=all"), 401, "Unauthenticated");
  expect_error(c.Get("/datastore/image?image=case_a"), 401, "Unauthenticated");
  expect_error(c.Post("/activelearning/first", "{}", "application/json"), 401, "Unauthenticated");
  expect_error(c.Get("/info/", {{"Authorization", "bearer not-a-token"}}), 401);
  // The login is audited like /api logins.
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=login&limit=100", admin));
  int anna_logins = 0;
  for (const auto& row : audit["items"])
    if (row.value("actor", "") == "anna" && row.value("outcome", "") == "ok") ++anna_logins;
  EXPECT_GE(anna_logins, 1);
}

TEST_F(MonaiTest, Info_ListsActiveModelsLabelsStrategies) {
  auto c = client();
  auto h = login("anna", kAnnotatorPassword);
  auto r = c.Get("/info/", h);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json info = parse_body(r);
  EXPECT_EQ(info["name"], "tumorlab");
  EXPECT_FALSE(info["version"].get<std::string>().empty());
  ASSERT_TRUE(info["models"].contains("test-model")) << info.dump();
  const json& m = info["models"]["test-model"];
  EXPECT_EQ(m["type"], "segmentation");
  EXPECT_EQ(m["labels"], json({{"tumor", 1}}));  // background left out, as MONAI apps do
  EXPECT_EQ(m["dimension"], 3);
  EXPECT_EQ(m["version"], "1");
  EXPECT_EQ(info["labels"], json({{"tumor", 1}}));
  EXPECT_TRUE(info["trainers"].contains("test-model"));
  for (const char* s : {"rank", "first", "random"}) EXPECT_TRUE(info["strategies"].contains(s)) << s;
  EXPECT_EQ(info["datastore"]["total"], 3);
  EXPECT_EQ(info["datastore"]["label_tags"]["original"], 1);
}

TEST_F(MonaiTest, Datastore_AllListsSeededCases_ImageDownloadIsTheStoredVolume) {
  auto c = client();
  auto h = login("anna", kAnnotatorPassword);
  auto r = c.Get("/datastore/?output=all", h);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json ds = parse_body(r);
  std::set<std::string> ids;
  for (const auto& [k, v] : ds["objects"].items()) ids.insert(k);
  EXPECT_EQ(ids, (std::set<std::string>{"case_a", "case_b", "case_c"}));
  const json& a = ds["objects"]["case_a"];
  EXPECT_EQ(a["image"]["ext"], ".nii.gz");
  EXPECT_EQ(a["image"]["info"]["checksum"], "SHA256:" + seeded_.image_sha256);
  EXPECT_EQ(a["image"]["info"]["size"], json({16, 12, 6}));
  ASSERT_TRUE(a["labels"].contains("original"));
  EXPECT_FALSE(a["labels"].contains("final"));  // the current revision is still the AI one
  EXPECT_EQ(a["labels"]["original"]["info"]["revision_id"], seeded_.ai_revision_id);
  EXPECT_EQ(a["labels"]["original"]["info"]["params"]["label_names"], json({{"tumor", 1}}));
  EXPECT_TRUE(ds["objects"]["case_b"]["labels"].empty());

  json stats = parse_body(c.Get("/datastore/", h));
  EXPECT_EQ(stats["total"], 3);
  EXPECT_EQ(stats["completed"], 0);
  EXPECT_EQ(parse_body(c.Get("/datastore/?output=train", h)), json::array());
  expect_error(c.Get("/datastore/?output=everything", h), 400, "BadArgument");

  // The image reads back as the stored volume, and its bytes match the advertised checksum.
  auto img = c.Get("/datastore/image?image=case_a", h);
  ASSERT_TRUE(img);
  ASSERT_EQ(img->status, 200) << img->body;
  fs::path p = tmp_ / "scratch" / "downloaded.nii.gz";
  {
    std::ofstream out(p, std::ios::binary);
    out << img->body;
  }
  EXPECT_EQ(store::sha256_hex(img->body), seeded_.image_sha256);
  Volume got = io::read_image(p);
  Volume want = block_image();
  ASSERT_EQ(got.geometry().size, want.geometry().size);
  EXPECT_EQ(got.geometry().spacing_mm, want.geometry().spacing_mm);
  for (int64_t n = 0; n < want.voxel_count(); ++n) ASSERT_EQ(got.value(n), want.value(n)) << "voxel " << n;
  expect_error(c.Get("/datastore/image?image=no_such_case", h), 404, "NotFound");
  expect_error(c.Get("/datastore/image", h), 400, "BadArgument");

  // The AI original as a label download; no final label yet.
  auto orig = c.Get("/datastore/label?label=case_a&tag=original", h);
  ASSERT_TRUE(orig);
  ASSERT_EQ(orig->status, 200) << orig->body;
  fs::path lp = tmp_ / "scratch" / "original.nii.gz";
  {
    std::ofstream out(lp, std::ios::binary);
    out << orig->body;
  }
  EXPECT_EQ(io::read_label(lp).count_nonzero(), 48);
  expect_error(c.Get("/datastore/label?label=case_a&tag=final", h), 404, "NotFound");
}

TEST_F(MonaiTest, SaveLabel_ClientMultipart_NewRevisionAudited_WrongGridIs4xx) {
  auto c = client();
  auto h = login("anna", kAnnotatorPassword);
  const std::string bytes = label_nii(block_label(block_grid(), 4, 6), "corrected");  // 24 voxels
  auto [type, body] =
      monai_multipart({{"params", R"({"label_info": [{"name": "tumor", "idx": 1}], "client_id": "user-xyz"})"}},
                      {{"label", "/tmp/slicer/label.nii.gz", bytes}});
  auto r = c.Put("/datastore/label?image=case_a", h, body, type.c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json saved = parse_body(r);
  EXPECT_EQ(saved["image"], "case_a");
  EXPECT_EQ(saved["label"], "case_a");
  EXPECT_EQ(saved["tag"], "final");
  const int64_t rev_id = saved["revision_id"];
  EXPECT_EQ(saved["revision"]["kind"], "manual");
  EXPECT_EQ(saved["revision"]["parent_id"], seeded_.ai_revision_id);
  EXPECT_EQ(saved["revision"]["voxel_count"], 24);

  // Visible in /api: the revision list, the case's current pointer, the audit trail.
  json revs = parse_body(c.Get("/api/cases/" + std::to_string(seeded_.case_a) + "/revisions", h));
  ASSERT_EQ(revs["items"].size(), 2u);
  EXPECT_EQ(revs["items"][1]["id"], rev_id);
  EXPECT_EQ(revs["items"][1]["author"]["username"], "anna");
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=save&case_id=" + std::to_string(seeded_.case_a), admin));
  ASSERT_FALSE(audit["items"].empty());
  EXPECT_EQ(audit["items"][0]["actor"], "anna");
  EXPECT_EQ(audit["items"][0]["outcome"], "ok");
  // Now a final label: listed by the datastore and downloadable.
  json ds = parse_body(c.Get("/datastore/?output=all", h));
  EXPECT_EQ(ds["objects"]["case_a"]["labels"]["final"]["info"]["revision_id"], rev_id);
  EXPECT_EQ(parse_body(c.Get("/datastore/?output=train", h)), json::array({{{"image", "case_a"}, {"label", "case_a"}}}));
  auto fin = c.Get("/datastore/label?label=case_a&tag=final", h);
  ASSERT_EQ(fin->status, 200);
  EXPECT_EQ(store::sha256_hex(fin->body), saved["revision"]["sha256"].get<std::string>());

  // A label on another grid: 422 GeometryMismatch JSON, nothing stored.
  Geometry other = block_grid();
  other.size = {8, 12, 6};
  auto [t2, b2] =
      monai_multipart({{"params", "{}"}}, {{"label", "label.nii.gz", label_nii(block_label(other, 4, 6), "small")}});
  expect_error(c.Put("/datastore/label?image=case_a", h, b2, t2.c_str()), 422, "GeometryMismatch");
  // Not NIfTI, no label part, tag original, unknown case: 4xx JSON.
  auto [t3, b3] = monai_multipart({{"params", "{}"}}, {{"label", "label.seg.nrrd", "NRRD0004\n"}});
  expect_error(c.Put("/datastore/label?image=case_a", h, b3, t3.c_str()), 415, "UnsupportedFormat");
  auto [t4, b4] = monai_multipart({{"params", "{}"}}, {});
  expect_error(c.Put("/datastore/label?image=case_a", h, b4, t4.c_str()), 400, "BadArgument");
  auto [t5, b5] = monai_multipart({{"params", "{}"}}, {{"label", "label.nii.gz", bytes}});
  expect_error(c.Put("/datastore/label?image=case_a&tag=original", h, b5, t5.c_str()), 400, "BadArgument");
  expect_error(c.Put("/datastore/label?image=nope", h, b5, t5.c_str()), 404, "NotFound");
  // The annotator may not save on the reviewer's case (same rule as /api).
  expect_error(c.Put("/datastore/label?image=case_b", h, b5, t5.c_str()), 403, "Forbidden");
  // No token: 401.
  expect_error(c.Put("/datastore/label?image=case_a", {}, b5, t5.c_str()), 401, "Unauthenticated");
  revs = parse_body(c.Get("/api/cases/" + std::to_string(seeded_.case_a) + "/revisions", h));
  EXPECT_EQ(revs["items"].size(), 2u);
}

TEST_F(MonaiTest, ActiveLearning_FirstRankRandom_ReturnOpenCasesTheUserMayEdit) {
  auto c = client();
  auto h = login("anna", kAnnotatorPassword);
  auto r = c.Post("/activelearning/first", h, R"({"client_id": "user-xyz"})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json s = parse_body(r);
  EXPECT_EQ(s["id"], "case_a");
  EXPECT_EQ(s["name"], "case_a.nii.gz");
  EXPECT_EQ(s["checksum"], "SHA256:" + seeded_.image_sha256);
  EXPECT_FALSE(s.contains("path"));
  // rank: tumorlab's order (active-learning rank 1 = case_a).
  EXPECT_EQ(parse_body(c.Post("/activelearning/rank", h, "", "application/json"))["id"], "case_a");
  // random: one of the cases anna may edit (never the reviewer's case_b).
  for (int i = 0; i < 10; ++i) {
    std::string id = parse_body(c.Post("/activelearning/random", h, "{}", "application/json"))["id"];
    EXPECT_TRUE(id == "case_a" || id == "case_c") << id;
  }
  expect_error(c.Post("/activelearning/epistemic", h, "{}", "application/json"), 404, "NotFound");
}

TEST_F(MonaiTest, Train_QueuesAnHonestJob_StatusAndStop) {
  auto c = client();
  auto anna = login("anna", kAnnotatorPassword);
  auto rita = login("rita", kReviewerPassword);
  expect_error(c.Get("/train/", rita), 404, "NotFound");
  expect_error(c.Get("/train/?check_if_running=true", rita), 404, "NotFound");
  expect_error(c.Post("/train/test-model", anna, "{}", "application/json"), 403, "Forbidden");
  auto r = c.Post("/train/test-model", rita, R"({"max_epochs": 1})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json task = parse_body(r);
  EXPECT_EQ(task["type"], "train");
  EXPECT_EQ(task["model"], "test-model");
  const int64_t job_id = task["id"];
  // The job is real: in /api/jobs with type train, owned by the caller; its state is what the
  // store says (this server runs no job worker, so it stays queued until stopped).
  json job = parse_body(c.Get("/api/jobs/" + std::to_string(job_id), rita));
  EXPECT_EQ(job["type"], "train");
  EXPECT_EQ(job["params"]["model"], "test-model");
  EXPECT_EQ(job["params"]["params"]["max_epochs"], 1);
  EXPECT_NE(job["state"], "succeeded");
  const std::map<std::string, std::string> status_of{
      {"queued", "PENDING"}, {"running", "RUNNING"}, {"failed", "ERROR"}, {"cancelled", "STOPPED"}};
  json st = parse_body(c.Get("/train/", anna));
  EXPECT_EQ(st["id"], job_id);
  EXPECT_EQ(st["status"], status_of.at(st["job"]["state"].get<std::string>()));
  EXPECT_FALSE(st["details"].empty());
  if (st["job"]["state"] == "queued") {
    // A second start while one is queued: 409.
    expect_error(c.Post("/train/test-model", rita, "{}", "application/json"), 409, "Conflict");
    EXPECT_EQ(c.Get("/train/?check_if_running=true", anna)->status, 200);
    expect_error(c.Delete("/train/", anna), 403, "Forbidden");
    json stopped = parse_body(c.Delete("/train/", rita));
    EXPECT_EQ(stopped["id"], job_id);
    EXPECT_EQ(stopped["status"], "STOPPED");
    EXPECT_EQ(parse_body(c.Get("/api/jobs/" + std::to_string(job_id), rita))["state"], "cancelled");
  }
  expect_error(c.Get("/train/?check_if_running=true", anna), 404, "NotFound");
  expect_error(c.Post("/train/no-such-model", rita, "{}", "application/json"), 404, "NotFound");
  // Audited.
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=job.enqueue", admin));
  ASSERT_FALSE(audit["items"].empty());
  EXPECT_EQ(audit["items"][0]["actor"], "rita");
}

TEST_F(MonaiTest, Infer_BadRequestsAre4xx) {
  auto c = client();
  auto h = login("anna", kAnnotatorPassword);
  auto [type, body] = monai_multipart({{"params", "{}"}}, {});
  expect_error(c.Post("/infer/test-model", h, body, type.c_str()), 400, "BadArgument");  // no image
  expect_error(c.Post("/infer/test-model?image=nope", h, body, type.c_str()), 404, "NotFound");
  expect_error(c.Post("/infer/no-such-model?image=case_a", h, body, type.c_str()), 404, "NotFound");
  expect_error(c.Post("/infer/test-model?image=case_a&output=dicom_seg", h, body, type.c_str()), 400, "BadArgument");
  expect_error(c.Post("/infer/test-model?image=case_a", {}, body, type.c_str()), 401, "Unauthenticated");
  // The failed run is audited.
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=monai.infer", admin));
  ASSERT_FALSE(audit["items"].empty());
  EXPECT_EQ(audit["items"][0]["outcome"], "failed");
}

// ---- PUT /datastore/ (image upload) and DELETE /datastore/ ----------------------------------

namespace {

// A NIfTI unlike the seeded image (so that it is not "already stored").
std::string other_image_nii(const fs::path& scratch) {
  Volume v = block_image();
  auto* d = v.data<int16_t>();
  for (int64_t n = 0; n < v.voxel_count(); ++n) d[n] = static_cast<int16_t>(d[n] + 7 + n % 3);
  const fs::path p = scratch / "other_image.nii.gz";
  io::write_image(v, p);
  return slurp_file(p);
}

json case_names(httplib::Client& c, const httplib::Headers& h) {
  json names = json::array();
  const json list = parse_body(c.Get("/api/cases?limit=500", h));  // kept alive for the loop
  for (const auto& it : list["items"]) names.push_back(it["name"]);
  return names;
}

bool contains(const json& array, const std::string& v) {
  for (const auto& x : array)
    if (x == v) return true;
  return false;
}

}  // namespace

TEST_F(MonaiTest, UploadImage_ClientMultipart_NewCaseInDatastoreAndApi_WrongRole403_BadFile4xxNothingStored) {
  auto c = client();
  auto rita = login("rita", kReviewerPassword);
  auto anna = login("anna", kAnnotatorPassword);
  const std::string bytes = other_image_nii(tmp_ / "scratch");
  // MONAILabelClient.upload_image: PUT /datastore/?image=<id>, fields {"params"}, files {"file"}.
  auto [type, body] =
      monai_multipart({{"params", R"({"client_id": "user-xyz"})"}}, {{"file", "/tmp/slicer/MRHead.nii.gz", bytes}});
  // An annotator may not upload (as POST /api/uploads): 403, nothing stored.
  expect_error(c.Put("/datastore/?image=uploaded_scan", anna, body, type.c_str()), 403, "Forbidden");
  expect_error(c.Put("/datastore/?image=uploaded_scan", {}, body, type.c_str()), 401, "Unauthenticated");
  EXPECT_EQ(parse_body(c.Get("/datastore/", rita))["total"], 3);

  auto r = c.Put("/datastore/?image=uploaded_scan", rita, body, type.c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;  // MONAI Label's client treats anything but 200 as failure
  json up = parse_body(r);
  EXPECT_EQ(up["image"], "uploaded_scan");
  ASSERT_EQ(up["cases"].size(), 1u);
  const int64_t case_id = up["cases"][0]["id"];
  // A pre-segmentation job is queued for the new case.
  ASSERT_EQ(up["jobs"].size(), 1u);
  EXPECT_EQ(up["jobs"][0]["type"], "presegment");
  EXPECT_EQ(up["jobs"][0]["case_id"], case_id);

  // Visible in the MONAI datastore, in /api/cases, and the stored image is the uploaded one.
  json ds = parse_body(c.Get("/datastore/?output=all", anna));
  ASSERT_TRUE(ds["objects"].contains("uploaded_scan")) << ds.dump().substr(0, 400);
  EXPECT_EQ(ds["objects"]["uploaded_scan"]["image"]["info"]["size"], json({16, 12, 6}));
  EXPECT_EQ(parse_body(c.Get("/datastore/", anna))["total"], 4);
  EXPECT_TRUE(contains(case_names(c, anna), "uploaded_scan"));
  auto img = c.Get("/datastore/image?image=uploaded_scan", anna);
  ASSERT_EQ(img->status, 200);
  { std::ofstream(tmp_ / "scratch" / "got.nii.gz", std::ios::binary) << img->body; }
  Volume got = io::read_image(tmp_ / "scratch" / "got.nii.gz");
  { std::ofstream(tmp_ / "scratch" / "sent.nii.gz", std::ios::binary) << bytes; }
  Volume sent = io::read_image(tmp_ / "scratch" / "sent.nii.gz");
  ASSERT_EQ(got.voxel_count(), sent.voxel_count());
  for (int64_t n = 0; n < sent.voxel_count(); ++n) ASSERT_EQ(got.value(n), sent.value(n)) << "voxel " << n;
  // Audited as an import by rita.
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=import&case_id=" + std::to_string(case_id), admin));
  ASSERT_EQ(audit["items"].size(), 1u) << audit.dump();
  EXPECT_EQ(audit["items"][0]["actor"], "rita");

  // The same image again: stored once; the answer names the existing case.
  auto again = c.Put("/datastore/?image=another_name", rita, body, type.c_str());
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(parse_body(again)["image"], "uploaded_scan");
  EXPECT_TRUE(parse_body(again)["cases"].empty());

  // A file that is not an image: 4xx JSON naming the client's file; nothing stored.
  auto [t2, b2] = monai_multipart({{"params", "{}"}}, {{"file", "/tmp/slicer/broken.nii.gz", "not a nifti at all"}});
  auto bad = c.Put("/datastore/?image=broken_scan", rita, b2, t2.c_str());
  ASSERT_TRUE(bad);
  EXPECT_GE(bad->status, 400);
  EXPECT_LT(bad->status, 500);
  json err = parse_body(bad);
  ASSERT_TRUE(err.contains("error")) << bad->body;
  EXPECT_NE(err["error"]["message"].get<std::string>().find("broken.nii.gz"), std::string::npos) << bad->body;
  // No file part, params not JSON: 400.
  auto [t3, b3] = monai_multipart({{"params", "{}"}}, {});
  expect_error(c.Put("/datastore/?image=x", rita, b3, t3.c_str()), 400, "BadArgument");
  auto [t4, b4] = monai_multipart({{"params", "{not json"}}, {{"file", "a.nii.gz", bytes}});
  expect_error(c.Put("/datastore/?image=x", rita, b4, t4.c_str()), 400, "BadArgument");
  EXPECT_EQ(parse_body(c.Get("/datastore/", anna))["total"], 4);
  EXPECT_FALSE(contains(case_names(c, anna), "broken_scan"));

  // DELETE /datastore/: tumorlab never deletes: 405 saying so, and the case is still there.
  auto del = c.Delete("/datastore/?id=uploaded_scan&type=image", rita);
  expect_error(del, 405, "MethodNotAllowed");
  EXPECT_NE(parse_body(del)["error"]["message"].get<std::string>().find("never deletes"), std::string::npos);
  expect_error(c.Delete("/datastore/?id=uploaded_scan&type=image", {}), 401, "Unauthenticated");
  EXPECT_EQ(parse_body(c.Get("/datastore/", anna))["total"], 4);
}

// ---- /infer/{model}?output=dicom_seg ----------------------------------------------------------

namespace {

const char* kDicomPatientName = "Doe^Jane";
const char* kDicomPatientId = "MRN-778899";

struct SynthSeries {
  std::string series_uid, frame_of_reference_uid;
};

// An MR series written with DCMTK: 16x16 pixels, `slices` slices 2 mm apart, a bright block.
SynthSeries write_mr_series(const fs::path& dir, int slices) {
  fs::create_directories(dir);
  char study[100], series[100], fo_r[100];
  dcmGenerateUniqueIdentifier(study, SITE_STUDY_UID_ROOT);
  dcmGenerateUniqueIdentifier(series, SITE_SERIES_UID_ROOT);
  dcmGenerateUniqueIdentifier(fo_r, SITE_UID_ROOT);
  for (int s = 0; s < slices; ++s) {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    char sop[100];
    dcmGenerateUniqueIdentifier(sop, SITE_INSTANCE_UID_ROOT);
    ds->putAndInsertString(DCM_SOPClassUID, UID_MRImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, sop);
    ds->putAndInsertString(DCM_StudyInstanceUID, study);
    ds->putAndInsertString(DCM_SeriesInstanceUID, series);
    ds->putAndInsertString(DCM_FrameOfReferenceUID, fo_r);
    ds->putAndInsertString(DCM_PatientName, kDicomPatientName);
    ds->putAndInsertString(DCM_PatientID, kDicomPatientId);
    ds->putAndInsertString(DCM_PatientBirthDate, "19700101");
    ds->putAndInsertString(DCM_StudyDate, "20210304");
    ds->putAndInsertString(DCM_Modality, "MR");
    ds->putAndInsertString(DCM_SeriesNumber, "5");
    ds->putAndInsertString(DCM_InstanceNumber, std::to_string(s + 1).c_str());
    ds->putAndInsertString(DCM_ImagePositionPatient, ("-8\\-8\\" + std::to_string(2 * s)).c_str());
    ds->putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    ds->putAndInsertString(DCM_PixelSpacing, "1\\1");
    ds->putAndInsertString(DCM_SliceThickness, "2");
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds->putAndInsertUint16(DCM_Rows, 16);
    ds->putAndInsertUint16(DCM_Columns, 16);
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 16);
    ds->putAndInsertUint16(DCM_HighBit, 15);
    ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    std::vector<Uint16> px(256);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) px[y * 16 + x] = (x >= 5 && x < 11 && y >= 4 && y < 12) ? 900 : 100 + x + y;
    ds->putAndInsertUint16Array(DCM_PixelData, px.data(), 256);
    const fs::path f = dir / ("mr" + std::to_string(s) + ".dcm");
    EXPECT_TRUE(ff.saveFile(f.string().c_str(), EXS_LittleEndianExplicit).good()) << f;
  }
  return SynthSeries{series, fo_r};
}

}  // namespace

class MonaiDicomTest : public MonaiTest {
 protected:
  void before_start() override {
    const fs::path models = tmp_ / "models";
    // Untrained: what it predicts does not matter, only that the DICOM SEG carries exactly that.
    model::write_untrained_bundle(models / "tiny-seg", tumorlab::testing::tiny_plans("tiny-seg", "MR", {}), 7);
    auto lab = app::Lab::open_beside_server(data_);
    json reg = app::register_models(*lab, {models});
    ASSERT_EQ(reg["registered"].size(), 1u) << reg.dump();
  }
};

TEST_F(MonaiDicomTest, InferDicomSeg_OnDicomUpload_SegReferencesDeidentifiedSeries_MatchesTheLabel_NiftiCaseIs400) {
  auto c = client();
  auto rita = login("rita", kReviewerPassword);
  // The DICOM series goes in through the MONAI upload, as a .zip.
  const SynthSeries src = write_mr_series(tmp_ / "dicom" / "series", 4);
  io::zip_folder(tmp_ / "dicom" / "series", tmp_ / "dicom" / "series.zip");
  auto [type, body] =
      monai_multipart({{"params", "{}"}}, {{"file", "/tmp/slicer/series.zip", slurp_file(tmp_ / "dicom" / "series.zip")}});
  auto up = c.Put("/datastore/?image=ignored_for_dicom", rita, body, type.c_str());
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  const std::string name = parse_body(up)["image"];
  ASSERT_EQ(name.rfind("PAT-", 0), 0u) << name;  // the pseudonymous name, never the client's
  const std::string pseudonym = name.substr(0, name.find('_'));

  // The label as NIfTI (output=image) and as DICOM SEG, from the same (deterministic) model.
  auto [t2, b2] = monai_multipart({{"params", R"({"label_info": [{"name": "lesion", "idx": 1}]})"}}, {});
  auto nii = c.Post("/infer/tiny-seg?image=" + name + "&output=image", rita, b2, t2.c_str());
  ASSERT_TRUE(nii);
  ASSERT_EQ(nii->status, 200) << nii->body;
  auto r = c.Post("/infer/tiny-seg?image=" + name + "&output=dicom_seg", rita, b2, t2.c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/dicom");
  EXPECT_NE(r->get_header_value("Content-Disposition").find("-seg.dcm"), std::string::npos);
  // No original identifier in the object.
  EXPECT_EQ(r->body.find(kDicomPatientId), std::string::npos);
  EXPECT_EQ(r->body.find("Doe^Jane"), std::string::npos);
  EXPECT_EQ(r->body.find(src.series_uid), std::string::npos);
  const fs::path seg_file = tmp_ / "scratch" / "got-seg.dcm";
  const fs::path nii_file = tmp_ / "scratch" / "got-label.nii.gz";
  std::ofstream(seg_file, std::ios::binary) << r->body;
  std::ofstream(nii_file, std::ios::binary) << nii->body;

  // DCMTK reads it as a segmentation: patient = pseudonym, the de-identified series and frame of
  // reference (the importer's keyed UID mapping), our segment name from label_info.
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(seg_file.string().c_str()).good());
  DcmDataset* ds = ff.getDataset();
  OFString v;
  ds->findAndGetOFString(DCM_SOPClassUID, v);
  EXPECT_EQ(std::string(v.c_str()), UID_SegmentationStorage);
  ds->findAndGetOFString(DCM_PatientID, v);
  EXPECT_EQ(std::string(v.c_str()), pseudonym);
  std::string key_hex = slurp_file(data_ / "deid.key");
  while (!key_hex.empty() && std::isspace(static_cast<unsigned char>(key_hex.back()))) key_hex.pop_back();
  const io::DeidKey key = io::DeidKey::from_hex(key_hex);
  ds->findAndGetOFString(DCM_FrameOfReferenceUID, v);
  EXPECT_EQ(std::string(v.c_str()), io::deidentified_uid(key, src.frame_of_reference_uid));
  const std::string deid_series = io::deidentified_uid(key, src.series_uid);
  EXPECT_EQ(io::dicom_seg_referenced_series(seg_file), deid_series);
  DcmSegmentation* raw = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(seg_file.string().c_str(), raw).good());
  std::unique_ptr<DcmSegmentation> seg(raw);
  ASSERT_EQ(seg->getNumberOfSegments(), 1u);
  OFString seg_label;
  seg->getSegment(1)->getSegmentLabel(seg_label);
  EXPECT_EQ(std::string(seg_label.c_str()), "lesion");
  EXPECT_GE(seg->getNumberOfFrames(), 1u);

  // Read back onto the case's grid, it is the model's label voxel for voxel.
  const LabelMap want = io::read_label(nii_file);
  io::DicomSeriesInfo ref;
  ref.series_instance_uid = deid_series;
  ref.geometry = want.geometry();
  const LabelMap got = io::read_dicom_seg(seg_file, ref);
  ASSERT_EQ(got.voxel_count(), want.voxel_count());
  for (int64_t n = 0; n < want.voxel_count(); ++n)
    ASSERT_EQ(got.voxels()[n], want.voxels()[n] == 1 ? 1 : 0) << "voxel " << n;

  // A case that did not come from DICOM: 400 naming the problem, and no model ran (audited failed).
  auto nifti = c.Post("/infer/tiny-seg?image=case_a&output=dicom_seg", rita, b2, t2.c_str());
  expect_error(nifti, 400, "BadArgument");
  EXPECT_NE(parse_body(nifti)["error"]["message"].get<std::string>().find("not imported from DICOM"), std::string::npos)
      << nifti->body;
  auto admin = login("admin", kAdminPassword);
  json audit = parse_body(c.Get("/api/audit?action=monai.infer&case_id=" + std::to_string(seeded_.case_a), admin));
  ASSERT_FALSE(audit["items"].empty());
  EXPECT_EQ(audit["items"][0]["outcome"], "failed");
  // The upload's scratch folder and the two answers' scratch files are gone.
  EXPECT_EQ(scratch_entries(data_), std::vector<std::string>{});
}

// The same on a real MR series (../shared/data/dicom/mr-brain-20slice, skipped when absent): the
// SEG of a real, de-identified series lines up with its grid and carries exactly the model's label.
TEST_F(MonaiDicomTest, InferDicomSeg_SharedMrSeries_ReadsBackAsTheLabel) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path src = tumorlab::testing::shared_data_dir() / "dicom" / "mr-brain-20slice";
  if (!fs::is_directory(src)) GTEST_SKIP() << "no " << src;
  io::zip_folder(src, tmp_ / "mr.zip");
  auto c = client();
  auto rita = login("rita", kReviewerPassword);
  auto [type, body] = monai_multipart({{"params", "{}"}}, {{"file", "mr.zip", slurp_file(tmp_ / "mr.zip")}});
  auto up = c.Put("/datastore/?image=mr", rita, body, type.c_str());
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  const std::string name = parse_body(up)["image"];
  auto [t2, b2] = monai_multipart({{"params", "{}"}}, {});
  auto nii = c.Post("/infer/tiny-seg?image=" + name + "&output=image", rita, b2, t2.c_str());
  auto seg = c.Post("/infer/tiny-seg?image=" + name + "&output=dicom_seg", rita, b2, t2.c_str());
  ASSERT_TRUE(nii && seg);
  ASSERT_EQ(nii->status, 200) << nii->body;
  ASSERT_EQ(seg->status, 200) << seg->body.substr(0, 300);
  const fs::path seg_file = tmp_ / "scratch" / "mr-seg.dcm";
  const fs::path nii_file = tmp_ / "scratch" / "mr-label.nii.gz";
  std::ofstream(seg_file, std::ios::binary) << seg->body;
  std::ofstream(nii_file, std::ios::binary) << nii->body;
  const LabelMap want = io::read_label(nii_file);
  io::DicomSeriesInfo ref;
  ref.series_instance_uid = io::dicom_seg_referenced_series(seg_file);
  ref.geometry = want.geometry();
  const LabelMap got = io::read_dicom_seg(seg_file, ref);
  ASSERT_EQ(got.voxel_count(), want.voxel_count());
  int64_t differ = 0;
  for (int64_t n = 0; n < want.voxel_count(); ++n) differ += got.voxels()[n] != (want.voxels()[n] == 1 ? 1 : 0);
  EXPECT_EQ(differ, 0) << "of " << want.voxel_count() << " voxels, foreground " << want.count_nonzero();
}
