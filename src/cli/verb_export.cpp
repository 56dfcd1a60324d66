// tumorlab export --nnunet OUT --data-dir DIR: the validated cases as an nnU-Net v2 raw dataset.
#include <iostream>
#include <memory>

#include "tumorlab/app/exporter.h"
#include "tumorlab/app/lab.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_export(CLI::App& app) {
  struct Opts {
    std::string output;
    std::string data_dir = "tumorlab-data";
    std::string name = "Dataset500_tumorlab";
    bool include_demo = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--nnunet", o->output, "Dataset folder to write (must not exist, or be empty)")->required();
  app.add_option("--data-dir", o->data_dir, "The data folder (of `tumorlab serve`)")->capture_default_str();
  app.add_option("--name", o->name, "Dataset name in dataset.json (DatasetNNN_Name)")->capture_default_str();
  app.add_flag("--include-demo", o->include_demo, "Also export validated synthetic demo cases");
  app.footer(
      "Writes imagesTr/<case>_<XXXX>.nii.gz (one file per channel), labelsTr/<case>.nii.gz (the current label\n"
      "revision) and dataset.json (channel_names, labels, numTraining, file_ending) for every validated case.\n"
      "Case names only (pseudonyms for DICOM imports); audited as an export.\n\n"
      "Exit codes: 0 success, 2 bad input (no validated case, output not empty), 3 environment, 70 internal error");
  return [o] {
    auto lab = app::Lab::open_beside_server(o->data_dir);
    app::NnunetExportRequest req;
    req.output = o->output;
    req.dataset_name = o->name;
    req.include_demo = o->include_demo;
    const char* user = std::getenv("USER");
    app::Actor actor{0, std::string("cli:") + (user && *user ? user : "admin"), "admin", ""};
    const auto r = app::export_nnunet(*lab, actor, req);
    for (const auto& s : r["skipped"])
      std::cerr << "left out case " << s["case_id"] << " " << s["name"].get<std::string>() << ": "
                << s["reason"].get<std::string>() << "\n";
    std::cout << "wrote " << r["num_training"] << " cases to " << r["output"].get<std::string>() << "\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
