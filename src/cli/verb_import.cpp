// tumorlab import PATH... --data-dir DIR: scans, DICOM (de-identified) and nnU-Net datasets into
// a data folder (app/importer.h). Runs beside a server on the same folder (no server lock).
#include <iostream>
#include <memory>

#include "tumorlab/app/importer.h"
#include "tumorlab/app/lab.h"
#include "tumorlab/cli/verbs.h"
#include "tumorlab/core/error.h"

namespace tumorlab::cli {

Run add_import(CLI::App& app) {
  struct Opts {
    std::vector<std::string> inputs;
    std::string data_dir = "tumorlab-data";
    std::string modality;
    bool no_presegment = false;
    bool demo = false;
    bool json_out = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("PATH", o->inputs, "Image files, DICOM files or folders, .zip archives, nnU-Net raw datasets")
      ->required();
  app.add_option("--data-dir", o->data_dir, "The data folder (of `tumorlab serve`)")->capture_default_str();
  app.add_option("--modality", o->modality, "Modality of images that carry none (NIfTI, PNG, ...): CT, MR, PT");
  app.add_flag("--no-presegment", o->no_presegment, "Do not queue pre-segmentation jobs for the new cases");
  app.add_flag("--demo", o->demo, "Mark the imported cases as synthetic demo data");
  app.add_flag("--json", o->json_out, "Print the full result as JSON");
  app.footer(
      "DICOM is de-identified on import (DICOM PS3.15 basic profile; a stable pseudonym per patient from the site\n"
      "key DIR/deid.key, created on first use: back it up). nnU-Net training labels become revisions of kind\n"
      "'imported' and their cases are validated. Images already stored are skipped. A server may be running on\n"
      "the same folder; its job runner pre-segments the new cases.\n\n"
      "Exit codes: 0 every input imported (or already stored), 2 some input could not be imported (listed),\n"
      "3 environment, 70 internal error");
  return [o] {
    auto lab = app::Lab::open_beside_server(o->data_dir);
    std::vector<app::ImportInput> inputs;
    for (const auto& p : o->inputs) inputs.push_back(app::ImportInput{p, p});
    app::ImportOptions io;
    io.modality = o->modality;
    io.presegment = !o->no_presegment;
    io.demo = o->demo;
    io.origin = "cli";
    const char* user = std::getenv("USER");
    app::Actor actor{0, std::string("cli:") + (user && *user ? user : "admin"), "admin", ""};
    const auto r = app::import_scans(*lab, actor, inputs, io);
    if (o->json_out) {
      std::cout << r.dump(2) << "\n";
    } else {
      for (const auto& c : r["cases"])
        std::cout << "added case " << c["id"] << " " << c["name"].get<std::string>() << " ("
                  << c["status"].get<std::string>() << (c["demo"].get<bool>() ? ", demo" : "") << ")\n";
      for (const auto& s : r["skipped"])
        std::cout << "skipped " << s["file"].get<std::string>() << ": " << s["reason"].get<std::string>() << "\n";
      for (const auto& e : r["errors"]) {
        const std::string file = e["file"], message = e["message"];
        std::cerr << "error: " << (message.find(file) != std::string::npos ? message : file + ": " + message) << "\n";
      }
      std::cout << r["cases"].size() << " cases added, " << r["skipped"].size() << " skipped, " << r["errors"].size()
                << " errors, " << r["jobs"].size() << " pre-segmentation jobs queued\n";
    }
    return r["errors"].empty() ? 0 : kExitBadInput;
  };
}

}  // namespace tumorlab::cli
