#include "tumorlab/model/fingerprint.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <fstream>
#include <limits>
#include <mutex>
#include <thread>

#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/components.h"
#include "tumorlab/imaging/statistics.h"
#include "tumorlab/io/image_io.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tumorlab::model {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

IntensityStats empty_stats() {
  IntensityStats s;
  s.min = s.max = s.percentile_00_5 = s.percentile_50_0 = s.percentile_99_5 = s.mean = s.std = kNaN;
  return s;
}

// Statistics of a list of finite values (reordered).
IntensityStats stats_of(std::vector<float>& values) {
  if (values.empty()) return empty_stats();
  IntensityStats s;
  s.count = static_cast<int64_t>(values.size());
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  const imaging::MeanStd ms = imaging::mean_std(values);
  s.mean = ms.mean;
  s.std = ms.std;
  s.percentile_00_5 = imaging::percentile(values, 0.5);
  s.percentile_50_0 = imaging::percentile(values, 50);
  s.percentile_99_5 = imaging::percentile(values, 99.5);
  return s;
}

// Exact statistics of an 8- or 16-bit integer channel from a histogram (same numbers as stats_of:
// numpy's linear percentile, population std), over the voxels where mask != 0 (all when null).
template <class T>
IntensityStats stats_by_histogram(const T* v, int64_t n, const uint8_t* mask) {
  constexpr int64_t lowest = std::numeric_limits<T>::lowest();
  constexpr int64_t bins = static_cast<int64_t>(std::numeric_limits<T>::max()) - lowest + 1;
  std::vector<int64_t> hist(static_cast<std::size_t>(bins), 0);
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (mask && !mask[i]) continue;
    ++hist[static_cast<std::size_t>(static_cast<int64_t>(v[i]) - lowest)];
    ++count;
  }
  if (count == 0) return empty_stats();
  IntensityStats s;
  s.count = count;
  double sum = 0;
  int64_t first = -1, last = -1;
  for (int64_t b = 0; b < bins; ++b) {
    if (!hist[static_cast<std::size_t>(b)]) continue;
    if (first < 0) first = b;
    last = b;
    sum += static_cast<double>(hist[static_cast<std::size_t>(b)]) * static_cast<double>(b + lowest);
  }
  s.min = static_cast<double>(first + lowest);
  s.max = static_cast<double>(last + lowest);
  s.mean = sum / static_cast<double>(count);
  double ss = 0;
  for (int64_t b = first; b <= last; ++b) {
    const double d = static_cast<double>(b + lowest) - s.mean;
    ss += static_cast<double>(hist[static_cast<std::size_t>(b)]) * d * d;
  }
  s.std = std::sqrt(ss / static_cast<double>(count));
  // k-th order statistic (0-based) by walking the cumulative histogram.
  auto order = [&](int64_t k) {
    int64_t cum = 0;
    for (int64_t b = first; b <= last; ++b) {
      cum += hist[static_cast<std::size_t>(b)];
      if (cum > k) return static_cast<double>(b + lowest);
    }
    return s.max;
  };
  auto pct = [&](double q) {
    const double p = q / 100.0 * static_cast<double>(count - 1);
    const auto k = static_cast<int64_t>(std::floor(p));
    const double x0 = order(k);
    const double x1 = k + 1 < count ? order(k + 1) : x0;
    return x0 + (p - static_cast<double>(k)) * (x1 - x0);
  };
  s.percentile_00_5 = pct(0.5);
  s.percentile_50_0 = pct(50);
  s.percentile_99_5 = pct(99.5);
  return s;
}

template <class T>
constexpr bool kHistogramType = std::is_integral_v<T> && sizeof(T) <= 2;

// Channel statistics over the voxels where mask != 0 (all when null); non-finite voxels are skipped.
IntensityStats channel_stats(const Volume& image, int c, const uint8_t* mask) {
  return dispatch_pixel_type(image.pixel_type(), [&](auto tag) {
    using T = decltype(tag);
    const T* v = image.channel_data<T>(c);
    const int64_t n = image.voxel_count();
    if constexpr (kHistogramType<T>) {
      return stats_by_histogram<T>(v, n, mask);
    } else {
      std::vector<float> values;
      values.reserve(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        if (mask && !mask[i]) continue;
        const auto x = static_cast<float>(v[i]);
        if (std::isfinite(x)) values.push_back(x);
      }
      return stats_of(values);
    }
  });
}

// Every stride-th member (in scan order) of the set, stride chosen so at most `cap` values remain.
std::vector<float> sample(const Volume& image, int c, const uint8_t* mask, int64_t members, int64_t cap) {
  std::vector<float> out;
  if (members <= 0) return out;
  const int64_t stride = (members + cap - 1) / cap;
  out.reserve(static_cast<std::size_t>(std::min(members, cap)));
  const int64_t n = image.voxel_count();
  int64_t seen = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (mask && !mask[i]) continue;
    if (seen++ % stride) continue;
    const auto x = static_cast<float>(image.value(i, c));
    if (std::isfinite(x)) out.push_back(x);
  }
  return out;
}

struct CaseResult {
  CaseFingerprint fp;
  std::vector<std::vector<float>> sample_all, sample_fg;  // per channel
};

CaseResult analyse_case(const io::NnunetCase& c) {
  CaseResult r;
  r.fp.id = c.id;
  std::vector<Volume> parts;
  for (const auto& path : c.channels) {
    parts.push_back(io::read_image(path));
    const Volume& v = parts.back();
    if (v.channels() != 1) {
      throw Error(ErrorCode::InvalidDataset,
                  path.filename().string() + ": expected one channel per file, found " + std::to_string(v.channels()));
    }
    if (!v.geometry().same_grid(parts.front().geometry())) {
      throw Error(ErrorCode::InvalidDataset, path.filename().string() + ": grid differs from " +
                                                 c.channels.front().filename().string() + ": " +
                                                 v.geometry().difference(parts.front().geometry()));
    }
  }
  const Geometry& g = parts.front().geometry();
  const LabelMap label = io::read_label(c.label, &g);
  r.fp.size = g.size;
  r.fp.spacing_mm = g.spacing_mm;
  r.fp.pixel_type = to_string(parts.front().pixel_type());
  r.fp.modality = parts.front().modality;

  const int64_t n = g.voxel_count();
  std::vector<uint8_t> mask(static_cast<std::size_t>(n));
  int64_t fg = 0;
  for (int64_t i = 0; i < n; ++i) {
    mask[static_cast<std::size_t>(i)] = label.data()[i] != 0;
    fg += mask[static_cast<std::size_t>(i)];
  }
  r.fp.foreground_voxels = fg;
  r.fp.foreground_fraction = static_cast<double>(fg) / static_cast<double>(n);
  if (fg > 0) {
    const imaging::Components cc = imaging::connected_components(label, imaging::Connectivity::Full);
    for (const auto& comp : cc.components) {
      r.fp.lesion_voxels.push_back(comp.voxels);
      r.fp.lesion_ml.push_back(comp.volume_ml);
    }
  }
  for (std::size_t ch = 0; ch < parts.size(); ++ch) {
    const Volume& v = parts[ch];
    r.fp.all.push_back(channel_stats(v, 0, nullptr));
    r.fp.foreground.push_back(channel_stats(v, 0, mask.data()));
    r.sample_all.push_back(sample(v, 0, nullptr, n, kFingerprintSamplesPerCase));
    r.sample_fg.push_back(sample(v, 0, mask.data(), fg, kFingerprintSamplesPerCase));
  }
  return r;
}

double median_of(std::vector<double> v) {
  return v.empty() ? kNaN : imaging::percentile(v, 50);
}

SizeSummary summary_of(std::vector<double> v) {
  SizeSummary s;
  if (v.empty()) {
    s.min = s.median = s.max = kNaN;
    return s;
  }
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  s.median = imaging::percentile(v, 50);
  return s;
}

// JSON numbers; NaN and Inf are written as null and read back as NaN.
json num(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}

double get_num(const json& obj, const char* key, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return kNaN;
  if (!obj.at(key).is_number()) throw Error(ErrorCode::InvalidDataset, where + "." + key + ": expected a number");
  return obj.at(key).get<double>();
}

template <class T>
T get(const json& obj, const char* key, const std::string& where) {
  if (!obj.contains(key)) throw Error(ErrorCode::InvalidDataset, where + ": missing field '" + key + "'");
  try {
    return obj.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, where + "." + key + ": " + e.what());
  }
}

json stats_json(const IntensityStats& s) {
  return {{"count", s.count},
          {"min", num(s.min)},
          {"max", num(s.max)},
          {"percentile_00_5", num(s.percentile_00_5)},
          {"percentile_50_0", num(s.percentile_50_0)},
          {"percentile_99_5", num(s.percentile_99_5)},
          {"mean", num(s.mean)},
          {"std", num(s.std)}};
}

IntensityStats stats_from(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(ErrorCode::InvalidDataset, where + ": expected an object");
  IntensityStats s;
  s.count = get<int64_t>(j, "count", where);
  s.min = get_num(j, "min", where);
  s.max = get_num(j, "max", where);
  s.percentile_00_5 = get_num(j, "percentile_00_5", where);
  s.percentile_50_0 = get_num(j, "percentile_50_0", where);
  s.percentile_99_5 = get_num(j, "percentile_99_5", where);
  s.mean = get_num(j, "mean", where);
  s.std = get_num(j, "std", where);
  return s;
}

json summary_json(const SizeSummary& s) {
  return {{"min", num(s.min)}, {"median", num(s.median)}, {"max", num(s.max)}};
}

SizeSummary summary_from(const json& j, const std::string& where) {
  SizeSummary s;
  s.min = get_num(j, "min", where);
  s.median = get_num(j, "median", where);
  s.max = get_num(j, "max", where);
  return s;
}

}  // namespace

DatasetFingerprint compute_fingerprint(const io::NnunetDataset& dataset, int threads,
                                       const std::function<void(int, int)>& progress) {
  std::vector<const io::NnunetCase*> cases;
  for (const auto& c : dataset.training) {
    if (!c.label.empty()) cases.push_back(&c);
  }
  if (cases.empty()) {
    throw Error(ErrorCode::EmptyInput, dataset.root.string() + ": no labelled training case to fingerprint");
  }
  const int total = static_cast<int>(cases.size());
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, total);

  std::vector<CaseResult> results(cases.size());
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::exception_ptr error;
  int done = 0;
  auto worker = [&] {
    while (!failed) {
      const int i = next++;
      if (i >= total) return;
      try {
        results[static_cast<std::size_t>(i)] = analyse_case(*cases[static_cast<std::size_t>(i)]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
      std::lock_guard<std::mutex> lock(mutex);
      ++done;
      if (progress) {
        try {
          progress(done, total);
        } catch (...) {
          if (!error) error = std::current_exception();
          failed = true;
          return;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  DatasetFingerprint fp;
  fp.dataset = dataset.name;
  fp.root = dataset.root.string();
  fp.file_ending = dataset.file_ending;
  fp.labels = dataset.labels;
  const std::size_t nch = dataset.channel_names.size();
  fp.is_2d = true;
  std::array<std::vector<double>, 3> spacings, sizes;
  std::vector<double> fractions, lesion_voxels, lesion_ml;
  double fraction_sum = 0;
  bool same_modality = true;
  for (auto& r : results) {
    CaseFingerprint& c = r.fp;
    if (c.all.size() != nch) {
      throw Error(ErrorCode::InvalidDataset, c.id + ": " + std::to_string(c.all.size()) +
                                                 " channel files, dataset.json names " + std::to_string(nch));
    }
    if (c.size[2] != 1) fp.is_2d = false;
    for (int a = 0; a < 3; ++a) {
      spacings[static_cast<std::size_t>(a)].push_back(c.spacing_mm[static_cast<std::size_t>(a)]);
      sizes[static_cast<std::size_t>(a)].push_back(static_cast<double>(c.size[static_cast<std::size_t>(a)]));
    }
    fraction_sum += c.foreground_fraction;
    if (c.foreground_voxels > 0) {
      ++fp.cases_with_foreground;
      fractions.push_back(c.foreground_fraction);
    }
    if (!c.lesion_voxels.empty()) ++fp.cases_with_lesions;
    for (auto v : c.lesion_voxels) lesion_voxels.push_back(static_cast<double>(v));
    for (auto v : c.lesion_ml) lesion_ml.push_back(v);
    if (c.modality != results.front().fp.modality) same_modality = false;
  }
  for (int a = 0; a < 3; ++a) {
    auto& s = spacings[static_cast<std::size_t>(a)];
    fp.median_spacing_mm[static_cast<std::size_t>(a)] = median_of(s);
    fp.spacing_p10_mm[static_cast<std::size_t>(a)] = imaging::percentile(s, 10);
    fp.median_size[static_cast<std::size_t>(a)] = median_of(sizes[static_cast<std::size_t>(a)]);
  }
  fp.modality = same_modality ? results.front().fp.modality : "";
  fp.mean_foreground_fraction = fraction_sum / static_cast<double>(results.size());
  fp.median_foreground_fraction = median_of(fractions);
  fp.lesion_count = static_cast<int64_t>(lesion_voxels.size());
  fp.lesion_voxels = summary_of(lesion_voxels);
  fp.lesion_ml = summary_of(lesion_ml);

  for (std::size_t ch = 0; ch < nch; ++ch) {
    ChannelFingerprint cf;
    cf.name = dataset.channel_names[ch];
    cf.pixel_type = results.front().fp.pixel_type;
    std::vector<float> all, fg;
    for (const auto& r : results) {
      all.insert(all.end(), r.sample_all[ch].begin(), r.sample_all[ch].end());
      fg.insert(fg.end(), r.sample_fg[ch].begin(), r.sample_fg[ch].end());
    }
    cf.all = stats_of(all);
    cf.foreground = stats_of(fg);
    fp.channels.push_back(cf);
  }
  for (auto& r : results) fp.cases.push_back(std::move(r.fp));
  return fp;
}

json to_json(const DatasetFingerprint& f) {
  json channels = json::array();
  for (const auto& c : f.channels) {
    channels.push_back({{"name", c.name},
                        {"pixel_type", c.pixel_type},
                        {"all", stats_json(c.all)},
                        {"foreground", stats_json(c.foreground)}});
  }
  json cases = json::array();
  for (const auto& c : f.cases) {
    json all = json::array(), fg = json::array(), ml = json::array();
    for (const auto& s : c.all) all.push_back(stats_json(s));
    for (const auto& s : c.foreground) fg.push_back(stats_json(s));
    for (double v : c.lesion_ml) ml.push_back(num(v));
    cases.push_back({{"id", c.id},
                     {"size", c.size},
                     {"spacing_mm", c.spacing_mm},
                     {"pixel_type", c.pixel_type},
                     {"modality", c.modality},
                     {"foreground_voxels", c.foreground_voxels},
                     {"foreground_fraction", c.foreground_fraction},
                     {"lesion_voxels", c.lesion_voxels},
                     {"lesion_ml", ml},
                     {"channels_all", all},
                     {"channels_foreground", fg}});
  }
  return {{"format", "tumorlab-fingerprint"},
          {"version", f.version},
          {"dataset", f.dataset},
          {"root", f.root},
          {"file_ending", f.file_ending},
          {"labels", f.labels},
          {"num_cases", f.cases.size()},
          {"is_2d", f.is_2d},
          {"median_spacing_mm", f.median_spacing_mm},
          {"spacing_p10_mm", f.spacing_p10_mm},
          {"median_size", f.median_size},
          {"modality", f.modality},
          {"foreground",
           {{"cases_with_foreground", f.cases_with_foreground},
            {"mean_fraction", num(f.mean_foreground_fraction)},
            {"median_fraction_of_cases_with_foreground", num(f.median_foreground_fraction)}}},
          {"lesions",
           {{"connectivity", "full"},
            {"count", f.lesion_count},
            {"cases_with_lesions", f.cases_with_lesions},
            {"voxels", summary_json(f.lesion_voxels)},
            {"volume_ml", summary_json(f.lesion_ml)}}},
          {"channels", channels},
          {"cases", cases}};
}

namespace {
DatasetFingerprint parse_fingerprint(const json& j, const std::string& source) {
  if (!j.is_object() || j.value("format", "") != "tumorlab-fingerprint") {
    throw Error(ErrorCode::InvalidDataset, source + ": field 'format' must be \"tumorlab-fingerprint\"");
  }
  DatasetFingerprint f;
  f.version = get<int>(j, "version", source);
  if (f.version != kFingerprintVersion) {
    throw Error(ErrorCode::InvalidDataset, source + ".version: is " + std::to_string(f.version) +
                                               ", this tumorlab reads version " + std::to_string(kFingerprintVersion));
  }
  f.dataset = get<std::string>(j, "dataset", source);
  f.root = j.value("root", "");
  f.file_ending = get<std::string>(j, "file_ending", source);
  f.labels = get<std::map<std::string, int>>(j, "labels", source);
  f.is_2d = get<bool>(j, "is_2d", source);
  f.median_spacing_mm = get<Vec3>(j, "median_spacing_mm", source);
  f.spacing_p10_mm = get<Vec3>(j, "spacing_p10_mm", source);
  f.median_size = get<std::array<double, 3>>(j, "median_size", source);
  f.modality = j.value("modality", "");
  const json& fg = j.at("foreground");
  f.cases_with_foreground = get<int>(fg, "cases_with_foreground", source + ".foreground");
  f.mean_foreground_fraction = get_num(fg, "mean_fraction", source + ".foreground");
  f.median_foreground_fraction = get_num(fg, "median_fraction_of_cases_with_foreground", source + ".foreground");
  if (!j.contains("lesions")) throw Error(ErrorCode::InvalidDataset, source + ": missing field 'lesions'");
  const json& l = j.at("lesions");
  f.lesion_count = get<int64_t>(l, "count", source + ".lesions");
  f.cases_with_lesions = get<int>(l, "cases_with_lesions", source + ".lesions");
  f.lesion_voxels = summary_from(l.at("voxels"), source + ".lesions.voxels");
  f.lesion_ml = summary_from(l.at("volume_ml"), source + ".lesions.volume_ml");
  const json& chs = j.at("channels");
  if (!chs.is_array() || chs.empty())
    throw Error(ErrorCode::InvalidDataset, source + ".channels: expected a non-empty array");
  for (std::size_t i = 0; i < chs.size(); ++i) {
    const std::string w = source + ".channels[" + std::to_string(i) + "]";
    ChannelFingerprint c;
    c.name = get<std::string>(chs[i], "name", w);
    c.pixel_type = chs[i].value("pixel_type", "");
    c.all = stats_from(chs[i].at("all"), w + ".all");
    c.foreground = stats_from(chs[i].at("foreground"), w + ".foreground");
    f.channels.push_back(c);
  }
  if (j.contains("cases")) {
    const json& cs = j.at("cases");
    for (std::size_t i = 0; i < cs.size(); ++i) {
      const std::string w = source + ".cases[" + std::to_string(i) + "]";
      const json& cj = cs[i];
      CaseFingerprint c;
      c.id = get<std::string>(cj, "id", w);
      c.size = get<Size3>(cj, "size", w);
      c.spacing_mm = get<Vec3>(cj, "spacing_mm", w);
      c.pixel_type = cj.value("pixel_type", "");
      c.modality = cj.value("modality", "");
      c.foreground_voxels = get<int64_t>(cj, "foreground_voxels", w);
      c.foreground_fraction = get_num(cj, "foreground_fraction", w);
      c.lesion_voxels = get<std::vector<int64_t>>(cj, "lesion_voxels", w);
      for (const auto& v : cj.value("lesion_ml", json::array()))
        c.lesion_ml.push_back(v.is_number() ? v.get<double>() : kNaN);
      for (const auto& s : cj.value("channels_all", json::array())) c.all.push_back(stats_from(s, w + ".channels_all"));
      for (const auto& s : cj.value("channels_foreground", json::array()))
        c.foreground.push_back(stats_from(s, w + ".channels_foreground"));
      f.cases.push_back(std::move(c));
    }
  }
  return f;
}
}  // namespace

DatasetFingerprint fingerprint_from_json(const json& j, const std::string& source) {
  try {
    return parse_fingerprint(j, source);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, source + ": " + e.what());
  }
}

DatasetFingerprint load_fingerprint(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::FileNotFound, path.string() + ": cannot open fingerprint");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": not valid JSON: " + e.what());
  }
  return fingerprint_from_json(j, path.filename().string());
}

void save_fingerprint(const DatasetFingerprint& fingerprint, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << to_json(fingerprint).dump(1) << "\n";
    if (!out) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, path.string() + ": cannot write: " + ec.message());
}

}  // namespace tumorlab::model
