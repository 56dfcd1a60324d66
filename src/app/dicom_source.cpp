#include "tumorlab/app/dicom_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tumorlab/app/scratch.h"
#include "tumorlab/core/error.h"

namespace tumorlab::app {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Only a SHA-256 in hex names a file here (no path is ever built from anything else).
fs::path source_file(Lab& lab, const std::string& sha256) {
  bool hex = sha256.size() == 64;
  for (char c : sha256) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) throw Error(ErrorCode::Internal, "DICOM source: image hash is not 64 lower-case hex digits");
  return lab.data_dir() / "dicom" / (sha256 + ".json");
}

void fail(const std::string& what, int err) {
  throw Error(ErrorCode::IoFailure, "DICOM source: " + what + ": " + std::strerror(err));
}

}  // namespace

void save_dicom_source(Lab& lab, const std::string& image_sha256, const io::DicomSourceRef& s) {
  const fs::path file = source_file(lab, image_sha256);
  const fs::path dir = file.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "DICOM source: cannot create folder dicom/: " + ec.message());
  json slices = json::array();
  for (const auto& sl : s.slices)
    slices.push_back({{"sop_class_uid", sl.sop_class_uid},
                      {"sop_instance_uid", sl.sop_instance_uid},
                      {"frame_number", sl.frame_number}});
  const json j{{"format", "tumorlab-dicom-source-1"},
               {"patient_id", s.patient_id},
               {"patient_name", s.patient_name},
               {"study_instance_uid", s.study_instance_uid},
               {"study_id", s.study_id},
               {"study_date", s.study_date},
               {"study_time", s.study_time},
               {"accession_number", s.accession_number},
               {"series_instance_uid", s.series_instance_uid},
               {"frame_of_reference_uid", s.frame_of_reference_uid},
               {"modality", s.modality},
               {"slices", slices}};
  const std::string text = j.dump(1) + "\n";
  static std::atomic<unsigned> counter{0};
  const fs::path tmp = dir / (image_sha256 + ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot create " + tmp.filename().string(), errno);
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    fs::remove(tmp, ec);
    fail("cannot write " + file.filename().string(), err);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int e = errno;
    fs::remove(tmp, ec);
    fail("cannot rename to " + file.filename().string(), e);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::optional<io::DicomSourceRef> load_dicom_source(Lab& lab, const std::string& image_sha256) {
  const fs::path file = source_file(lab, image_sha256);
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  const std::string text = read_file(file);
  try {
    const json j = json::parse(text);
    io::DicomSourceRef s;
    s.patient_id = j.at("patient_id").get<std::string>();
    s.patient_name = j.at("patient_name").get<std::string>();
    s.study_instance_uid = j.at("study_instance_uid").get<std::string>();
    s.study_id = j.value("study_id", "");
    s.study_date = j.value("study_date", "");
    s.study_time = j.value("study_time", "");
    s.accession_number = j.value("accession_number", "");
    s.series_instance_uid = j.at("series_instance_uid").get<std::string>();
    s.frame_of_reference_uid = j.value("frame_of_reference_uid", "");
    s.modality = j.value("modality", "");
    for (const auto& sl : j.at("slices"))
      s.slices.push_back(io::DicomSourceSlice{sl.at("sop_class_uid").get<std::string>(),
                                              sl.at("sop_instance_uid").get<std::string>(),
                                              sl.value("frame_number", 0)});
    return s;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::IoFailure,
                "DICOM source: dicom/" + file.filename().string() + " is not valid: " + std::string(e.what()));
  }
}

}  // namespace tumorlab::app
