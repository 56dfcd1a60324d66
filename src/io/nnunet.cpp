#include "tumorlab/io/nnunet.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tumorlab/core/error.h"

namespace fs = std::filesystem;

namespace tumorlab::io {
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Error invalid(const fs::path& file, const std::string& what) {
  return Error(ErrorCode::InvalidDataset, file.string() + ": " + what);
}

}  // namespace

bool is_nnunet_dataset(const fs::path& root) {
  std::error_code ec;
  return fs::is_regular_file(root / "dataset.json", ec) && fs::is_directory(root / "imagesTr", ec);
}

std::vector<NnunetCase> group_channel_files(const fs::path& folder, const std::string& ending, int expected) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error(ErrorCode::FileNotFound, folder.string() + ": no such folder");
  std::map<std::string, std::map<int, fs::path>> cases;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (!has_suffix(name, ending)) {
      throw invalid(entry.path(), "expected files named <case>_<XXXX>" + ending);
    }
    const std::string stem = name.substr(0, name.size() - ending.size());
    const auto us = stem.rfind('_');
    const std::string digits = us == std::string::npos ? "" : stem.substr(us + 1);
    if (us == std::string::npos || us == 0 || digits.size() != 4 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      throw invalid(entry.path(), "name does not end in a 4-digit channel number (<case>_0000" + ending + ")");
    }
    cases[stem.substr(0, us)][std::stoi(digits)] = entry.path();
  }
  std::vector<NnunetCase> out;
  for (auto& [id, channels] : cases) {
    NnunetCase c;
    c.id = id;
    const int count = expected > 0 ? expected : static_cast<int>(channels.rbegin()->first) + 1;
    for (int ch = 0; ch < count; ++ch) {
      auto it = channels.find(ch);
      if (it == channels.end()) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%04d", ch);
        throw invalid(folder, "case '" + id + "' has no channel " + std::to_string(ch) + " (expected " + id + "_" +
                                  buf + ending + ")");
      }
      c.channels.push_back(it->second);
    }
    if (static_cast<int>(channels.size()) != count) {
      throw invalid(folder, "case '" + id + "' has " + std::to_string(channels.size()) + " channel files, expected " +
                                std::to_string(count));
    }
    out.push_back(std::move(c));
  }
  return out;
}

NnunetDataset read_nnunet_dataset(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error(ErrorCode::FileNotFound, root.string() + ": no such folder");
  const fs::path json_path = root / "dataset.json";
  if (!fs::is_regular_file(json_path, ec)) {
    throw invalid(root, "no dataset.json (an nnU-Net v2 raw dataset has dataset.json, imagesTr/ and labelsTr/)");
  }
  nlohmann::json j;
  try {
    std::ifstream in(json_path);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw invalid(json_path, std::string("not valid JSON: ") + e.what());
  }
  NnunetDataset d;
  d.root = root;
  try {
    d.name = j.value("name", root.filename().string());
    d.description = j.value("description", "");
    const auto& names = j.contains("channel_names") ? j.at("channel_names") : j.at("modality");
    if (!names.is_object() || names.empty()) throw invalid(json_path, "channel_names must be a non-empty object");
    d.channel_names.resize(names.size());
    for (const auto& [key, value] : names.items()) {
      std::size_t pos = 0;
      int idx = -1;
      try {
        idx = std::stoi(key, &pos);
      } catch (const std::exception&) {
      }
      if (idx < 0 || pos != key.size() || idx >= static_cast<int>(names.size())) {
        throw invalid(json_path, "channel_names key '" + key + "' is not a channel number 0.." +
                                     std::to_string(names.size() - 1));
      }
      d.channel_names[idx] = value.get<std::string>();
    }
    for (const auto& [key, value] : j.at("labels").items()) {
      if (!value.is_number_integer()) {
        throw invalid(json_path, "label '" + key + "' must map to an integer (region-based labels are not supported)");
      }
      d.labels[key] = value.get<int>();
    }
    d.file_ending = j.at("file_ending").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw invalid(json_path, std::string("missing or wrong field: ") + e.what());
  }
  const int nch = static_cast<int>(d.channel_names.size());
  d.training = group_channel_files(root / "imagesTr", d.file_ending, nch);
  const fs::path labels = root / "labelsTr";
  std::set<std::string> label_files;
  if (fs::is_directory(labels, ec)) {
    for (const auto& e : fs::directory_iterator(labels)) {
      const std::string n = e.path().filename().string();
      if (e.is_regular_file() && !n.empty() && n[0] != '.') label_files.insert(n);
    }
  }
  for (auto& c : d.training) {
    const std::string name = c.id + d.file_ending;
    if (!label_files.count(name)) throw invalid(labels, "training case '" + c.id + "' has no label " + name);
    c.label = labels / name;
    label_files.erase(name);
  }
  if (!label_files.empty()) {
    throw invalid(labels, "label " + *label_files.begin() + " has no image in imagesTr");
  }
  if (j.contains("numTraining") && j["numTraining"].is_number_integer() &&
      j["numTraining"].get<int>() != static_cast<int>(d.training.size())) {
    throw invalid(json_path, "numTraining is " + std::to_string(j["numTraining"].get<int>()) + " but imagesTr holds " +
                                 std::to_string(d.training.size()) + " cases");
  }
  if (fs::is_directory(root / "imagesTs", ec)) d.test = group_channel_files(root / "imagesTs", d.file_ending, nch);
  return d;
}

}  // namespace tumorlab::io
