#include "tumorlab/server/serve.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tumorlab/app/auth.h"
#include "tumorlab/app/importer.h"
#include "tumorlab/app/jobs.h"
#include "tumorlab/app/lab.h"
#include "tumorlab/core/log.h"
#include "tumorlab/server/api_routes.h"

namespace tumorlab::server {

std::string default_web_dir() {
  return TUMORLAB_SOURCE_WEB_DIR;
}

int run_serve(const ServeOptions& options, std::ostream& out) {
  // Before any thread exists, so that only the signal waiter receives SIGINT/SIGTERM.
  block_shutdown_signals();
  app::LabOptions lo;
  lo.data_dir = options.data_dir;
  lo.server_mode = true;
  lo.ensure_admin = true;
  lo.session_ttl_ms = static_cast<std::int64_t>(options.session_ttl_seconds * 1000);
  auto lab = app::Lab::open(lo);
  const auto& opened = lab->opened();
  if (opened.jobs_requeued || opened.jobs_failed)
    log_warn("serve: jobs interrupted by the last stop: " + std::to_string(opened.jobs_requeued) + " re-queued, " +
             std::to_string(opened.jobs_failed) + " failed");

  if (options.register_models) {
    try {
      app::register_models(*lab, app::model_search_roots());
    } catch (const std::exception& e) {
      log_warn(std::string("serve: model registry: ") + e.what());
    }
  }
  if (opened.created && options.demo) {
    try {
      const auto demo = app::seed_demo_cases(*lab);
      out << "tumorlab: new data folder: added " << demo["cases"].size()
          << " synthetic DEMO cases (no patient data; start with --no-demo to skip)\n";
      if (!demo["errors"].empty())
        log_warn("serve: " + std::to_string(demo["errors"].size()) +
                 " demo cases not added, the first: " + demo["errors"][0].value("message", std::string()));
    } catch (const std::exception& e) {
      log_warn(std::string("serve: demo cases not added: ") + e.what());
    }
  }
  app::JobRunnerOptions jro;
  jro.workers = options.job_workers;
  jro.torch_threads = options.job_threads;
  jro.training_workers = options.training_workers;
  app::JobRunner jobs(*lab, jro);

  std::atomic<bool> stopping{false};
  Router router;
  register_api_routes(router, *lab, stopping);
  app::Lab* L = lab.get();
  HttpServer http(options.http, router, [L](const std::string& token) { return resolve_session(*L, token); });
  const int port = http.bind();
  const std::string url = std::string(options.http.tls_cert.empty() ? "http" : "https") + "://" + options.http.host +
                          ":" + std::to_string(port);
  if (opened.admin_created) {
    if (!opened.admin_generated_password.empty())
      out << "tumorlab: created user '" << opened.admin_username << "' with password "
          << opened.admin_generated_password
          << "\ntumorlab: this password is shown only once; change it with `tumorlab user passwd admin`\n";
    else
      out << "tumorlab: created user '" << opened.admin_username
          << "' with the password from TUMORLAB_ADMIN_PASSWORD\n";
  }
  out << "tumorlab: serving " << router.routes().size() << " API routes and " << http.static_file_count()
      << " web files on " << url << " (data in " << lab->data_dir().string() << ")\n";
  out.flush();
  jobs.start();  // before the port file: scripts and tests see a server whose runner has started
  if (!options.port_file.empty()) {
    std::string tmp = options.port_file + ".tmp";
    {
      std::ofstream pf(tmp, std::ios::trunc);
      pf << url << "\n";
      if (!pf) throw Error(ErrorCode::IoFailure, "--port-file: cannot write " + tmp);
    }
    std::filesystem::rename(tmp, options.port_file);
  }
  const int sig = serve_until_signal(http);
  stopping = true;
  if (!jobs.stop()) {
    // A job is still inside one long step (the network); its row stays running and the next
    // start re-queues it. Leave without running destructors under its feet.
    out << "tumorlab: stopped (signal " << sig << "; a running job is re-queued at the next start)\n";
    out.flush();
    std::cerr.flush();
    std::_Exit(0);
  }
  out << "tumorlab: stopped" << (sig ? " (signal " + std::to_string(sig) + ")" : std::string()) << "\n";
  return 0;
}

}  // namespace tumorlab::server
