#pragma once
// A real `tumorlab serve` child process for the integration tests: its own data folder, port 0
// (the bound URL comes back through --port-file <data>.url), TUMORLAB_ADMIN_PASSWORD and
// TUMORLAB_MODELS_DIR set for it, stdout and stderr in <data>.log (started afresh by each start).
// stop() sends SIGTERM and returns the exit code; kill_hard() sends SIGKILL. Header-only.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace tumorlab::testing {

class ServeProcess {
 public:
  // `models` empty: TUMORLAB_MODELS_DIR is not set.
  // `web_dir` empty: a folder that does not exist (no web UI).
  ServeProcess(const std::filesystem::path& data, const std::string& admin_password,
               const std::filesystem::path& models = {}, const std::vector<std::string>& extra = {},
               const std::filesystem::path& web_dir = {}) {
    url_file_ = data.parent_path() / (data.filename().string() + ".url");
    log_ = data.parent_path() / (data.filename().string() + ".log");
    std::vector<std::string> args{TUMORLAB_CLI,  "--log-level",
                                  "info",        "serve",
                                  "--data-dir",  data.string(),
                                  "--host",      "127.0.0.1",
                                  "--port",      "0",
                                  "--port-file", url_file_.string(),
                                  "--web-dir",   web_dir.empty() ? (data.parent_path() / "no-web").string() : web_dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::filesystem::remove(url_file_);
    pid_ = fork();
    if (pid_ == 0) {
      setenv("TUMORLAB_ADMIN_PASSWORD", admin_password.c_str(), 1);
      if (!models.empty()) setenv("TUMORLAB_MODELS_DIR", models.c_str(), 1);
      FILE* f = freopen(log_.c_str(), "w", stderr);
      (void)f;
      dup2(fileno(stderr), STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 1200 && !std::filesystem::exists(url_file_); ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::ifstream in(url_file_);
    std::getline(in, url_);
    if (url_.empty()) ADD_FAILURE() << "server did not start; log:\n" << slurp_file(log_);
    port_ = url_.empty() ? 0 : std::stoi(url_.substr(url_.rfind(':') + 1));
  }
  ~ServeProcess() { stop(); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int stop() {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }
  // SIGKILL: no chance to finish anything.
  void kill_hard() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // True while the child has not exited (a crash shows here).
  bool alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return false;
    }
    return true;
  }
  int port() const { return port_; }
  const std::string& url() const { return url_; }
  std::string log() const { return slurp_file(log_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string url_;
  std::filesystem::path url_file_, log_;
};

}  // namespace tumorlab::testing
