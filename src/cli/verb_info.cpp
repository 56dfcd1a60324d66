#include <iostream>

#include "tumorlab/app/inspect.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_info(CLI::App& app) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("PATH", args->path,
                 "An image file, a DICOM folder or .zip (one entry per series), a folder of images, or an nnU-Net "
                 "raw dataset folder (one entry per case)")
      ->required();
  app.add_flag("--json", args->json, "Print JSON instead of text");
  return [args] {
    const auto report = app::inspect(args->path);
    if (args->json) std::cout << app::to_json(report).dump(2) << "\n";
    else std::cout << app::to_text(report);
    return 0;
  };
}

}  // namespace tumorlab::cli
