#pragma once
// `tumorlab serve`: opens the data folder (creating the first admin), registers the API, serves
// HTTP or HTTPS until SIGINT/SIGTERM.

#include <ostream>
#include <string>

#include "tumorlab/server/http_server.h"

namespace tumorlab::server {

struct ServeOptions {
  std::string data_dir = "tumorlab-data";
  ServerOptions http;
  // Written once the socket is bound: "http://127.0.0.1:PORT" (tests read it to find the port).
  std::string port_file;
  // Background AI jobs (pre-segmentation, batch prediction): worker threads (0: none run) and
  // LibTorch threads per job.
  int job_workers = 1;
  int job_threads = 1;
  // Extra worker threads that run only train jobs (so fine-tuning never holds up pre-segmentation).
  int training_workers = 1;
  // Register the model bundles found where `tumorlab predict` looks (app::model_search_roots).
  bool register_models = true;
  // Seed a newly created data folder with the synthetic demo cases (app::seed_demo_cases).
  bool demo = true;
  // Lifetime of a login session in seconds (--session-ttl).
  double session_ttl_seconds = 12 * 3600;
};

// The default static web folder (web/dist of the source tree this binary was built from).
std::string default_web_dir();

// Blocks until a signal stops the server; returns the process exit code. `out` gets the
// listening URL and, on first start, the generated admin password (once).
int run_serve(const ServeOptions& options, std::ostream& out);

}  // namespace tumorlab::server
