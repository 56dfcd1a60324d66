#include "tumorlab/model/bundle.h"

#include <torch/version.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "tumorlab/core/error.h"

#ifndef TUMORLAB_VERSION
#define TUMORLAB_VERSION "unknown"
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace tumorlab::model {
namespace {

std::string now_utc_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string join(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", \"" : "\"") + v[i] + "\"";
  return out + "]";
}

std::string join(const std::map<std::string, int>& m) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : m) {
    out += (first ? "\"" : ", \"") + k + "\": " + std::to_string(v);
    first = false;
  }
  return out + "}";
}

}  // namespace

std::string tumorlab_version() { return TUMORLAB_VERSION; }
std::string torch_version() { return TORCH_VERSION; }

BundleMetadata make_bundle_metadata(const Plans& plans, const std::string& version, const json& training) {
  BundleMetadata m;
  m.name = plans.name;
  m.version = version;
  m.tumorlab_version = tumorlab_version();
  m.torch_version = torch_version();
  for (const auto& c : plans.channels) m.channels.push_back(c.name);
  m.labels = plans.labels;
  m.created = now_utc_iso();
  m.training = training.is_null() ? json::object() : training;
  return m;
}

json to_json(const BundleMetadata& m) {
  json j{{"format", m.format},
          {"format_version", m.format_version},
          {"name", m.name},
          {"version", m.version},
          {"tumorlab_version", m.tumorlab_version},
          {"torch_version", m.torch_version},
          {"channels", m.channels},
          {"labels", m.labels},
          {"created", m.created},
          {"training", m.training}};
  if (!m.evaluation.is_null()) j["evaluation"] = m.evaluation;
  return j;
}

BundleMetadata bundle_metadata_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(ErrorCode::InvalidDataset, source + ": expected a JSON object");
  BundleMetadata m;
  auto field = [&](const char* key, auto& out, bool required) {
    if (!j.contains(key)) {
      if (required) throw Error(ErrorCode::InvalidDataset, source + ": field '" + key + "' is missing");
      return;
    }
    try {
      out = j.at(key).get<std::decay_t<decltype(out)>>();
    } catch (const json::exception& e) {
      throw Error(ErrorCode::InvalidDataset, source + "." + key + ": " + e.what());
    }
  };
  field("format", m.format, true);
  if (m.format != kBundleFormat) {
    throw Error(ErrorCode::InvalidDataset, source + ".format: expected \"" + std::string(kBundleFormat) +
                                               "\", found \"" + m.format + "\" (not a tumorlab model bundle)");
  }
  field("format_version", m.format_version, true);
  if (m.format_version != kBundleFormatVersion) {
    throw Error(ErrorCode::InvalidDataset,
                source + ".format_version: this tumorlab reads version " + std::to_string(kBundleFormatVersion) +
                    ", found " + std::to_string(m.format_version) +
                    (m.format_version > kBundleFormatVersion ? " (made by a newer tumorlab; upgrade)" : ""));
  }
  field("name", m.name, false);
  field("version", m.version, false);
  field("tumorlab_version", m.tumorlab_version, false);
  field("torch_version", m.torch_version, false);
  field("channels", m.channels, true);
  if (m.channels.empty()) throw Error(ErrorCode::InvalidDataset, source + ".channels: expected a non-empty array");
  field("labels", m.labels, false);
  field("created", m.created, false);
  if (j.contains("training")) m.training = j["training"];
  if (j.contains("evaluation")) {
    if (!j["evaluation"].is_object() && !j["evaluation"].is_null())
      throw Error(ErrorCode::InvalidDataset, source + ".evaluation: expected an object (held-out figures) or null");
    m.evaluation = j["evaluation"];
  }
  return m;
}

void write_bundle_metadata(const BundleMetadata& metadata, const fs::path& bundle_folder) {
  std::error_code ec;
  fs::create_directories(bundle_folder, ec);
  if (ec) throw Error(ErrorCode::IoFailure, bundle_folder.string() + ": cannot create folder: " + ec.message());
  const fs::path path = bundle_folder / kBundleMetadataFile;
  const fs::path tmp = bundle_folder / (std::string(kBundleMetadataFile) + ".tmp" + std::to_string(::getpid()));
  {
    std::ofstream out(tmp);
    out << to_json(metadata).dump(2) << "\n";
    if (!out) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot write");
  }
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, path.string() + ": cannot write: " + ec.message());
}

BundleMetadata read_bundle_metadata(const fs::path& bundle_folder) {
  const fs::path path = bundle_folder / kBundleMetadataFile;
  std::error_code ec;
  if (!fs::is_directory(bundle_folder, ec)) {
    throw Error(ErrorCode::FileNotFound, bundle_folder.string() + ": no such model bundle folder");
  }
  if (!fs::is_regular_file(path, ec)) {
    throw Error(ErrorCode::FileNotFound,
                path.string() + ": missing (a model bundle holds bundle.json, plans.json and model.pt)");
  }
  std::ifstream in(path);
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": not valid JSON: " + e.what());
  }
  return bundle_metadata_from_json(j, path.string());
}

void check_bundle_consistency(const BundleMetadata& metadata, const Plans& plans, const fs::path& bundle_folder) {
  std::vector<std::string> plan_channels;
  for (const auto& c : plans.channels) plan_channels.push_back(c.name);
  if (metadata.channels != plan_channels) {
    throw Error(ErrorCode::InvalidDataset, (bundle_folder / kBundleMetadataFile).string() + ".channels " +
                                               join(metadata.channels) + " differ from " +
                                               (bundle_folder / kBundlePlansFile).string() + " channels " +
                                               join(plan_channels));
  }
  if (!metadata.labels.empty() && metadata.labels != plans.labels) {
    throw Error(ErrorCode::InvalidDataset, (bundle_folder / kBundleMetadataFile).string() + ".labels " +
                                               join(metadata.labels) + " differ from " +
                                               (bundle_folder / kBundlePlansFile).string() + " labels " +
                                               join(plans.labels));
  }
}

}  // namespace tumorlab::model
