#include <iostream>
#include <memory>

#include "tumorlab/app/training.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_ensemble(CLI::App& app) {
  struct Args {
    std::vector<std::string> members;
    std::string output, version = "1";
  };
  auto args = std::make_shared<Args>();
  app.add_option("BUNDLE", args->members, "Model bundles to combine (two or more, same plans)")->required();
  app.add_option("-o,--output", args->output, "Bundle folder to write (new or empty)")->required();
  app.add_option("--model-version", args->version, "Version written to bundle.json")->capture_default_str();
  app.footer(
      "Writes one model bundle holding the networks of all BUNDLEs (model.pt, model_2.pt, ...; bundle.json "
      "\"weights\"), with the first bundle's plans.json. The bundles must share the network, preprocessing, "
      "patch and inference settings of plans.json (the training section may differ), channels, labels and "
      "the weights' dtype. `tumorlab predict` and the server average the networks' probabilities, which "
      "costs one network's time per member.\n\n"
      "Exit codes: 0 success, 2 bad input (fewer than two bundles, bundles that differ, output not empty), "
      "3 environment, 70 internal error");
  return [args] {
    std::vector<std::filesystem::path> members(args->members.begin(), args->members.end());
    app::make_ensemble(members, args->output, args->version);
    std::cout << "wrote " << args->output << " (" << members.size() << " bundles)\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
