// Load benchmark of `tumorlab serve`: N concurrent clients (default 32) on 127.0.0.1 against the
// real binary with a fresh data folder, for case listing, image download and revision save.
// Prints requests/s and p50/p99 latency per operation, first with the server idle, then with a
// pre-segmentation job running (a predict_batch over extra cases with an untrained bundle of the
// shipped LGG model's network size: weights do not change the speed), and the ratio of the two.
// Usage:
//   server_bench [--clients 32] [--seconds 5] [--size 256x256x40] [--job-threads 1] [--no-job]
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tumorlab/io/image_io.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/plans.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Stats {
  std::vector<double> ms;
  int errors = 0;
};

struct Figures {
  double rps = 0, p50 = 0, p99 = 0;
};

Figures report(const std::string& name, Stats s, double seconds) {
  std::sort(s.ms.begin(), s.ms.end());
  auto pct = [&](double p) { return s.ms.empty() ? 0.0 : s.ms[static_cast<std::size_t>(p * (s.ms.size() - 1))]; };
  Figures f{s.ms.size() / seconds, pct(0.5), pct(0.99)};
  std::printf("%-28s %8.1f req/s   p50 %7.2f ms   p99 %7.2f ms   (%zu ok, %d errors)\n", name.c_str(), f.rps, f.p50,
              f.p99, s.ms.size(), s.errors);
  std::fflush(stdout);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 32;
  double seconds = 5;
  Size3 size{256, 256, 40};
  int job_threads = 1;
  bool with_job = true;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--no-job") with_job = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--no-job") {
      --i;
      continue;
    }
    if (a == "--job-threads")
      job_threads = std::stoi(argv[i + 1]);
    else if (a == "--clients")
      clients = std::stoi(argv[i + 1]);
    else if (a == "--seconds")
      seconds = std::stod(argv[i + 1]);
    else if (a == "--size")
      std::sscanf(argv[i + 1], "%ldx%ldx%ld", &size[0], &size[1], &size[2]);
  }
  fs::path dir = fs::temp_directory_path() / ("tumorlab-server-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string password = "bench-password-1";

  // Seed: one annotator, one case per client (saves do not conflict), a 256x256x40 int16 image.
  Geometry g;
  g.size = size;
  g.spacing_mm = {0.9, 0.9, 3.0};
  Volume image(g, PixelType::Int16);
  uint32_t x = 1;
  for (int64_t n = 0; n < image.voxel_count(); ++n) {  // noisy, so the file is realistically large
    x = x * 1664525u + 1013904223u;
    image.data<int16_t>()[n] = static_cast<int16_t>(200 + (x >> 22));
  }
  io::write_image(image, dir / "image.nii.gz");
  LabelMap label(g);
  for (int64_t k = size[2] / 4; k < size[2] / 2; ++k)
    for (int64_t j = 60; j < 120; ++j)
      for (int64_t i = 60; i < 120; ++i) label.at(i, j, k) = 1;
  io::write_label(label, dir / "label.nii.gz");
  const std::string label_bytes = slurp(dir / "label.nii.gz");
  // The model for the job: the shipped LGG plans' network on one "T1" channel, untrained.
  constexpr int kJobCases = 200;
  if (with_job) {
    model::Plans plans = model::load_plans(fs::path(TUMORLAB_SOURCE_DIR) / "models" / "lgg-flair-3d" / "plans.json");
    plans.name = "bench-mr";
    plans.channels.resize(1);
    plans.channels[0].name = "T1";
    model::write_untrained_bundle(dir / "models" / "bench-mr", plans, 1);
  }
  std::vector<std::int64_t> cases, job_cases;
  {
    store::StoreOptions so;
    so.data_dir = (dir / "data").string();
    auto st = store::Store::open(so);
    st.create_user("bench", store::Role::Annotator, password);
    auto f = st.put_image_file((dir / "image.nii.gz").string());
    store::NewImage ni;
    ni.sha256 = f.sha256;
    ni.modality = "MR";
    ni.size = {size[0], size[1], size[2]};
    ni.spacing_mm = {0.9, 0.9, 3.0};
    ni.channel_names = {"T1"};
    auto im = st.write([&](store::WriteTxn& t) { return t.add_image(ni); });
    for (int c = 0; c < clients; ++c)
      cases.push_back(st.write([&](store::WriteTxn& t) {
                          return t.add_case({"bench_" + std::to_string(c), im.id, std::nullopt});
                        }).id);
    for (int c = 0; with_job && c < kJobCases; ++c)
      job_cases.push_back(st.write([&](store::WriteTxn& t) {
                              return t.add_case({"job_" + std::to_string(c), im.id, std::nullopt});
                            }).id);
  }

  const fs::path url_file = dir / "url";
  pid_t pid = fork();
  if (pid == 0) {
    setenv("TUMORLAB_ADMIN_PASSWORD", "bench-admin-password", 1);
    setenv("TUMORLAB_MODELS_DIR", (dir / "models").c_str(), 1);
    std::string workers = std::to_string(std::max(8, clients));
    std::string threads = std::to_string(job_threads);
    execl(TUMORLAB_CLI, TUMORLAB_CLI, "--log-level", "warn", "serve", "--data-dir", (dir / "data").c_str(), "--port",
          "0", "--port-file", url_file.c_str(), "--workers", workers.c_str(), "--job-threads", threads.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 1200 && !fs::exists(url_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string url = slurp(url_file);
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  httplib::Client login_client("127.0.0.1", port);
  auto lr = login_client.Post("/api/auth/login", json{{"username", "bench"}, {"password", password}}.dump(),
                              "application/json");
  if (!lr || lr->status != 200) {
    std::cerr << "server_bench: login failed\n";
    kill(pid, SIGTERM);
    return 1;
  }
  const httplib::Headers auth{{"Authorization", "Bearer " + json::parse(lr->body)["token"].get<std::string>()}};
  std::printf(
      "server_bench: %d clients, %.0f s per operation, image %ldx%ldx%ld int16 (%zu KB .nii.gz), label %zu KB\n",
      clients, seconds, size[0], size[1], size[2], fs::file_size(dir / "image.nii.gz") / 1024,
      label_bytes.size() / 1024);

  auto run = [&](const std::string& name, const std::function<bool(httplib::Client&, int)>& op) -> Figures {
    std::vector<Stats> per(clients);
    std::vector<std::thread> threads;
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        httplib::Client cl("127.0.0.1", port);
        cl.set_read_timeout(60, 0);
        cl.set_keep_alive(true);  // as browsers do
        cl.set_tcp_nodelay(true);
        while (Clock::now() < end) {
          auto t0 = Clock::now();
          bool ok = op(cl, c);
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          if (ok)
            per[c].ms.push_back(ms);
          else
            per[c].errors++;
        }
      });
    for (auto& t : threads) t.join();
    Stats all;
    for (auto& s : per) {
      all.ms.insert(all.ms.end(), s.ms.begin(), s.ms.end());
      all.errors += s.errors;
    }
    return report(name, all, seconds);
  };
  struct Op {
    std::string name;
    std::function<bool(httplib::Client&, int)> fn;
  };
  const std::vector<Op> ops{{"case list",
                             [&](httplib::Client& cl, int) {
                               auto r = cl.Get("/api/cases?limit=100&sort=rank", auth);
                               return r && r->status == 200;
                             }},
                            {"image download",
                             [&](httplib::Client& cl, int c) {
                               auto r = cl.Get("/api/cases/" + std::to_string(cases[c]) + "/image", auth);
                               return r && r->status == 200;
                             }},
                            {"revision save", [&](httplib::Client& cl, int c) {
                               auto r = cl.Post("/api/cases/" + std::to_string(cases[c]) + "/revisions", auth,
                                                label_bytes, "application/gzip");
                               return r && r->status == 201;
                             }}};
  std::vector<Figures> idle;
  for (const auto& op : ops) idle.push_back(run(op.name, op.fn));

  if (with_job) {
    // A reviewer starts a batch pre-segmentation of the extra cases; measured while it runs.
    httplib::Client admin("127.0.0.1", port);
    auto ar = admin.Post("/api/auth/login", json{{"username", "admin"}, {"password", "bench-admin-password"}}.dump(),
                         "application/json");
    const httplib::Headers admin_auth{{"Authorization", "Bearer " + json::parse(ar->body)["token"].get<std::string>()}};
    auto jr = admin.Post("/api/jobs", admin_auth, json{{"type", "predict_batch"}, {"case_ids", job_cases}}.dump(),
                         "application/json");
    if (!jr || jr->status != 202) {
      std::cerr << "server_bench: cannot start the job: " << (jr ? jr->body : std::string("no answer")) << "\n";
      kill(pid, SIGTERM);
      return 1;
    }
    const std::string job_path = "/api/jobs/" + std::to_string(json::parse(jr->body)["id"].get<std::int64_t>());
    auto job_state = [&] {
      auto r = admin.Get(job_path, admin_auth);
      return r ? json::parse(r->body) : json();
    };
    for (int i = 0; i < 600 && job_state().value("state", "") != "running"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::printf(
        "-- with a pre-segmentation job running (predict_batch, LGG-sized 3D U-Net, TTA, %d LibTorch "
        "thread(s) per job)\n",
        job_threads);
    std::vector<Figures> busy;
    for (const auto& op : ops) busy.push_back(run(op.name + " (job running)", op.fn));
    json j = job_state();
    std::printf("job: %s, progress %.2f (%s)\n", j.value("state", "?").c_str(), j.value("progress", 0.0),
                j.value("message", "").c_str());
    std::printf("-- ratio with job / idle\n");
    for (std::size_t i = 0; i < ops.size(); ++i)
      std::printf("%-28s req/s x%.2f   p50 x%.2f   p99 x%.2f\n", ops[i].name.c_str(),
                  idle[i].rps > 0 ? busy[i].rps / idle[i].rps : 0.0, idle[i].p50 > 0 ? busy[i].p50 / idle[i].p50 : 0.0,
                  idle[i].p99 > 0 ? busy[i].p99 / idle[i].p99 : 0.0);
    admin.Post(job_path + "/cancel", admin_auth, "{}", "application/json");
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
