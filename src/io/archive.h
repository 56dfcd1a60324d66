#pragma once
// Zip archives (libzip) for import and export: uploads of a folder as one .zip, and the
// nnU-Net dataset export. Entry names are never trusted.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tumorlab::io {

// True when the file starts with the zip local-header magic ("PK\3\4").
bool is_zip_file(const std::filesystem::path& path);

// Extracts `zip` into `dest` (created when missing), keeping the folder structure. Each path
// component of an entry is sanitised ([A-Za-z0-9._-], others become '_'); entries with an
// absolute path, "..", or hidden components (".x", __MACOSX) are skipped, so nothing is written
// outside `dest` (every entry becomes a regular file; a name already taken gets "<index>_"). At most `max_entries`
// files and `max_bytes` uncompressed bytes (Error TooLarge). Errors: CorruptFile naming `display_name` (not a zip,
// corrupt entry), IoFailure. Returns the files written.
std::vector<std::filesystem::path> extract_zip(const std::filesystem::path& zip, const std::filesystem::path& dest,
                                               const std::string& display_name, std::uint64_t max_bytes,
                                               std::size_t max_entries = 100000);

// Writes every regular file under `folder` into a new zip `zip_path` (entries relative to
// `folder`'s parent, so the archive holds the folder itself; stored uncompressed when the file is
// already compressed: .gz, .png, .zip). Written to a temp file and renamed. Errors: IoFailure.
void zip_folder(const std::filesystem::path& folder, const std::filesystem::path& zip_path);

}  // namespace tumorlab::io
