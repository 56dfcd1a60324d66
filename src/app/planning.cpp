#include "tumorlab/app/planning.h"

#include <sstream>

#include "tumorlab/core/error.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/model/planner.h"

namespace fs = std::filesystem;

namespace tumorlab::app {

PlanResult plan_dataset(const PlanRequest& request) {
  const io::NnunetDataset dataset = io::read_nnunet_dataset(request.dataset);
  PlanResult r;
  r.plans_path = request.output;
  r.fingerprint_path =
      request.fingerprint.empty() ? request.output.parent_path() / "fingerprint.json" : request.fingerprint;
  if (!request.fingerprint.empty() && fs::exists(request.fingerprint)) {
    r.fingerprint = model::load_fingerprint(request.fingerprint);
    std::vector<std::string> names;
    for (const auto& c : r.fingerprint.channels) names.push_back(c.name);
    if (names != dataset.channel_names) {
      std::string a, b;
      for (const auto& n : names) a += (a.empty() ? "" : ", ") + n;
      for (const auto& n : dataset.channel_names) b += (b.empty() ? "" : ", ") + n;
      throw Error(ErrorCode::InvalidDataset, request.fingerprint.string() + ": channels (" + a +
                                                 ") differ from the dataset's dataset.json (" + b + ")");
    }
  } else {
    r.fingerprint = model::compute_fingerprint(dataset, request.threads, request.progress);
    r.fingerprint_computed = true;
  }
  model::PlanOptions o;
  o.name = request.name;
  o.dims = request.dims;
  o.modality = request.modality;
  r.plans = model::plan_from_fingerprint(r.fingerprint, o);

  std::error_code ec;
  if (!request.output.parent_path().empty()) fs::create_directories(request.output.parent_path(), ec);
  if (ec) throw Error(ErrorCode::IoFailure, request.output.parent_path().string() + ": cannot create: " + ec.message());
  if (r.fingerprint_computed) {
    if (!r.fingerprint_path.parent_path().empty()) fs::create_directories(r.fingerprint_path.parent_path(), ec);
    model::save_fingerprint(r.fingerprint, r.fingerprint_path);
  }
  model::save_plans(r.plans, request.output);
  return r;
}

std::string describe(const model::Plans& p, const model::DatasetFingerprint& f) {
  std::ostringstream s;
  auto triple = [](const auto& v, int n) {
    std::ostringstream o;
    for (int a = 0; a < n; ++a) o << (a ? " x " : "") << v[static_cast<std::size_t>(a)];
    return o.str();
  };
  const int n = p.dims();
  s << "plans '" << p.name << "': " << p.dims() << "D, modality " << (p.modality.empty() ? "(any)" : p.modality) << ", "
    << f.cases.size() << " cases (" << f.cases_with_foreground << " with foreground, " << f.lesion_count
    << " lesions)\n";
  s << "  target spacing " << triple(p.target_spacing_mm, 3) << " mm, median shape " << triple(f.median_size, 3)
    << "\n";
  s << "  patch " << triple(p.patch_size, n) << ", batch " << p.batch_size << ", " << p.network.features.size()
    << " stages, features";
  for (int feat : p.network.features) s << " " << feat;
  s << "\n  strides";
  for (const auto& st : p.network.strides) s << " " << triple(st, n);
  s << "\n";
  for (const auto& c : p.channels) {
    s << "  channel '" << c.name << "': " << imaging::to_string(c.normalization.scheme);
    if (c.normalization.scheme == imaging::NormalizationScheme::CT) {
      s << " clip [" << c.normalization.clip_low << ", " << c.normalization.clip_high << "] mean "
        << c.normalization.mean << " std " << c.normalization.std;
    } else if (c.normalization.scheme == imaging::NormalizationScheme::ZScore) {
      s << " per case over " << c.foreground;
    }
    if (c.invert) s << ", inverted";
    s << "\n";
  }
  s << "  training " << p.training.epochs << " epochs x " << p.training.iterations_per_epoch << " iterations, lr "
    << p.training.learning_rate << "; inference overlap " << p.inference.overlap << ", min lesion "
    << p.inference.min_lesion_ml << " mL\n";
  return s.str();
}

}  // namespace tumorlab::app
