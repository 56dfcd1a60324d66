#include <iostream>
#include <memory>

#include "tumorlab/app/planning.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_plan(CLI::App& app) {
  struct Args {
    std::string dataset, output, name, dims = "auto", modality, fingerprint;
    int threads = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("DATASET", args->dataset, "nnU-Net v2 raw dataset folder (dataset.json, imagesTr/, labelsTr/)")
      ->required();
  app.add_option("-o,--output", args->output, "plans.json to write (folders are created)")->required();
  app.add_option("--name", args->name, "Model name stored in the plans (default: the dataset folder's name)");
  app.add_option("--dims", args->dims, "auto (2D data -> 2D, volumes -> 3D), 2d or 3d")
      ->check(CLI::IsMember({"auto", "2d", "3d"}))
      ->capture_default_str();
  app.add_option("--modality", args->modality,
                 "Modality of the model (CT, MR, PT); default: from the channel names in dataset.json");
  app.add_option("--fingerprint", args->fingerprint,
                 "Fingerprint file: read it when it exists (no image is read), otherwise compute and write it "
                 "there (default: fingerprint.json beside the plans, always recomputed)");
  app.add_option("--threads", args->threads, "Worker threads for the fingerprint (0: one per core)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("-q,--quiet", args->quiet, "No progress and no summary");
  app.footer(
      "Computes the dataset fingerprint (spacings, sizes, intensity percentiles, foreground, lesion sizes) and "
      "derives plans.json from it: 2D or 3D, target spacing, patch and batch size, network topology, "
      "normalisation per channel, training and inference defaults. The rules are in docs/planning.md; the "
      "file is meant to be read and edited.\n\nExit codes: 0 success, 2 bad input, 3 environment, 70 internal "
      "error");
  return [args] {
    app::PlanRequest r;
    r.dataset = args->dataset;
    r.output = args->output;
    r.name = args->name;
    r.dims = args->dims;
    r.modality = args->modality;
    r.fingerprint = args->fingerprint;
    r.threads = args->threads;
    int last_percent = -1;
    if (!args->quiet) {
      r.progress = [&last_percent](int done, int total) {
        const int percent = done * 100 / total;
        if (percent / 10 != last_percent / 10 || done == total) {
          std::cerr << "fingerprint: " << done << "/" << total << " cases (" << percent << "%)\n";
          last_percent = percent;
        }
      };
    }
    const app::PlanResult result = app::plan_dataset(r);
    if (!args->quiet) {
      std::cout << app::describe(result.plans, result.fingerprint);
      std::cout << "wrote " << result.plans_path.string();
      if (result.fingerprint_computed) std::cout << " and " << result.fingerprint_path.string();
      std::cout << "\n";
    }
    return 0;
  };
}

}  // namespace tumorlab::cli
