// The job runner of the real `tumorlab serve` on 127.0.0.1: the model registry at start-up, AI
// pre-segmentation jobs (a real bundle: an untrained U-Net written by model::write_untrained_bundle,
// found through $TUMORLAB_MODELS_DIR), batch prediction, cancel of a queued and of a running job,
// a job that fails (corrupt model.pt) while the server keeps serving, and jobs left running by a
// stop re-queued and completed by the next start. Data folders are seeded through the real store.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api_test_support.h"
#include "server_process.h"
#include "test_support.h"
#include "tiny_plans.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
using nlohmann::json;
using namespace tumorlab::testing;  // TempDir, ServeProcess, api_test_support.h
namespace fs = std::filesystem;

namespace {

Geometry grid() {
  Geometry g;
  g.size = {40, 32, 3};
  g.spacing_mm = {1.0, 1.0, 2.0};
  g.origin_lps = {-20, -16, 0};
  return g;
}

// A dark background with a bright disc: something for the network to look at.
Volume mr_image() {
  Volume v(grid(), PixelType::Int16);
  auto* d = v.data<int16_t>();
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 32; ++j)
      for (int i = 0; i < 40; ++i) {
        const int di = i - 20, dj = j - 16;
        d[v.linear_index(i, j, k)] = static_cast<int16_t>(di * di + dj * dj < 49 ? 300 : 20 + (i * 7 + j * 3) % 11);
      }
  return v;
}

struct Seed {
  store::Id annotator_id = 0;
  std::map<std::string, store::Id> cases;  // by name
};

// Users and cases: "mr_<n>" (MR, channel T2w) x mr_cases, "ct_1" (CT: no model),
// "flair_1" (MR, channel FLAIR: the corrupt bundle's input).
Seed seed(const fs::path& data, const fs::path& scratch, int mr_cases) {
  store::StoreOptions so;
  so.data_dir = data.string();
  auto st = store::Store::open(so);
  Seed s;
  s.annotator_id = st.create_user("anna", store::Role::Annotator, kAnnotatorPassword).id;
  auto add_image = [&](const std::string& modality, const std::string& channel, int variant) {
    Volume v = mr_image();
    v.data<int16_t>()[0] = static_cast<int16_t>(variant);  // distinct bytes: distinct images
    const fs::path f = scratch / ("image" + std::to_string(variant) + ".nii.gz");
    io::write_image(v, f);
    auto file = st.put_image_bytes(slurp_file(f));
    store::NewImage ni;
    ni.sha256 = file.sha256;
    ni.modality = modality;
    ni.channel_names = {channel};
    ni.size = {40, 32, 3};
    ni.spacing_mm = {1, 1, 2};
    return st.write([&](store::WriteTxn& t) { return t.add_image(ni); }).id;
  };
  const store::Id mr = add_image("MR", "T2w", 1), ct = add_image("CT", "CT", 2), flair = add_image("MR", "FLAIR", 3);
  st.write([&](store::WriteTxn& t) {
    for (int n = 1; n <= mr_cases; ++n) {
      const std::string name = "mr_" + std::to_string(n);
      s.cases[name] = t.add_case({name, mr, std::nullopt}).id;
    }
    s.cases["ct_1"] = t.add_case({"ct_1", ct, std::nullopt}).id;
    s.cases["flair_1"] = t.add_case({"flair_1", flair, std::nullopt}).id;
  });
  return s;
}

// One `tumorlab serve` child with the test's models folder.
class Server : public tumorlab::testing::ServeProcess {
 public:
  Server(const fs::path& data, const fs::path& models, std::vector<std::string> extra = {})
      : ServeProcess(data, kAdminPassword, models, extra) {}
};

bool finished(const json& job) {
  const std::string s = job.value("state", "");
  return s == "succeeded" || s == "failed" || s == "cancelled";
}

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp_ / "data";
    models_ = tmp_ / "models";
    fs::create_directories(tmp_ / "scratch");
    model::write_untrained_bundle(models_ / "tiny-mr", tiny_plans("tiny-mr", "T2w"), 3);
    // A bundle whose weights are not a LibTorch archive: registered (its JSON is fine), fails to load.
    model::write_untrained_bundle(models_ / "broken-flair", tiny_plans("broken-flair", "FLAIR"), 4);
    std::ofstream(models_ / "broken-flair" / "model.pt", std::ios::trunc) << "not a torch archive";
    // Weights still being trained: plans.json only.
    fs::create_directories(models_ / "untrained");
    model::save_plans(tiny_plans("untrained", "PD"), models_ / "untrained" / "plans.json");
  }
  void start(std::vector<std::string> extra = {}) {
    server_ = std::make_unique<Server>(data_, models_, std::move(extra));
    ASSERT_GT(server_->port(), 0);
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(120, 0);
    return c;
  }
  httplib::Headers login(const std::string& user, const std::string& password) {
    auto c = client();
    return login_bearer(c, user, password);
  }
  json post(const std::string& path, const httplib::Headers& h, const json& body, int expect_status) {
    auto c = client();
    auto r = c.Post(path, h, body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, expect_status) << path << ": " << r->body;
    return parse_body(r);
  }
  json get(const std::string& path, const httplib::Headers& h) {
    auto c = client();
    auto r = c.Get(path, h);
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return parse_body(r);
  }
  // Polls until the job ends (bounded, so a hang fails instead of blocking the suite).
  json wait_job(std::int64_t id, const httplib::Headers& h, const std::string& until = "finished") {
    json j;
    for (int i = 0; i < 6000; ++i) {
      j = get("/api/jobs/" + std::to_string(id), h);
      if (until == "finished" ? finished(j) : (j.value("state", "") == until || finished(j))) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << until << ": " << j.dump() << "\n" << server_->log();
    return j;
  }
  // Five validated cases (an nnU-Net dataset imported with its labels by `tumorlab import`), MR with
  // a T2w channel unless asked otherwise.
  void import_tiny_dataset(const std::string& channel = "T2w", const std::string& modality = "MR",
                           const std::string& prefix = "tiny") {
    const fs::path ds = tmp_ / ("Dataset010_" + prefix);
    fs::create_directories(ds / "imagesTr");
    fs::create_directories(ds / "labelsTr");
    for (int n = 0; n < 5; ++n) {
      Volume v(grid(), PixelType::Int16);
      LabelMap l(grid());
      const int ci = 12 + 4 * n, cj = 10 + 3 * n;
      for (int64_t k = 0; k < 3; ++k)
        for (int j = 0; j < 32; ++j)
          for (int i = 0; i < 40; ++i) {
            const bool in = (i - ci) * (i - ci) + (j - cj) * (j - cj) < 25;
            v.data<int16_t>()[v.linear_index(i, j, k)] = static_cast<int16_t>(in ? 300 : 20 + (i * 7 + j * 3 + n) % 11);
            if (in) l.at(i, j, k) = 1;
          }
      io::write_image(v, ds / "imagesTr" / (prefix + "_" + std::to_string(n) + "_0000.nii.gz"));
      io::write_label(l, ds / "labelsTr" / (prefix + "_" + std::to_string(n) + ".nii.gz"));
    }
    std::ofstream(ds / "dataset.json") << R"({"channel_names": {"0": ")" << channel
                                       << R"("}, "labels": {"background": 0, "lesion": 1},
      "numTraining": 5, "file_ending": ".nii.gz"})";
    const std::string cmd = std::string(TUMORLAB_CLI) + " import " + ds.string() + " --data-dir " + data_.string() +
                            " --modality " + modality + " --no-presegment > " + (tmp_ / "import.log").string() +
                            " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp_file(tmp_ / "import.log");
  }
  std::string case_path(const std::string& name, const std::string& rest = "") {
    return "/api/cases/" + std::to_string(seed_.cases.at(name)) + rest;
  }

  TempDir tmp_;
  fs::path data_, models_;
  Seed seed_;
  std::unique_ptr<Server> server_;
};

}  // namespace

TEST_F(JobsTest, Registry_BundlesRegisteredAndActive_UntrainedFolderSkipped) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start();
  auto admin = login("admin", kAdminPassword);
  json models = get("/api/models", admin)["items"];
  std::map<std::string, json> by_name;
  for (const auto& m : models) by_name[m["name"].get<std::string>()] = m;
  ASSERT_TRUE(by_name.count("tiny-mr")) << models.dump();
  EXPECT_TRUE(by_name.count("broken-flair"));
  EXPECT_FALSE(by_name.count("untrained")) << "a folder without model.pt is not a model";
  const json& m = by_name["tiny-mr"];
  EXPECT_TRUE(m["active"].get<bool>());
  EXPECT_EQ(m["metadata"]["modality"], "MR");
  EXPECT_EQ(m["metadata"]["channels"], json::array({"T2w"}));
  EXPECT_EQ(m["metadata"]["dims"], 2);
  EXPECT_EQ(m["metadata"]["labels"]["tumor"], 1);
  EXPECT_NE(server_->log().find("no model.pt"), std::string::npos) << server_->log();
  // A restart registers nothing twice; activation still works.
  server_->stop();
  start();
  admin = login("admin", kAdminPassword);
  EXPECT_EQ(get("/api/models", admin)["items"].size(), models.size());
  const auto id = std::to_string(m["id"].get<std::int64_t>());
  EXPECT_TRUE(post("/api/models/" + id + "/activate", admin, json::object(), 200)["active"].get<bool>());
}

TEST_F(JobsTest, Presegment_Succeeds_AiRevisionOnGrid_UncertaintyDownloadable_CasePresegmented) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start();
  auto anna = login("anna", kAnnotatorPassword);
  json job = post(case_path("mr_1", "/presegment"), anna, json::object(), 202);
  ASSERT_EQ(job["type"], "presegment") << job.dump();
  EXPECT_EQ(job["priority"], 0) << "interactive priority";
  EXPECT_EQ(job["case_id"], seed_.cases["mr_1"]);
  // The progress stream ends with the finished job.
  auto c = client();
  std::string events;
  auto sse = c.Get("/api/jobs/" + std::to_string(job["id"].get<std::int64_t>()) + "/events", anna,
                   [&](const char* data, size_t n) {
                     events.append(data, n);
                     return true;
                   });
  ASSERT_TRUE(sse);
  EXPECT_NE(events.find("event: end"), std::string::npos) << events;
  job = wait_job(job["id"], anna);
  ASSERT_EQ(job["state"], "succeeded") << job.dump() << "\n" << server_->log();
  EXPECT_EQ(job["progress"], 1.0);
  EXPECT_EQ(job["result"]["model"]["name"], "tiny-mr");
  EXPECT_TRUE(job["result"]["case_score"].is_number());

  json revs = get(case_path("mr_1", "/revisions"), anna)["items"];
  ASSERT_EQ(revs.size(), 1u);
  EXPECT_EQ(revs[0]["kind"], "ai");
  EXPECT_EQ(revs[0]["model"]["name"], "tiny-mr");
  EXPECT_EQ(revs[0]["id"], job["result"]["revision_id"]);
  json detail = get(case_path("mr_1"), anna);
  EXPECT_EQ(detail["status"], "presegmented") << detail.dump();
  EXPECT_EQ(detail["ai_revision_id"], revs[0]["id"]);
  EXPECT_TRUE(detail["has_uncertainty"].get<bool>());
  EXPECT_TRUE(detail["uncertainty"].is_number()) << detail.dump();

  // The label and the uncertainty map lie on the image grid.
  auto label =
      c.Get(case_path("mr_1", "/revisions/" + std::to_string(revs[0]["id"].get<std::int64_t>()) + "/label"), anna);
  ASSERT_TRUE(label && label->status == 200);
  std::ofstream(tmp_ / "ai.nii.gz", std::ios::binary) << label->body;
  EXPECT_TRUE(io::read_label(tmp_ / "ai.nii.gz").geometry().same_grid(grid()));
  auto unc = c.Get(case_path("mr_1", "/uncertainty"), anna);
  ASSERT_TRUE(unc);
  ASSERT_EQ(unc->status, 200) << unc->body;
  std::ofstream(tmp_ / "u.nii.gz", std::ios::binary) << unc->body;
  Volume u = io::read_image(tmp_ / "u.nii.gz");
  EXPECT_TRUE(u.geometry().same_grid(grid()));
  EXPECT_EQ(u.channels(), 1);
  EXPECT_EQ(u.pixel_type(), PixelType::Float32);
  const float* uv = u.data<float>();
  for (int64_t n = 0; n < u.voxel_count(); ++n) ASSERT_TRUE(uv[n] >= 0.0f && uv[n] <= 1.0f) << n;

  // Audited with the model as actor; the job's end too.
  auto admin = login("admin", kAdminPassword);
  json audit = get("/api/audit?case_id=" + std::to_string(seed_.cases["mr_1"]), admin)["items"];
  bool saved_by_model = false, finished_row = false;
  for (const auto& a : audit) {
    if (a["action"] == "save" && a["actor"].get<std::string>().rfind("tiny-mr@", 0) == 0) saved_by_model = true;
    if (a["action"] == "job.finish") finished_row = true;
  }
  EXPECT_TRUE(saved_by_model) << audit.dump();
  EXPECT_TRUE(finished_row) << audit.dump();
}

TEST_F(JobsTest, Presegment_NoModelForModality_SucceedsAsSkipped) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start();
  auto anna = login("anna", kAnnotatorPassword);
  json job = wait_job(post(case_path("ct_1", "/presegment"), anna, json::object(), 202)["id"], anna);
  ASSERT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["result"]["skipped"], "no model for modality CT with channels [CT]") << job.dump();
  EXPECT_TRUE(get(case_path("ct_1", "/revisions"), anna)["items"].empty());
  EXPECT_EQ(get(case_path("ct_1"), anna)["status"], "new");
}

TEST_F(JobsTest, CorruptWeights_JobFailsWithMessage_ServerKeepsServing) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start();
  auto anna = login("anna", kAnnotatorPassword);
  json job = wait_job(post(case_path("flair_1", "/presegment"), anna, json::object(), 202)["id"], anna);
  ASSERT_EQ(job["state"], "failed") << job.dump();
  const std::string error = job["error"];
  EXPECT_NE(error.find("model.pt"), std::string::npos) << error;
  EXPECT_TRUE(get(case_path("flair_1", "/revisions"), anna)["items"].empty());
  // Still serving, and the next job runs.
  EXPECT_EQ(get("/api/health", {})["status"], "ok");
  job = wait_job(post(case_path("mr_1", "/presegment"), anna, json::object(), 202)["id"], anna);
  EXPECT_EQ(job["state"], "succeeded") << job.dump();
}

TEST_F(JobsTest, PostJobs_PredictBatch_RolesAndBadInput) {
  seed_ = seed(data_, tmp_ / "scratch", 3);
  start();
  auto anna = login("anna", kAnnotatorPassword);
  auto admin = login("admin", kAdminPassword);
  post("/api/jobs", anna, {{"type", "predict_batch"}, {"cases", "new"}}, 403);
  json e = post("/api/jobs", admin, {{"type", "reboot"}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("type"), std::string::npos);
  e = post("/api/jobs", admin, {{"type", "train"}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("model"), std::string::npos);
  post("/api/jobs", admin, {{"type", "predict_batch"}, {"case_ids", {999999}}}, 404);
  post("/api/jobs", admin, {{"type", "predict_batch"}, {"case_ids", "1"}}, 400);
  json job = post("/api/jobs", admin, {{"type", "predict_batch"}, {"cases", "new"}}, 202);
  EXPECT_EQ(job["priority"], 2);
  EXPECT_EQ(job["params"]["case_ids"].size(), 5u);  // 3 MR + CT + FLAIR, all new
  job = wait_job(job["id"], admin);
  ASSERT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["result"]["segmented"], 3);
  EXPECT_EQ(job["result"]["skipped"], 1);  // CT: no model
  EXPECT_EQ(job["result"]["failed"], 1);   // FLAIR: the corrupt bundle
  for (int n = 1; n <= 3; ++n) EXPECT_EQ(get(case_path("mr_" + std::to_string(n)), admin)["status"], "presegmented");
}

TEST_F(JobsTest, Cancel_QueuedJob_EndsCancelledWithoutRunning) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start({"--job-workers", "0"});  // nothing claims: the job stays queued
  auto anna = login("anna", kAnnotatorPassword);
  json job = post(case_path("mr_1", "/presegment"), anna, json::object(), 202);
  ASSERT_EQ(job["state"], "queued");
  // Asking again returns the same unfinished job.
  EXPECT_EQ(post(case_path("mr_1", "/presegment"), anna, json::object(), 202)["id"], job["id"]);
  const std::string cancel = "/api/jobs/" + std::to_string(job["id"].get<std::int64_t>()) + "/cancel";
  EXPECT_EQ(post(cancel, anna, json::object(), 200)["state"], "cancelled");
  // A runner started now finds nothing to do.
  server_->stop();
  start();
  anna = login("anna", kAnnotatorPassword);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // a poll period: nothing may start
  json after = get("/api/jobs/" + std::to_string(job["id"].get<std::int64_t>()), anna);
  EXPECT_EQ(after["state"], "cancelled");
  EXPECT_EQ(after["attempts"], 0);
  EXPECT_TRUE(get(case_path("mr_1", "/revisions"), anna)["items"].empty());
}

TEST_F(JobsTest, Cancel_RunningBatch_EndsCancelledBetweenCases) {
  constexpr int kCases = 150;
  seed_ = seed(data_, tmp_ / "scratch", kCases);
  start();
  auto rita = login("admin", kAdminPassword);
  json ids = json::array();
  for (int n = 1; n <= kCases; ++n) ids.push_back(seed_.cases["mr_" + std::to_string(n)]);
  json job = post("/api/jobs", rita, {{"type", "predict_batch"}, {"case_ids", ids}}, 202);
  json running = wait_job(job["id"], rita, "running");
  ASSERT_EQ(running["state"], "running") << running.dump();
  const std::string cancel = "/api/jobs/" + std::to_string(job["id"].get<std::int64_t>()) + "/cancel";
  json asked = post(cancel, rita, json::object(), 200);
  EXPECT_TRUE(asked["cancel_requested"].get<bool>());
  job = wait_job(job["id"], rita);
  EXPECT_EQ(job["state"], "cancelled") << job.dump();
  // It stopped between cases: fewer AI revisions than cases.
  json cases = get("/api/cases?status=presegmented&limit=1000", rita);
  EXPECT_LT(cases["total"].get<int>(), kCases);
}

TEST_F(JobsTest, Restart_JobLeftRunning_IsRequeuedAndCompleted) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  // A job a crash left running: claimed in the store, never finished.
  {
    store::StoreOptions so;
    so.data_dir = data_.string();
    auto st = store::Store::open(so);
    store::NewJob nj;
    nj.type = store::JobType::Presegment;
    nj.priority = store::JobPriority::Presegment;
    nj.case_id = seed_.cases["mr_1"];
    const auto id = st.write([&](store::WriteTxn& t) { return t.enqueue_job(nj); }).id;
    auto claimed = st.write([&](store::WriteTxn& t) { return t.claim_next_job(); });
    ASSERT_TRUE(claimed && claimed->id == id);
  }
  start();
  auto anna = login("anna", kAnnotatorPassword);
  json jobs = get("/api/jobs?type=presegment", anna)["items"];
  ASSERT_EQ(jobs.size(), 1u);
  json job = wait_job(jobs[0]["id"], anna);
  EXPECT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["attempts"], 2);
  EXPECT_EQ(get(case_path("mr_1", "/revisions"), anna)["items"].size(), 1u);
}

TEST_F(JobsTest, Sigterm_DuringBatch_JobRequeuedAtNextStart_NoCaseSegmentedTwice) {
  constexpr int kCases = 60;
  seed_ = seed(data_, tmp_ / "scratch", kCases);
  start();
  auto admin = login("admin", kAdminPassword);
  json job = post("/api/jobs", admin, {{"type", "predict_batch"}, {"cases", "new"}}, 202);
  const auto id = job["id"].get<std::int64_t>();
  // Wait until a few cases are done, then stop the server.
  for (int i = 0; i < 2400; ++i) {
    job = get("/api/jobs/" + std::to_string(id), admin);
    if (job.value("progress", 0.0) > 0.05 || finished(job)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(job["state"], "running") << "the batch should still be running: " << job.dump();
  EXPECT_EQ(server_->stop(), 0) << server_->log();
  EXPECT_NE(server_->log().find("re-queued at the next start"), std::string::npos) << server_->log();
  start();
  admin = login("admin", kAdminPassword);
  job = wait_job(id, admin);
  ASSERT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["attempts"], 2);
  EXPECT_EQ(job["result"]["segmented"], kCases);
  // Every MR case has exactly one AI revision.
  for (int n = 1; n <= kCases; ++n) {
    json revs = get(case_path("mr_" + std::to_string(n), "/revisions"), admin)["items"];
    EXPECT_EQ(revs.size(), 1u) << "mr_" << n;
  }
}

// Fine-tuning from the server: validated cases (an nnU-Net dataset imported with its labels) train
// a new version of the registered tiny-mr model, starting from its weights; the new version is
// registered but not active. A model whose channels the validated cases lack fails with the
// channels named; an unknown model is 404.
TEST_F(JobsTest, Train_FineTunesOnValidatedCases_NewVersionRegisteredNotActive) {
  import_tiny_dataset();
  start();
  const auto admin = login("admin", kAdminPassword);
  post("/api/jobs", admin, {{"type", "train"}, {"model", "nope"}}, 404);
  post("/api/jobs", admin, {{"type", "train"}, {"model", "tiny-mr"}, {"time_budget", "soon"}}, 400);

  const json queued =
      post("/api/jobs", admin, {{"type", "train"}, {"model", "tiny-mr"}, {"epochs", 2}, {"iterations", 2}}, 202);
  const json done = wait_job(queued.value("id", 0), admin);
  ASSERT_EQ(done.value("state", ""), "succeeded") << done.dump(2) << "\n" << server_->log();
  const json result = done["result"];
  EXPECT_EQ(result.value("epochs_done", 0), 2) << result.dump();
  // The training curve (the dashboard plots it): one point per epoch from the run's log.
  ASSERT_EQ(result["curve"].size(), 2u) << result.dump();
  EXPECT_EQ(result["curve"][1].value("epoch", 0), 2);
  EXPECT_GT(result["curve"][0].value("train_loss", 0.0), 0.0);
  EXPECT_TRUE(result["curve"][0]["val_dice"].is_number());
  const std::string version = result.value("version", "");
  EXPECT_NE(version.find("-ft"), std::string::npos) << result.dump();
  EXPECT_TRUE(fs::exists(fs::path(result.value("bundle", "")) / "model.pt"));
  int versions = 0;
  const json listed = get("/api/models", admin);
  for (const auto& m : listed["items"]) {
    if (m.value("name", "") != "tiny-mr") continue;
    ++versions;
    if (m.value("version", "") == version) {
      EXPECT_FALSE(m.value("active", true)) << m.dump();
    }
  }
  EXPECT_EQ(versions, 2) << listed.dump();

  // broken-flair is registered, but no validated case has a FLAIR channel.
  const json other = post("/api/jobs", admin, {{"type", "train"}, {"model", "broken-flair"}, {"epochs", 1}}, 202);
  const json failed = wait_job(other.value("id", 0), admin);
  EXPECT_EQ(failed.value("state", ""), "failed");
  EXPECT_NE(failed.value("error", "").find("channels"), std::string::npos) << failed.dump();
}

// Cases whose channel names say nothing ("0000": a NIfTI upload) are trained on by a model of
// their modality with as many channels, under the model's channel names, as pre-segmentation
// chooses; validated cases of another modality are left out.
TEST_F(JobsTest, Train_GenericChannelCasesOfTheModelsModalityAreUsed_OtherModalitiesLeftOut) {
  import_tiny_dataset("0000", "MR", "upl");
  import_tiny_dataset("0000", "CT", "ctx");
  start();
  const auto admin = login("admin", kAdminPassword);
  const json queued =
      post("/api/jobs", admin, {{"type", "train"}, {"model", "tiny-mr"}, {"epochs", 1}, {"iterations", 1}}, 202);
  const json done = wait_job(queued.value("id", 0), admin);
  ASSERT_EQ(done.value("state", ""), "succeeded") << done.dump(2) << "\n" << server_->log();
  EXPECT_EQ(done["result"].value("cases", 0), 5) << "the five MR cases, not the five CT ones: " << done.dump();
  std::ifstream in(data_ / "training" / ("job-" + std::to_string(queued.value("id", 0))) / "dataset" / "dataset.json");
  const json ds = json::parse(in, nullptr, false);
  EXPECT_EQ(ds["channel_names"]["0"], "T2w") << ds.dump();
}

// A long fine-tuning runs on its own lane (--training-workers, default 1): pre-segmentation on the
// one job worker still goes through while it trains, and the train job can be cancelled in the
// middle of an epoch (10000 iterations: the cancel must not wait for the epoch's end).
TEST_F(JobsTest, TrainingLane_PresegmentRunsWhileATrainJobRuns) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  import_tiny_dataset();
  start();
  const auto admin = login("admin", kAdminPassword);
  const json train = post(
      "/api/jobs", admin,
      {{"type", "train"}, {"model", "tiny-mr"}, {"epochs", 1000}, {"iterations", 10000}, {"time_budget", "30m"}}, 202);
  const std::int64_t train_id = train.value("id", 0);
  ASSERT_EQ(wait_job(train_id, admin, "running").value("state", ""), "running");
  const json pre = post(case_path("mr_1", "/presegment"), admin, json::object(), 202);
  const json pre_done = wait_job(pre.value("id", 0), admin);
  EXPECT_EQ(pre_done.value("state", ""), "succeeded") << pre_done.dump();
  EXPECT_EQ(get("/api/jobs/" + std::to_string(train_id), admin).value("state", ""), "running")
      << "the train job should still be training (1000 epochs)";
  post("/api/jobs/" + std::to_string(train_id) + "/cancel", admin, json::object(), 200);
  const json cancelled = wait_job(train_id, admin);
  EXPECT_EQ(cancelled.value("state", ""), "cancelled") << cancelled.dump();
  // Stopped inside the first epoch: the run's log has its header and no epoch row.
  std::ifstream log_csv(data_ / "training" / ("job-" + std::to_string(train_id)) / "run" / "log.csv");
  std::string line;
  int rows = 0;
  while (std::getline(log_csv, line)) rows += line.rfind("epoch,", 0) != 0 && !line.empty();
  EXPECT_EQ(rows, 0) << "the cancel waited for an epoch of 10000 iterations to end";
}

// POST /api/uploads?background=true: the files are kept durably and an import job imports them
// as the uploader; a corrupt file fails the job naming the file and stores nothing; the incoming
// folder is removed either way; a stray incoming folder is removed when the runner starts.
TEST_F(JobsTest, BackgroundUpload_ImportJobImportsAsTheUploader_BadFileFailsNothingStored) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  const fs::path stray = data_ / "incoming" / "0123456789abcdef0123456789abcdef";
  fs::create_directories(stray);
  std::ofstream(stray / "u0.nii.gz") << "left behind";
  start();
  EXPECT_FALSE(fs::exists(stray)) << "a folder no import job refers to is swept at start";
  const auto admin = login("admin", kAdminPassword);
  const auto anna = login("anna", kAnnotatorPassword);
  io::write_image(mr_image(), tmp_ / "upload.nii.gz");
  const std::string bytes = slurp_file(tmp_ / "upload.nii.gz");
  auto c = client();
  const auto cases_before = get("/api/cases", admin).value("total", -1);

  auto r = c.Post("/api/uploads?background=true&filename=upload.nii.gz&modality=MR", anna, bytes,
                  "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << "annotators do not upload";
  r = c.Post("/api/uploads?background=maybe&filename=upload.nii.gz", admin, bytes, "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  r = c.Post("/api/uploads?background=true&filename=empty.nii.gz", admin, "", "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;

  r = c.Post("/api/uploads?background=true&filename=upload.nii.gz&modality=MR", admin, bytes,
             "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json job = parse_body(r)["job"];
  EXPECT_EQ(job.value("type", ""), "import") << job.dump();
  const json done = wait_job(job.value("id", 0), admin);
  ASSERT_EQ(done.value("state", ""), "succeeded") << done.dump(2) << "\n" << server_->log();
  ASSERT_EQ(done["result"]["cases"].size(), 1u) << done.dump();
  const std::int64_t case_id = done["result"]["cases"][0].value("id", 0);
  EXPECT_EQ(get("/api/cases/" + std::to_string(case_id), admin).value("name", ""), "upload");
  EXPECT_EQ(get("/api/cases", admin).value("total", -1), cases_before + 1);
  bool audited = false;
  const json audit = get("/api/audit?action=import&limit=50", admin);
  for (const auto& a : audit["items"])
    audited = audited || (a.value("actor", "") == "admin" && a["case_id"] == case_id);
  EXPECT_TRUE(audited) << "the import is audited as the uploader: " << audit.dump();

  // The same bytes again: stored once, reported as skipped.
  r = c.Post("/api/uploads?background=1&filename=again.nii.gz&modality=MR", admin, bytes, "application/octet-stream");
  ASSERT_TRUE(r && r->status == 202);
  const json again = wait_job(parse_body(r)["job"].value("id", 0), admin);
  EXPECT_EQ(again.value("state", ""), "succeeded") << again.dump();
  EXPECT_EQ(again["result"]["skipped"].size(), 1u) << again.dump();

  // A corrupt file: accepted (202), the job fails naming it, nothing is stored.
  r = c.Post("/api/uploads?background=true&filename=broken.nii.gz", admin, std::string(4000, 'x'),
             "application/octet-stream");
  ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "");
  const json bad = wait_job(parse_body(r)["job"].value("id", 0), admin);
  EXPECT_EQ(bad.value("state", ""), "failed");
  EXPECT_NE(bad.value("error", "").find("broken.nii.gz"), std::string::npos) << bad.dump();
  EXPECT_EQ(get("/api/cases", admin).value("total", -1), cases_before + 1);
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(data_ / "incoming", ec)) << "incoming folders are removed after their job";
}

// POST /api/jobs {"type": "export"}: the validated cases as an nnU-Net dataset built in the
// background; the result names the zip to download. Without validated cases the job fails.
TEST_F(JobsTest, ExportJob_ZipDownloadable_NoValidatedCaseFails_RolesAndBadInput) {
  seed_ = seed(data_, tmp_ / "scratch", 1);
  start();
  const auto admin = login("admin", kAdminPassword);
  const auto anna = login("anna", kAnnotatorPassword);
  post("/api/jobs", anna, {{"type", "export"}}, 403);
  post("/api/jobs", admin, {{"type", "export"}, {"format", "dicom"}}, 400);
  post("/api/jobs", admin, {{"type", "export"}, {"include_demo", "yes"}}, 400);
  const json none = wait_job(post("/api/jobs", admin, {{"type", "export"}}, 202).value("id", 0), admin);
  EXPECT_EQ(none.value("state", ""), "failed");
  EXPECT_NE(none.value("error", "").find("validated"), std::string::npos) << none.dump();
  server_->stop();

  import_tiny_dataset();
  start();
  const auto admin2 = login("admin", kAdminPassword);
  const json job = post("/api/jobs", admin2, {{"type", "export"}, {"name", "Dataset321_Tiny"}}, 202);
  EXPECT_EQ(job.value("type", ""), "export");
  const json done = wait_job(job.value("id", 0), admin2);
  ASSERT_EQ(done.value("state", ""), "succeeded") << done.dump(2) << "\n" << server_->log();
  EXPECT_EQ(done["result"].value("num_training", 0), 5) << done.dump();
  const std::string download = done["result"].value("download", "");
  ASSERT_FALSE(download.empty()) << done.dump();
  auto c = client();
  auto r = c.Get(download, admin2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.substr(0, 2), "PK") << "a zip";
}
