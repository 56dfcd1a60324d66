// tumorlab: AI-assisted tumour segmentation labelling. Entry point and verb dispatch.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <new>

#include "tumorlab/cli/verbs.h"
#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"

namespace {

const char* const kExitCodes =
    "Exit codes:\n"
    "  0   success\n"
    "  2   bad input: a file, folder, option or value is wrong (the message names it)\n"
    "  3   environment: disk, permissions or a required resource failed; retrying may help\n"
    "  70  internal error: a bug in tumorlab; please report it with the message\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace tumorlab;
  CLI::App app{"tumorlab " TUMORLAB_VERSION
               ": AI-assisted tumour segmentation labelling for CT, MRI and PET.\n"
               "Reads NIfTI (.nii, .nii.gz), NRRD, MetaImage (.mha, .mhd), PNG, TIFF and DICOM (folders, .zip, SEG).",
               "tumorlab"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", "tumorlab " TUMORLAB_VERSION);
  std::string level = "warn";
  app.add_option("--log-level", level, "Log verbosity: debug, info, warn, error, off")->capture_default_str();

  std::map<CLI::App*, cli::Run> verbs;
  auto add = [&](const char* name, const char* description, cli::Run (*adder)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, description);
    sub->footer(kExitCodes);
    verbs[sub] = adder(*sub);
  };
  add("info", "Describe images: format, series, size, spacing, origin, direction, modality, channels, range",
      cli::add_info);
  add("convert", "Convert an image, DICOM series or DICOM SEG to NIfTI, NRRD, MetaImage, PNG or TIFF",
      cli::add_convert);
  add("evaluate", "Score predicted labels against reference labels (Dice, HD95, lesion F1, ...)",
      cli::add_evaluate);
  add("plan", "Fingerprint an nnU-Net dataset and write plans.json (2D/3D, spacing, patch, network, normalisation)", cli::add_plan);
  add("train", "Train a U-Net from plans.json on an nnU-Net dataset (resumable, time budget, pseudo-Dice validation)", cli::add_train);
  add("predict", "Segment images with a model bundle (sliding window, TTA, uncertainty maps and case scores)", cli::add_predict);
  add("ensemble", "Combine model bundles with the same plans into one whose prediction averages them", cli::add_ensemble);
  add("db", "Database of a data folder: `db upgrade` migrates it to this tumorlab's schema", cli::add_db);
  add("user", "User accounts of a data folder: add, list, passwd, disable, enable", cli::add_user);
  add("audit", "Audit trail of a data folder: `audit verify` checks its hash chain", cli::add_audit);
  add("serve", "Run the labelling server: REST API (/api, OpenAPI at /api/openapi.json) and the browser UI", cli::add_serve);
  add("demo-data", "Write synthetic demo cases (brain MR, PET MIP) as nnU-Net datasets; no patient data",
      cli::add_demo_data);
  add("import", "Import scans, DICOM (de-identified) and nnU-Net datasets into a data folder", cli::add_import);
  add("export", "Export the validated cases of a data folder as an nnU-Net v2 raw dataset", cli::add_export);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }

  try {
    set_log_level(parse_log_level(level));
    for (auto& [sub, run] : verbs) {
      if (sub->parsed()) return run();
    }
    return kExitBadInput;
  } catch (const Error& e) {
    std::cerr << "tumorlab: error: " << e.what() << "\n";
    if (e.info().kind == ErrorKind::Internal) std::cerr << "tumorlab: this is a bug; please report it\n";
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::cerr << "tumorlab: error: out of memory\n";
    return kExitEnvironment;
  } catch (const std::exception& e) {
    std::cerr << "tumorlab: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
}
