#pragma once
// Internal to the store module: helpers shared by its .cpp files.

#include <string>
#include <string_view>

#include "tumorlab/core/error.h"
#include "tumorlab/store/sqlite.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store::detail {

inline constexpr const char* kDbFileName = "tumorlab.db";
inline constexpr const char* kImagesDir = "images";
inline constexpr const char* kLabelsDir = "labels";
inline constexpr const char* kFileSuffix = ".nii.gz";

[[noreturn]] void throw_not_found(std::string_view what, Id id);
// Parses `json` as a JSON object and returns its compact canonical text (keys sorted).
// Error(BadArgument) naming `field` when it is not a JSON object.
std::string canonical_json_object(std::string_view json, std::string_view field);
// Refuses (BadArgument) JSON objects whose keys look like patient identifiers.
void check_no_identifiers(const std::string& canonical_json, std::string_view field);
bool is_sha256_hex(std::string_view s);
// DIR/<sub>/<sha256>.nii.gz; BadArgument when sha256 is not 64 lower-case hex digits.
std::string content_path(const std::string& data_dir, const char* sub, std::string_view sha256);
// Size of a file in bytes, or -1 when it does not exist.
std::int64_t file_size_or_minus_one(const std::string& path);

// Writes bytes durably as DIR/<sub>/<sha256>.nii.gz (temp file in the same folder, fsync,
// rename, fsync the folder); reuses an existing file of the same hash and size.
StoredFile write_content_addressed(const std::string& data_dir, const char* sub, std::string_view bytes);
StoredFile copy_content_addressed(const std::string& data_dir, const char* sub, const std::string& source_path);
void ensure_sodium();

}  // namespace tumorlab::store::detail
