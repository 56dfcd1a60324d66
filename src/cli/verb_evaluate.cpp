#include <unistd.h>

#include <fstream>
#include <iostream>

#include "tumorlab/app/evaluation.h"
#include "tumorlab/cli/verbs.h"
#include "tumorlab/core/error.h"

namespace tumorlab::cli {
namespace {
void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw Error(ErrorCode::IoFailure, path + ": cannot write");
}
}  // namespace

Run add_evaluate(CLI::App& app) {
  struct Args {
    std::string pred, ref, json, csv;
    int label = 0;
    double tolerance_mm = 1.0;
    bool missing_as_empty = false, quiet = false;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--pred", args->pred, "Folder of predicted labels named <case>.nii.gz, <case>.png, ...")->required();
  app.add_option("--ref", args->ref, "Folder of reference labels with the same case names")->required();
  app.add_option("--json", args->json, "Also write per-case metrics and the summary as JSON to this file");
  app.add_option("--csv", args->csv, "Also write per-case metrics as CSV to this file");
  app.add_option("--label", args->label, "Score only this label value (0: any non-zero label is foreground)")
      ->check(CLI::Range(0, 255))
      ->capture_default_str();
  app.add_option("--tolerance-mm", args->tolerance_mm, "Tolerance of the surface Dice, in mm")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--missing-as-empty", args->missing_as_empty,
               "Score reference cases without a prediction as empty predictions (default: refuse)");
  app.add_option("--threads", args->threads, "Worker threads (0: one per core)")->check(CLI::NonNegativeNumber);
  app.add_flag("-q,--quiet", args->quiet, "Print only the summary");
  app.footer(
      "Metrics and their empty-case conventions are defined in docs/metrics.md. Pairs whose grids differ are "
      "refused.\n\nExit codes: 0 success, 2 bad input, 3 environment, 70 internal error");
  return [args] {
    app::EvaluationOptions o;
    o.metrics.label = static_cast<uint8_t>(args->label);
    o.metrics.surface_tolerance_mm = args->tolerance_mm;
    o.missing_as_empty = args->missing_as_empty;
    o.threads = args->threads;
    const bool tty = ::isatty(2);
    auto report = app::evaluate_folders(args->pred, args->ref, o, [tty](int done, int total) {
      if (tty) std::cerr << "\revaluating " << done << "/" << total << std::flush;
    });
    if (tty) std::cerr << "\r" << std::string(30, ' ') << "\r";
    std::string text = app::to_text(report);
    if (args->quiet) text = text.substr(text.find("\n" + std::to_string(report.cases.size()) + " cases") + 1);
    std::cout << text;
    if (!args->json.empty()) write_text(args->json, app::to_json(report).dump(2) + "\n");
    if (!args->csv.empty()) write_text(args->csv, app::to_csv(report));
    return 0;
  };
}

}  // namespace tumorlab::cli
