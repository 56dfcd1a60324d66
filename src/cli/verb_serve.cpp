// tumorlab serve: the labelling server (REST API + browser UI).
#include <iostream>

#include "tumorlab/app/training.h"
#include "tumorlab/cli/verbs.h"
#include "tumorlab/server/serve.h"

namespace tumorlab::cli {

Run add_serve(CLI::App& app) {
  auto opts = std::make_shared<server::ServeOptions>();
  auto upload_mb = std::make_shared<int>(512);
  opts->http.web_dir = server::default_web_dir();
  app.add_option("--data-dir", opts->data_dir, "Folder with the database, images and labels (created when missing)")
      ->capture_default_str();
  app.add_option("--host", opts->http.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", opts->http.port, "TCP port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--tls-cert", opts->http.tls_cert, "PEM certificate: serve HTTPS (with --tls-key)");
  app.add_option("--tls-key", opts->http.tls_key, "PEM private key for --tls-cert");
  app.add_option("--max-upload-mb", *upload_mb, "Largest request body accepted (MiB); larger gives 413")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--workers", opts->http.workers, "Request threads (an open event stream holds one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--web-dir", opts->http.web_dir, "Static files of the browser UI (built web/dist)")
      ->capture_default_str();
  app.add_option("--job-workers", opts->job_workers,
                 "Worker threads for background jobs (pre-segmentation, batch prediction, import, export); 0: queue "
                 "only (no job runs, training neither)")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_option("--training-workers", opts->training_workers,
                 "Extra worker threads that run only train jobs (0: train jobs share the job workers)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4));
  app.add_option("--job-threads", opts->job_threads,
                 "LibTorch threads per AI job (1 keeps the API responsive on a 2-core machine; 0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  auto session_ttl = std::make_shared<std::string>("12h");
  app.add_option("--session-ttl", *session_ttl, "How long a login session lasts (e.g. 30m, 8h; 1s to 30 days)")
      ->capture_default_str();
  app.add_flag("!--no-demo", opts->demo, "Do not seed a newly created data folder with the synthetic demo cases");
  app.add_option("--port-file", opts->port_file,
                 "Write the listening URL to this file once bound (for scripts and tests)");
  app.footer(
      "First start on an empty --data-dir creates the user 'admin' with $TUMORLAB_ADMIN_PASSWORD, or a generated\n"
      "password printed once. Stops gracefully on SIGINT/SIGTERM. API: /api/openapi.json and docs/api.md.\n");
  return [opts, upload_mb, session_ttl] {
    opts->http.max_upload_bytes = static_cast<std::int64_t>(*upload_mb) << 20;
    opts->session_ttl_seconds = app::parse_duration_seconds(*session_ttl);
    return server::run_serve(*opts, std::cout);
  };
}

}  // namespace tumorlab::cli
