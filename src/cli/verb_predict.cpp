#include <iomanip>
#include <iostream>
#include <sstream>

#include "tumorlab/app/prediction.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_predict(CLI::App& app) {
  struct Args {
    std::string model, output, roi, timings;
    std::vector<std::string> inputs;
    bool uncertainty = false, probabilities = false, tta = false, bf16 = false, fp32 = false;
    int threads = 0;
    double overlap = -1;
  };
  auto args = std::make_shared<Args>();
  app.add_option("-m,--model", args->model,
                 "Model bundle: a folder (model.pt, plans.json, bundle.json) or a name under models/ "
                 "($TUMORLAB_MODELS_DIR, ./models, the source tree's models/)")
      ->required();
  app.add_option("INPUT", args->inputs,
                 "Image file (one case), DICOM folder/.zip (one case per series), or imagesTr-style folder "
                 "(<case>_0000<ending>, <case>_0001<ending>, ...)")
      ->required();
  app.add_option("-o,--output", args->output,
                 "Output folder: <case>.png (PNG inputs, values 0/1) or <case>.nii.gz, on the input's grid")
      ->required();
  app.add_flag("--uncertainty", args->uncertainty,
               "Also write <case>_uncertainty.nii.gz (normalised entropy, float32) and scores.json/scores.csv "
               "ranking cases by uncertainty (docs/uncertainty.md); uses MC-dropout when the plans ask for it");
  app.add_flag("--probabilities", args->probabilities,
               "Also write <case>_probability.nii.gz: the foreground probability (float32, 0..1) on the input's grid, "
               "before the threshold and small-lesion removal (to ensemble or audit outside tumorlab)");
  app.add_flag("--tta", args->tta, "Test-time augmentation: average over mirrorings along the plans' tta_mirror_axes");
  app.add_option("--roi", args->roi,
                 "Only this box of the input grid, in voxels i0,j0,k0,i1,j1,k1 (end exclusive); outside is 0");
  app.add_option("--threads", args->threads, "LibTorch threads (0: all cores)")->capture_default_str();
  app.add_option("--overlap", args->overlap, "Sliding-window overlap in [0, 1) (default: the plans' value)");
  auto* bf16 = app.add_flag("--bf16", args->bf16,
                            "bfloat16 autocast for the network: faster on CPUs with AVX-512 BF16, less exact "
                            "(default: the plans' inference.bf16 on such CPUs, see the model card)");
  app.add_flag("--fp32", args->fp32, "float32 for the network even when the plans ask for bf16")->excludes(bf16);
  app.add_option("--timings", args->timings,
                 "Write per-case timings (read, preprocess, infer, resample, postprocess, write, model load; "
                 "seconds) to this JSON file");
  return [args] {
    app::PredictRequest r;
    r.model = args->model;
    for (const auto& i : args->inputs) r.inputs.emplace_back(i);
    r.output = args->output;
    r.uncertainty = args->uncertainty;
    r.probabilities = args->probabilities;
    r.tta = args->tta;
    if (args->bf16) r.bf16 = true;
    if (args->fp32) r.bf16 = false;
    r.threads = args->threads;
    r.overlap = args->overlap;
    r.timings_file = args->timings;
    if (!args->roi.empty()) r.roi = app::parse_roi(args->roi);
    app::predict(r, [&](const app::CaseResult& c, int done, int total) {
      std::ostringstream line;
      line << "[" << done << "/" << total << "] " << c.id << ": " << c.label_file.string() << ", "
           << c.foreground_voxels << " foreground voxels (" << std::fixed << std::setprecision(2) << c.volume_ml
           << " mL)";
      if (args->uncertainty) line << ", score " << std::setprecision(4) << c.score;
      line << ", " << std::setprecision(2) << c.seconds << " s (network " << c.predict_seconds << " s"
           << (c.bf16 ? ", bf16" : "") << ")";
      std::cout << line.str() << std::endl;
    });
    if (args->uncertainty) std::cout << "wrote " << (std::filesystem::path(args->output) / "scores.json").string() << "\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
