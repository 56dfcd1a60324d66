// Benchmarks of the foundation: reading a DICOM series (against dcm2niix on the same series,
// in the same run), reading a .nii.gz volume, HD95 on a 256x256x100 label, and linear resampling
// of a CT-sized probability map back to its input grid (separable path against ITK's filter).
// Prints Google Benchmark's table (median of repetitions) and then the ratios.
// Usage: io_bench [--benchmark_repetitions=N] ; needs ../shared/data for the DICOM benchmarks.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>

#include "tumorlab/imaging/metrics.h"
#include "tumorlab/imaging/resample.h"
#include "tumorlab/io/dicom.h"
#include "tumorlab/io/image_io.h"

namespace fs = std::filesystem;
using namespace tumorlab;

namespace {

fs::path shared_data() {
  if (const char* env = std::getenv("TUMORLAB_SHARED_DATA")) return env;
  return fs::path(TUMORLAB_SOURCE_DIR) / ".." / "shared" / "data";
}

fs::path scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("tumorlab-bench-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

const fs::path kSeries = shared_data() / "dicom" / "mr-brain-20slice";

void BM_ReadDicomSeries(benchmark::State& state) {
  if (!fs::is_directory(kSeries)) {
    state.SkipWithError("needs ../shared/data/dicom/mr-brain-20slice");
    return;
  }
  for (auto _ : state) {
    auto series = io::scan_dicom(kSeries);
    Volume v = io::read_dicom_series(series.at(0));
    benchmark::DoNotOptimize(v.raw());
  }
}

// DICOM folder to uncompressed NIfTI: the same work dcm2niix does below.
void BM_ConvertDicomToNifti_tumorlab(benchmark::State& state) {
  if (!fs::is_directory(kSeries)) {
    state.SkipWithError("needs ../shared/data/dicom/mr-brain-20slice");
    return;
  }
  for (auto _ : state) {
    auto series = io::scan_dicom(kSeries);
    io::write_image(io::read_dicom_series(series.at(0)), scratch() / "tumorlab.nii");
  }
}

void BM_ConvertDicomToNifti_dcm2niix(benchmark::State& state) {
  if (!fs::is_directory(kSeries) || std::system("command -v dcm2niix >/dev/null 2>&1") != 0) {
    state.SkipWithError("needs dcm2niix and ../shared/data/dicom/mr-brain-20slice");
    return;
  }
  const fs::path out = scratch() / "dcm2niix";
  fs::create_directories(out);
  const std::string cmd =
      "dcm2niix -z n -b n -f series -o '" + out.string() + "' '" + kSeries.string() + "' >/dev/null 2>&1";
  for (auto _ : state) {
    state.PauseTiming();  // dcm2niix refuses to write a 27th "series" beside older ones
    fs::remove_all(out);
    fs::create_directories(out);
    state.ResumeTiming();
    const int rc = std::system(cmd.c_str());
    if (rc != 0) {
      static std::string message;
      message = "dcm2niix failed (system() returned " + std::to_string(rc) + ", errno " + std::to_string(errno) + ")";
      state.SkipWithError(message.c_str());
      return;
    }
  }
}

// The whole prostate study (164 files, 7 series): scanning alone, and every readable series to
// NIfTI against dcm2niix converting the same folder.
const fs::path kStudy = shared_data() / "dicom" / "mr-prostate-study";

void BM_ScanDicomStudy_prostate(benchmark::State& state) {
  if (!fs::is_directory(kStudy)) {
    state.SkipWithError("needs ../shared/data/dicom/mr-prostate-study");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(io::scan_dicom(kStudy).size());
}

void BM_ConvertDicomStudy_tumorlab(benchmark::State& state) {
  if (!fs::is_directory(kStudy)) {
    state.SkipWithError("needs ../shared/data/dicom/mr-prostate-study");
    return;
  }
  for (auto _ : state) {
    int n = 0;
    for (const auto& s : io::scan_dicom(kStudy)) {
      if (!s.readable) continue;
      io::DicomReadOptions options;
      options.allow_incomplete = true;
      io::write_image(io::read_dicom_series(s, options), scratch() / ("study-" + std::to_string(n++) + ".nii"));
    }
  }
}

void run_dcm2niix(benchmark::State& state, const fs::path& input, const std::string& name) {
  if (!fs::is_directory(input) || std::system("command -v dcm2niix >/dev/null 2>&1") != 0) {
    state.SkipWithError(("needs dcm2niix and " + input.string()).c_str());
    return;
  }
  const fs::path out = scratch() / name;
  const std::string cmd =
      "dcm2niix -z n -b n -f %s_%p -o '" + out.string() + "' '" + input.string() + "' >/dev/null 2>&1";
  for (auto _ : state) {
    state.PauseTiming();  // dcm2niix refuses to overwrite older outputs
    fs::remove_all(out);
    fs::create_directories(out);
    state.ResumeTiming();
    const int rc = std::system(cmd.c_str());
    if (rc != 0) {
      static std::string message;
      message = "dcm2niix failed (system() returned " + std::to_string(rc) + ", errno " + std::to_string(errno) + ")";
      state.SkipWithError(message.c_str());
      return;
    }
  }
}

void BM_ConvertDicomStudy_dcm2niix(benchmark::State& state) {
  run_dcm2niix(state, kStudy, "dcm2niix-study");
}

// A 256x256x100 int16 volume with smooth content, written once as .nii.gz.
const fs::path& nifti_volume() {
  static const fs::path path = [] {
    Geometry g;
    g.size = {256, 256, 100};
    g.spacing_mm = {0.9, 0.9, 2.0};
    Volume v(g, PixelType::Int16);
    int16_t* p = v.data<int16_t>();
    for (int64_t k = 0; k < 100; ++k)
      for (int64_t j = 0; j < 256; ++j)
        for (int64_t i = 0; i < 256; ++i)
          p[v.linear_index(i, j, k)] = static_cast<int16_t>(400 * std::sin(i * 0.05) * std::cos(j * 0.04) + k);
    fs::path f = scratch() / "volume.nii.gz";
    io::write_image(v, f);
    return f;
  }();
  return path;
}

void BM_ReadNiftiGz_256x256x100(benchmark::State& state) {
  const fs::path& f = nifti_volume();
  for (auto _ : state) {
    Volume v = io::read_image(f);
    benchmark::DoNotOptimize(v.raw());
  }
}

// Two overlapping irregular blobs (a tumour and a slightly shifted, bumpier prediction).
std::pair<LabelMap, LabelMap> blobs() {
  Geometry g;
  g.size = {256, 256, 100};
  g.spacing_mm = {0.8, 0.8, 2.0};
  LabelMap ref(g), pred(g);
  for (int64_t k = 0; k < 100; ++k)
    for (int64_t j = 0; j < 256; ++j)
      for (int64_t i = 0; i < 256; ++i) {
        const double x = (i - 128) * 0.8, y = (j - 120) * 0.8, z = (k - 50) * 2.0;
        const double r = std::sqrt(x * x + y * y + z * z);
        const double wobble = 4 * std::sin(0.2 * x) * std::cos(0.15 * y);
        if (r < 40 + wobble) ref.at(i, j, k) = 1;
        const double xs = x - 3;
        if (std::sqrt(xs * xs + y * y + z * z) < 38 + 6 * std::sin(0.1 * z)) pred.at(i, j, k) = 1;
      }
  return {ref, pred};
}

void BM_Hd95_256x256x100(benchmark::State& state) {
  static const auto masks = blobs();
  for (auto _ : state) benchmark::DoNotOptimize(imaging::hausdorff95_mm(masks.second, masks.first));
}

void BM_AllMetrics_256x256x100(benchmark::State& state) {
  static const auto masks = blobs();
  for (auto _ : state) benchmark::DoNotOptimize(imaging::compute_metrics(masks.second, masks.first).dice);
}

// What `predict` does after a CT network: p(foreground) on the network's 1.5625 x 1.5625 x 2.5 mm
// grid (256 x 256 x 100) back onto the 0.78 mm input grid (512 x 512 x 100), oblique direction.
void resample_back(benchmark::State& state, bool separable) {
  static const auto setup = [] {
    Geometry in;
    in.size = {512, 512, 100};
    in.spacing_mm = {0.78125, 0.78125, 2.5};
    in.direction = {0.98, -0.198997487, 0, 0.198997487, 0.98, 0, 0, 0, 1};
    const Geometry net = imaging::geometry_with_spacing(in, {1.5625, 1.5625, 2.5});
    Volume p(net, PixelType::Float32);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0, 1);
    for (int64_t i = 0; i < p.voxel_count(); ++i) p.data<float>()[i] = u(rng);
    return std::make_pair(p, in);
  }();
  imaging::ResampleOptions o;
  o.separable = separable;
  for (auto _ : state) {
    Volume out = imaging::resample(setup.first, setup.second, o);
    benchmark::DoNotOptimize(out.raw());
  }
}
void BM_ResampleBack_CT_separable(benchmark::State& state) { resample_back(state, true); }
void BM_ResampleBack_CT_itk(benchmark::State& state) { resample_back(state, false); }

BENCHMARK(BM_ReadDicomSeries)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertDicomToNifti_tumorlab)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertDicomToNifti_dcm2niix)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ScanDicomStudy_prostate)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertDicomStudy_tumorlab)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertDicomStudy_dcm2niix)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadNiftiGz_256x256x100)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Hd95_256x256x100)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AllMetrics_256x256x100)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ResampleBack_CT_separable)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ResampleBack_CT_itk)->Unit(benchmark::kMillisecond)->UseRealTime();

// Keeps the median of each benchmark to print ratios at the end.
class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (median || single) medians[r.run_name.function_name] = r.GetAdjustedRealTime();
    }
  }
  std::map<std::string, double> medians;  // milliseconds
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5";
  std::string only_aggregates = "--benchmark_report_aggregates_only=true";
  bool has_reps = false;
  for (int i = 1; i < argc; ++i) has_reps |= std::string(argv[i]).rfind("--benchmark_repetitions", 0) == 0;
  if (!has_reps) {
    args.push_back(reps.data());
    args.push_back(only_aggregates.data());
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  MedianReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  auto& m = reporter.medians;
  std::cout << "\nmedians (ms):\n";
  for (const auto& [name, ms] : m) std::cout << "  " << name << "  " << ms << "\n";
  const auto a = m.find("BM_ConvertDicomToNifti_tumorlab"), b = m.find("BM_ConvertDicomToNifti_dcm2niix");
  if (a != m.end() && b != m.end() && b->second > 0) {
    std::cout << "DICOM series -> NIfTI, tumorlab / dcm2niix time ratio: " << a->second / b->second
              << " (below 1 = tumorlab faster)\n";
  }
  const auto c = m.find("BM_ConvertDicomStudy_tumorlab"), d = m.find("BM_ConvertDicomStudy_dcm2niix");
  if (c != m.end() && d != m.end() && d->second > 0) {
    std::cout << "DICOM study (7 series) -> NIfTI, tumorlab / dcm2niix time ratio: " << c->second / d->second
              << " (below 1 = tumorlab faster)\n";
  }
  const auto e = m.find("BM_ResampleBack_CT_separable"), f = m.find("BM_ResampleBack_CT_itk");
  if (e != m.end() && f != m.end() && e->second > 0) {
    std::cout << "resample back 256x256x100 -> 512x512x100, ITK filter / separable time ratio: " << f->second / e->second
              << " (above 1 = separable faster)\n";
  }
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  return 0;
}
