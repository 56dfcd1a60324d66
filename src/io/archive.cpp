#include "tumorlab/io/archive.h"

#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>

#include "tumorlab/core/error.h"

namespace tumorlab::io {
namespace fs = std::filesystem;

bool is_zip_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char b[4] = {};
  in.read(b, 4);
  return in.gcount() == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

namespace {

struct ZipCloser {
  zip_t* z = nullptr;
  ~ZipCloser() {
    if (z) zip_discard(z);
  }
};

// Entry name -> safe relative path, or empty when the entry is to be skipped.
fs::path safe_relative(const std::string& name) {
  if (name.empty() || name.back() == '/' || name.front() == '/' || name.find('\\') != std::string::npos ||
      name.find('\0') != std::string::npos)
    return {};
  fs::path out;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string part = name.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    if (part == "." || part == ".." || part[0] == '.' || part == "__MACOSX") return {};
    for (char& ch : part)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '_')) ch = '_';
    if (part.size() > 200) part = part.substr(part.size() - 200);
    out /= part;
    if (end == name.size()) break;
  }
  return out;
}

}  // namespace

std::vector<fs::path> extract_zip(const fs::path& zip, const fs::path& dest, const std::string& display_name,
                                  std::uint64_t max_bytes, std::size_t max_entries) {
  int err = 0;
  ZipCloser za{zip_open(zip.string().c_str(), ZIP_RDONLY, &err)};
  if (!za.z)
    throw Error(ErrorCode::CorruptFile,
                display_name + ": not a readable zip archive (libzip error " + std::to_string(err) + ")");
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot create a folder to extract " + display_name + ": " + ec.message());
  std::vector<fs::path> written_files;
  std::uint64_t written = 0;
  const zip_int64_t n = zip_get_num_entries(za.z, 0);
  std::vector<char> chunk(1 << 16);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za.z, static_cast<zip_uint64_t>(i), 0, &st) != 0 || !st.name) continue;
    const std::string name = st.name;
    fs::path rel = safe_relative(name);
    if (rel.empty()) continue;
    if (written_files.size() >= max_entries)
      throw Error(ErrorCode::TooLarge, display_name + ": more than " + std::to_string(max_entries) + " files");
    fs::path out_path = dest / rel;
    // Two entries that clash once sanitised ("a b" and "a_b", or a file "x" and a folder "x/")
    // are the archive's fault: the later one is renamed, or the archive refused (CorruptFile).
    if (fs::exists(fs::symlink_status(out_path, ec)))
      out_path = out_path.parent_path() / (std::to_string(i) + "_" + rel.filename().string());
    const auto clash = [&] {
      return Error(ErrorCode::CorruptFile,
                   display_name + ": entry '" + rel.generic_string() + "' clashes with another entry of the same name");
    };
    if (fs::exists(fs::symlink_status(out_path, ec))) throw clash();
    for (fs::path p = out_path.parent_path(); p != dest && p.has_relative_path(); p = p.parent_path()) {
      const auto st = fs::symlink_status(p, ec);
      if (fs::exists(st) && !fs::is_directory(st)) throw clash();
    }
    ec.clear();
    fs::create_directories(out_path.parent_path(), ec);
    if (ec)
      throw Error(ErrorCode::IoFailure, "cannot create a folder to extract " + display_name + ": " + ec.message());
    zip_file_t* zf = zip_fopen_index(za.z, static_cast<zip_uint64_t>(i), 0);
    if (!zf) throw Error(ErrorCode::CorruptFile, display_name + ": cannot open entry '" + rel.generic_string() + "'");
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    zip_int64_t got;
    bool too_large = false;
    while ((got = zip_fread(zf, chunk.data(), chunk.size())) > 0) {
      written += static_cast<std::uint64_t>(got);
      if (written > max_bytes) {
        too_large = true;
        break;
      }
      out.write(chunk.data(), got);
    }
    zip_fclose(zf);
    if (too_large)
      throw Error(ErrorCode::TooLarge,
                  display_name + ": uncompressed contents exceed " + std::to_string(max_bytes >> 20) + " MiB");
    if (got < 0)
      throw Error(ErrorCode::CorruptFile, display_name + ": entry '" + rel.generic_string() + "' is corrupt");
    out.close();
    if (!out) throw Error(ErrorCode::IoFailure, "cannot write an entry extracted from " + display_name);
    written_files.push_back(out_path);
  }
  return written_files;
}

void zip_folder(const fs::path& folder, const fs::path& zip_path) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error(ErrorCode::FileNotFound, "no folder to zip: " + folder.string());
  const fs::path tmp = zip_path.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove(tmp, ec);
  int err = 0;
  zip_t* za = zip_open(tmp.string().c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!za)
    throw Error(ErrorCode::IoFailure,
                "cannot create " + zip_path.string() + " (libzip error " + std::to_string(err) + ")");
  ZipCloser closer{za};
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(folder, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) files.push_back(it->path());
  if (ec) throw Error(ErrorCode::IoFailure, "cannot list " + folder.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  const fs::path base = folder.parent_path();
  for (const auto& f : files) {
    const std::string entry = fs::relative(f, base).generic_string();
    zip_source_t* src = zip_source_file(za, f.string().c_str(), 0, -1);
    if (!src) throw Error(ErrorCode::IoFailure, "cannot add " + f.string() + " to " + zip_path.string());
    zip_int64_t idx = zip_file_add(za, entry.c_str(), src, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    if (idx < 0) {
      zip_source_free(src);
      throw Error(ErrorCode::IoFailure, "cannot add " + entry + " to " + zip_path.string());
    }
    std::string ext = f.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".gz" || ext == ".png" || ext == ".zip")
      zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
  }
  closer.z = nullptr;
  if (zip_close(za) != 0) {
    std::string msg = zip_strerror(za);
    zip_discard(za);
    fs::remove(tmp, ec);
    throw Error(ErrorCode::IoFailure, "cannot write " + zip_path.string() + ": " + msg);
  }
  fs::rename(tmp, zip_path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "cannot rename the zip into " + zip_path.string() + ": " + ec.message());
}

}  // namespace tumorlab::io
