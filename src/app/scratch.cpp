#include "tumorlab/app/scratch.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "tumorlab/app/lab.h"
#include "tumorlab/core/error.h"
#include "tumorlab/store/store.h"

namespace tumorlab::app {
namespace fs = std::filesystem;

fs::path scratch_path(const Lab& lab, const std::string& what, const std::string& ext) {
  static std::atomic<std::uint64_t> counter{0};
  return lab.scratch_dir() / (what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" +
                              store::random_token().substr(0, 8) + ext);
}

ScratchFile::ScratchFile(const Lab& lab, const std::string& what, const std::string& ext)
    : path_(scratch_path(lab, what, ext)) {}

ScratchFile::~ScratchFile() {
  std::error_code ec;
  fs::remove(path_, ec);
}

ScratchDir::ScratchDir(const Lab& lab, const std::string& what) : path_(scratch_path(lab, what)) {
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec)
    throw Error(ErrorCode::IoFailure,
                "cannot create scratch folder " + path_.filename().string() + ": " + ec.message());
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::replace, ec);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::IoFailure, "cannot read " + p.filename().string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::IoFailure, "cannot read " + p.filename().string());
  return ss.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error(ErrorCode::IoFailure, "cannot write " + p.filename().string());
}

std::string rename_in_message(std::string message, const fs::path& path, const std::string& display) {
  for (const std::string& name : {path.string(), path.filename().string()}) {
    if (name.empty()) continue;
    for (std::size_t pos = 0; (pos = message.find(name, pos)) != std::string::npos; pos += display.size())
      message.replace(pos, name.size(), display);
  }
  return message;
}

}  // namespace tumorlab::app
