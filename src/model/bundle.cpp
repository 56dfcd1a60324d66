#include "tumorlab/model/bundle.h"

#include <torch/version.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <set>
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
  if (!m.weights.empty() && m.weights != std::vector<std::string>{kBundleWeightsFile}) j["weights"] = m.weights;
  return j;
}

std::vector<std::string> weight_files(const BundleMetadata& metadata) {
  if (metadata.weights.empty()) return {kBundleWeightsFile};
  return metadata.weights;
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
  field("weights", m.weights, false);
  if (j.contains("weights")) {
    if (m.weights.empty()) throw Error(ErrorCode::InvalidDataset, source + ".weights: expected a non-empty array");
    std::set<std::string> seen;
    for (const auto& w : m.weights) {
      const bool plain = !w.empty() && w.find('/') == std::string::npos && w.find('\\') == std::string::npos &&
                         w.front() != '.' && w.size() > 3 && w.compare(w.size() - 3, 3, ".pt") == 0;
      if (!plain)
        throw Error(ErrorCode::InvalidDataset, source + ".weights: \"" + w.substr(0, 80) +
                                                   "\" is not a weight file name (a plain name ending in .pt)");
      if (!seen.insert(w).second)
        throw Error(ErrorCode::InvalidDataset, source + ".weights: \"" + w + "\" is listed twice");
    }
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

std::string weights_dtype(const BundleMetadata& m) {
  if (m.training.is_object() && m.training.contains("weights_dtype") && m.training["weights_dtype"].is_string())
    return m.training["weights_dtype"].get<std::string>();
  return "float32";
}

namespace {

// plans.json as the members must share it: everything but the name and the training section.
json shared_plans(const Plans& plans) {
  json j = to_json(plans);
  j.erase("name");
  j.erase("training");
  return j;
}

}  // namespace

void write_ensemble_bundle(const std::vector<fs::path>& members, const fs::path& output_given,
                           const std::string& version) {
  // "DIR/" names DIR (its filename is empty): the staging folder below goes beside DIR, not in it.
  const fs::path output = output_given.filename().empty() && output_given.has_parent_path()
                              ? output_given.parent_path()
                              : output_given;
  if (members.size() < 2)
    throw Error(ErrorCode::BadArgument, "ensemble: expected two or more member bundles, got " +
                                            std::to_string(members.size()));
  std::error_code ec;
  if (fs::exists(output, ec) && !(fs::is_directory(output, ec) && fs::is_empty(output, ec)))
    throw Error(ErrorCode::BadArgument, output.string() + ": exists and is not an empty folder");
  struct Member {
    fs::path folder;
    BundleMetadata metadata;
    Plans plans;
  };
  std::vector<Member> ms;
  for (const auto& folder : members) {
    Member m{folder, read_bundle_metadata(folder), {}};
    const fs::path plans_path = folder / kBundlePlansFile;
    if (!fs::is_regular_file(plans_path, ec))
      throw Error(ErrorCode::FileNotFound, plans_path.string() + ": missing (the model bundle's plans)");
    m.plans = load_plans(plans_path);
    check_bundle_consistency(m.metadata, m.plans, folder);
    for (const auto& w : weight_files(m.metadata))
      if (!fs::is_regular_file(folder / w, ec))
        throw Error(ErrorCode::FileNotFound, (folder / w).string() + ": missing (the model bundle's weights)");
    ms.push_back(std::move(m));
  }
  const Member& first = ms.front();
  const json want = shared_plans(first.plans);
  for (std::size_t i = 1; i < ms.size(); ++i) {
    const Member& m = ms[i];
    const json got = shared_plans(m.plans);
    if (got != want) {
      std::string what;
      for (const auto& [key, value] : want.items())
        if (!got.contains(key) || got[key] != value) what += (what.empty() ? "" : ", ") + key;
      for (const auto& [key, value] : got.items())
        if (!want.contains(key)) what += (what.empty() ? "" : ", ") + key;
      throw Error(ErrorCode::InvalidDataset, (m.folder / kBundlePlansFile).string() + " differs from " +
                                                 (first.folder / kBundlePlansFile).string() + " in " + what +
                                                 " (ensemble members need the same network, preprocessing, "
                                                 "patch and inference settings)");
    }
    if (m.metadata.channels != first.metadata.channels || m.plans.labels != first.plans.labels)
      throw Error(ErrorCode::InvalidDataset, (m.folder / kBundleMetadataFile).string() + ": channels " +
                                                 join(m.metadata.channels) + " and labels " + join(m.plans.labels) +
                                                 " differ from " + (first.folder / kBundleMetadataFile).string() +
                                                 "'s " + join(first.metadata.channels) + " and " +
                                                 join(first.plans.labels));
    if (weights_dtype(m.metadata) != weights_dtype(first.metadata))
      throw Error(ErrorCode::InvalidDataset, (m.folder / kBundleMetadataFile).string() + ": training.weights_dtype " +
                                                 weights_dtype(m.metadata) + " differs from " +
                                                 weights_dtype(first.metadata) + " in " +
                                                 (first.folder / kBundleMetadataFile).string());
  }

  // Written into a sibling folder and renamed into place at the end, so that a failure half way
  // (disk full, a member unreadable) leaves no partly written bundle that would load as a smaller
  // ensemble. rename(2) replaces an empty folder, which is what an existing `output` must be.
  const fs::path parent = output.has_parent_path() ? output.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw Error(ErrorCode::IoFailure, parent.string() + ": cannot create folder: " + ec.message());
  const fs::path staging =
      parent / ("." + output.filename().string() + ".tmp-" + std::to_string(static_cast<long>(::getpid())));
  fs::remove_all(staging, ec);
  fs::create_directory(staging, ec);
  if (ec) throw Error(ErrorCode::IoFailure, staging.string() + ": cannot create folder: " + ec.message());
  struct RemoveOnFailure {
    const fs::path& dir;
    bool keep = false;
    ~RemoveOnFailure() {
      std::error_code ignored;
      if (!keep) fs::remove_all(dir, ignored);
    }
  } cleanup{staging};
  std::vector<std::string> files;
  json ensemble_of = json::array();
  for (const Member& m : ms) {
    json member{{"name", m.metadata.name}, {"version", m.metadata.version}, {"networks", 0}};
    if (!m.metadata.training.is_null()) member["training"] = m.metadata.training;
    if (!m.metadata.evaluation.is_null()) member["evaluation"] = m.metadata.evaluation;
    for (const auto& w : weight_files(m.metadata)) {
      const std::string name =
          files.empty() ? std::string(kBundleWeightsFile) : "model_" + std::to_string(files.size() + 1) + ".pt";
      fs::copy_file(m.folder / w, staging / name, fs::copy_options::overwrite_existing, ec);
      if (ec)
        throw Error(ErrorCode::IoFailure, (output / name).string() + ": cannot copy " + (m.folder / w).string() +
                                              ": " + ec.message());
      files.push_back(name);
      member["networks"] = member["networks"].get<int>() + 1;
    }
    ensemble_of.push_back(std::move(member));
  }
  Plans plans = first.plans;
  save_plans(plans, staging / kBundlePlansFile);
  BundleMetadata md = make_bundle_metadata(
      plans, version,
      {{"ensemble_of", ensemble_of}, {"networks", files.size()}, {"weights_dtype", weights_dtype(first.metadata)}});
  md.name = first.metadata.name;
  md.weights = files;
  write_bundle_metadata(md, staging);
  fs::rename(staging, output, ec);
  if (ec)
    throw Error(ErrorCode::IoFailure, output.string() + ": cannot move the finished bundle into place: " + ec.message());
  cleanup.keep = true;
}

}  // namespace tumorlab::model
