#pragma once
// Scratch files of requests and jobs in the lab's scratch folder (DIR/tmp, inside the data
// folder so that a rename stays on one disk), and whole-file reads and writes. Errors name files
// by their base name only.

#include <filesystem>
#include <string>

namespace tumorlab::app {

class Lab;

// A path in the lab's scratch folder that no other request or process is given:
// "<what>-<pid>-<n>-<random><ext>". Nothing is created.
std::filesystem::path scratch_path(const Lab& lab, const std::string& what, const std::string& ext = "");

// A scratch file path, removed (if it was created) when this goes out of scope.
class ScratchFile {
 public:
  ScratchFile(const Lab& lab, const std::string& what, const std::string& ext);
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A private scratch folder (owner-only), created now and removed with everything in it when this
// goes out of scope. Errors: IoFailure (cannot create it).
class ScratchDir {
 public:
  ScratchDir(const Lab& lab, const std::string& what);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The whole file as bytes. Errors: IoFailure ("cannot read <name>").
std::string read_file(const std::filesystem::path& p);
// Creates or truncates `p` with `bytes`. Errors: IoFailure ("cannot write <name>").
void write_file(const std::filesystem::path& p, const std::string& bytes);

// An io error's message with every mention of the scratch path `path` (in full or by base name)
// replaced by `display`, the name the caller knows the input by.
std::string rename_in_message(std::string message, const std::filesystem::path& path, const std::string& display);

}  // namespace tumorlab::app
