// Runs the real `tumorlab` binary (TUMORLAB_CLI) as a user would, for the CLI integration tests.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "test_support.h"

namespace tumorlab::testing::cli {

struct Result {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Single-quoted for /bin/sh.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `tumorlab ARGS` with `input` on stdin, in a new session (no controlling terminal, so verbs
// that would prompt must read stdin or fail with a hint).
inline Result run(const std::string& args, const std::string& input = "") {
  TempDir tmp;
  std::ofstream(tmp / "in") << input;
  const std::string cmd = "setsid " + std::string(TUMORLAB_CLI) + " " + args + " <" + quote((tmp / "in").string()) +
                          " 2>" + quote((tmp / "err").string());
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(tmp / "err");
  r.err.assign((std::istreambuf_iterator<char>(e)), {});
  return r;
}

}  // namespace tumorlab::testing::cli
