#pragma once
// nnU-Net v2 raw datasets: dataset.json, imagesTr/<case>_<XXXX><ending>, labelsTr/<case><ending>
// (and optionally imagesTs/). See nnU-Net's documentation/dataset_format.md.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tumorlab::io {

struct NnunetCase {
  std::string id;                                 // "<case>"
  std::vector<std::filesystem::path> channels;    // images in channel order (_0000, _0001, ...)
  std::filesystem::path label;                    // empty when the case has no label
};

struct NnunetDataset {
  std::filesystem::path root;
  std::string name;
  std::string description;
  std::vector<std::string> channel_names;         // index = channel number
  std::map<std::string, int> labels;              // "background" -> 0, ...
  std::string file_ending;                        // ".nii.gz", ".png", ...
  std::vector<NnunetCase> training;               // imagesTr + labelsTr, sorted by id
  std::vector<NnunetCase> test;                   // imagesTs, when present
};

// Reads and checks the dataset layout: dataset.json present and valid, every case has every
// channel, every training case a label, numTraining matches. Errors: FileNotFound,
// InvalidDataset naming the file and what is missing or unexpected.
NnunetDataset read_nnunet_dataset(const std::filesystem::path& root);

// True when the folder looks like an nnU-Net raw dataset (has dataset.json and imagesTr/).
bool is_nnunet_dataset(const std::filesystem::path& root);

// Groups image files of an imagesTr-style folder by case: "<case>_<XXXX><ending>".
// Errors: InvalidDataset when a case misses a channel or names do not follow the pattern.
std::vector<NnunetCase> group_channel_files(const std::filesystem::path& folder, const std::string& file_ending,
                                            int expected_channels);

}  // namespace tumorlab::io
