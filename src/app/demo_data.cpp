#include "tumorlab/app/demo_data.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "tumorlab/core/error.h"
#include "tumorlab/imaging/phantom.h"
#include "tumorlab/io/image_io.h"

namespace tumorlab::app {
namespace {

namespace fs = std::filesystem;

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "demo-data: cannot create " + dir.string() + ": " + ec.message());
}

void write_json(const nlohmann::json& j, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) throw Error(ErrorCode::IoFailure, "demo-data: cannot write " + path.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, "demo-data: cannot write " + path.string() + ": " + ec.message());
}

nlohmann::json dataset_json(const std::string& name, const std::string& description, const nlohmann::json& channels,
                            const std::string& ending, int cases, uint64_t seed) {
  nlohmann::json j;
  j["name"] = name;
  j["description"] = description;
  j["synthetic"] = true;
  j["generator"] = "tumorlab demo-data";
  j["seed"] = seed;
  j["channel_names"] = channels;
  j["labels"] = {{"background", 0}, {"tumor", 1}};
  j["numTraining"] = cases;
  j["file_ending"] = ending;
  j["cases"] = nlohmann::json::array();
  return j;
}

}  // namespace

DemoDataResult write_demo_data(const DemoDataRequest& r) {
  if (r.output.empty()) throw Error(ErrorCode::BadArgument, "demo-data: no output folder given");
  if (r.brain_cases < 0 || r.brain_cases > 20 || r.pet_cases < 0 || r.pet_cases > 20)
    throw Error(ErrorCode::BadArgument, "demo-data: case counts must be in 0..20");
  DemoDataResult result;
  if (r.brain_cases > 0) {
    const fs::path dir = r.output / "Dataset901_DEMO_BrainMR";
    make_dirs(dir / "imagesTr");
    make_dirs(dir / "labelsTr");
    nlohmann::json j = dataset_json(
        "DEMO synthetic brain MR",
        "SYNTHETIC demo data made by tumorlab (no patient data): brain MR-like volumes, 256x256xN, FLAIR and T1 "
        "post-contrast, with an irregular FLAIR-bright lesion (label 1). Laid out like Dataset002_LGGFLAIR.",
        {{"0", "FLAIR"}, {"1", "T1 post-contrast"}}, ".nii.gz", r.brain_cases, r.seed);
    for (int c = 0; c < r.brain_cases; ++c) {
      const imaging::Phantom p = imaging::brain_mr_phantom(r.seed + static_cast<uint64_t>(c), r.brain_slices);
      for (int ch = 0; ch < 2; ++ch) {
        const fs::path f = dir / "imagesTr" / (p.name + "_000" + std::to_string(ch) + ".nii.gz");
        io::write_image(p.image.channel(ch), f);
        result.files.push_back(f);
      }
      const fs::path lf = dir / "labelsTr" / (p.name + ".nii.gz");
      io::write_label(p.label, lf);
      result.files.push_back(lf);
      j["cases"].push_back({{"id", p.name}, {"description", p.description}, {"lesion_voxels", p.label.count(1)}});
    }
    write_json(j, dir / "dataset.json");
    result.files.push_back(dir / "dataset.json");
    result.datasets.push_back(dir);
  }
  if (r.pet_cases > 0) {
    const fs::path dir = r.output / "Dataset902_DEMO_PetMip";
    make_dirs(dir / "imagesTr");
    make_dirs(dir / "labelsTr");
    nlohmann::json j = dataset_json(
        "DEMO synthetic PET MIP",
        "SYNTHETIC demo data made by tumorlab (no patient data): whole-body PET maximum-intensity projections, "
        "8-bit, dark = high uptake, with tumour blobs (label 1). Laid out like Dataset001_MIPPET.",
        {{"0", "PET-MIP"}}, ".png", r.pet_cases, r.seed);
    for (int c = 0; c < r.pet_cases; ++c) {
      const imaging::Phantom p = imaging::pet_mip_phantom(r.seed + static_cast<uint64_t>(c), r.pet_height);
      const fs::path f = dir / "imagesTr" / (p.name + "_0000.png");
      io::write_image(p.image, f);
      result.files.push_back(f);
      const fs::path lf = dir / "labelsTr" / (p.name + ".png");
      io::write_label(p.label, lf);
      result.files.push_back(lf);
      j["cases"].push_back({{"id", p.name}, {"description", p.description}, {"lesion_pixels", p.label.count(1)}});
    }
    write_json(j, dir / "dataset.json");
    result.files.push_back(dir / "dataset.json");
    result.datasets.push_back(dir);
  }
  return result;
}

}  // namespace tumorlab::app
