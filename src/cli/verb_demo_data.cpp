#include <iostream>
#include <memory>

#include "tumorlab/app/demo_data.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_demo_data(CLI::App& app) {
  auto r = std::make_shared<app::DemoDataRequest>();
  auto output = std::make_shared<std::string>();
  app.add_option("OUTDIR", *output, "Folder to write the demo datasets into (created when missing)")->required();
  app.add_option("--seed", r->seed, "Seed; case c of each dataset uses seed + c")->capture_default_str();
  app.add_option("--brain-cases", r->brain_cases, "Synthetic brain MR cases (0..20)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  app.add_option("--pet-cases", r->pet_cases, "Synthetic PET MIP cases (0..20)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  app.add_option("--brain-slices", r->brain_slices, "Slices per brain volume (16..64)")
      ->check(CLI::Range(16, 64))
      ->capture_default_str();
  app.add_option("--pet-height", r->pet_height, "Height of each PET MIP in pixels (400..1200)")
      ->check(CLI::Range(400, 1200))
      ->capture_default_str();
  app.footer(
      "Writes clearly marked SYNTHETIC cases (no patient data; names start with DEMO-) as two nnU-Net v2 raw "
      "datasets: Dataset901_DEMO_BrainMR (FLAIR + T1 post-contrast .nii.gz, 256x256xN, lesion label) and "
      "Dataset902_DEMO_PetMip (400xH PNG, dark = high uptake, tumour label). The same seed gives the same "
      "bytes.\n\nExit codes: 0 success, 2 bad input, 3 environment, 70 internal error");
  return [r, output] {
    r->output = *output;
    const app::DemoDataResult result = app::write_demo_data(*r);
    for (const auto& d : result.datasets) std::cout << "wrote " << d.string() << "\n";
    std::cout << result.files.size() << " files\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
