#include "tumorlab/model/training_data.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tumorlab/core/error.h"
#include "tumorlab/core/log.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/io/nnunet.h"
#include "tumorlab/model/preprocess.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tumorlab::model {

double Rng::normal() {
  double u1 = uniform();
  const double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  Rng r(seed ^ 0xA5A5A5A5DEADBEEFULL);
  uint64_t h = r.next();
  for (uint64_t v : {a, b, c}) {
    Rng s(h ^ (v * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL));
    h = s.next();
  }
  return h;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw Error(ErrorCode::IoFailure, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorCode::IoFailure, path.string() + ": cannot write: " + ec.message());
}

void index_foreground(TrainingCase& c) {
  c.foreground.clear();
  const uint8_t* l = c.label.data();
  const int64_t n = c.label.voxel_count();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += l[i] != 0;
  if (count == 0) return;
  const int64_t step = std::max<int64_t>(1, (count + static_cast<int64_t>(kMaxForegroundSamples) - 1) /
                                                static_cast<int64_t>(kMaxForegroundSamples));
  c.foreground.reserve(static_cast<std::size_t>(count / step + 1));
  int64_t seen = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (l[i] == 0) continue;
    if (seen++ % step == 0) c.foreground.push_back(i);
  }
}

std::vector<TrainingCase> load_training_cases(const fs::path& dataset, const Plans& plans, int threads,
                                              const std::function<void(int, int)>& progress) {
  const io::NnunetDataset ds = io::read_nnunet_dataset(dataset);
  if (ds.channel_names.size() != plans.channels.size()) {
    throw Error(ErrorCode::InvalidDataset, (dataset / "dataset.json").string() + ": the plans expect " +
                                               std::to_string(plans.channels.size()) + " channel(s), the dataset has " +
                                               std::to_string(ds.channel_names.size()));
  }
  for (const auto& [name, value] : ds.labels) {
    if (value >= plans.num_classes()) {
      throw Error(ErrorCode::InvalidDataset, (dataset / "dataset.json").string() + ": label '" + name + "' = " +
                                                 std::to_string(value) + " but the plans have " +
                                                 std::to_string(plans.num_classes()) + " classes");
    }
  }
  std::vector<const io::NnunetCase*> todo;
  for (const auto& c : ds.training) {
    if (!c.label.empty()) todo.push_back(&c);
  }
  if (todo.empty()) throw Error(ErrorCode::InvalidDataset, dataset.string() + ": no labelled training cases");
  std::vector<TrainingCase> cases(todo.size());
  std::atomic<std::size_t> next{0};
  std::atomic<int> done{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const uint8_t max_label = static_cast<uint8_t>(plans.num_classes() - 1);
  auto work = [&] {
    for (;;) {
      const std::size_t i = next++;
      if (i >= todo.size()) return;
      try {
        const io::NnunetCase& nc = *todo[i];
        std::vector<Volume> parts;
        for (const auto& p : nc.channels) parts.push_back(io::read_image(p));
        Volume image = parts.size() == 1 ? std::move(parts[0]) : Volume::stack_channels(parts);
        parts.clear();
        check_input(image, plans, nc.channels.front().filename().string());
        LabelMap label = io::read_label(nc.label, &image.geometry());
        if (label.max_label() > max_label) {
          throw Error(ErrorCode::InvalidLabel, nc.label.filename().string() + ": label " +
                                                   std::to_string(label.max_label()) + " found, the plans have labels 0.." +
                                                   std::to_string(max_label));
        }
        TrainingCase tc;
        tc.id = nc.id;
        tc.image = preprocess_image(image, plans);
        tc.label = preprocess_label(label, tc.image.geometry());
        index_foreground(tc);
        cases[i] = std::move(tc);
        ++done;
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = todo.size();
        return;
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(todo.size())));
  std::vector<std::thread> pool;
  std::atomic<int> running{n};
  for (int t = 0; t < n; ++t) pool.emplace_back([&] {
    work();
    --running;
  });
  // The calling thread reports progress while the pool reads.
  int reported = -1;
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int d = done;
    if (progress && d != reported) progress(reported = d, static_cast<int>(todo.size()));
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (progress && done != reported) progress(done, static_cast<int>(todo.size()));
  return cases;
}

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool is_date_or_visit(const std::string& part) {
  if (part.size() == 8 && all_digits(part)) {
    const int month = std::stoi(part.substr(4, 2)), day = std::stoi(part.substr(6, 2));
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
  }
  if (part.size() == 6 && all_digits(part)) {
    const int month = std::stoi(part.substr(2, 2)), day = std::stoi(part.substr(4, 2));
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
  }
  std::string lower;
  for (unsigned char c : part) lower.push_back(static_cast<char>(std::tolower(c)));
  if (lower == "baseline" || lower == "followup" || lower == "fu") return true;
  for (const char* tag : {"visit", "ses", "scan", "tp", "v", "t"}) {
    const std::string t(tag);
    if (lower.size() > t.size() && lower.compare(0, t.size(), t) == 0) {
      std::string rest = lower.substr(t.size());
      if (!rest.empty() && rest[0] == '-') rest = rest.substr(1);
      if (all_digits(rest) && rest.size() <= 3) return true;
    }
  }
  return false;
}

}  // namespace

std::string patient_id(const std::string& case_id) {
  std::string id = case_id;
  // ISO date at the end: ..._2001-02-08
  if (id.size() > 11) {
    const std::string tail = id.substr(id.size() - 10);
    const char sep = id[id.size() - 11];
    if ((sep == '_' || sep == '-') && all_digits(tail.substr(0, 4)) && tail[4] == '-' && all_digits(tail.substr(5, 2)) &&
        tail[7] == '-' && all_digits(tail.substr(8, 2))) {
      return id.substr(0, id.size() - 11);
    }
  }
  // Strip at most two trailing parts (date then visit, or visit then date).
  for (int round = 0; round < 2; ++round) {
    const std::size_t pos = id.find_last_of("_-");
    if (pos == std::string::npos || pos == 0) break;
    std::string part = id.substr(pos + 1);
    // "ses-01": the separator is inside the tag.
    if (all_digits(part) && pos >= 3) {
      const std::size_t prev = id.find_last_of("_-", pos - 1);
      const std::string tag = id.substr(prev == std::string::npos ? 0 : prev + 1, pos - (prev == std::string::npos ? 0 : prev + 1));
      if (id[pos] == '-' && (tag == "ses" || tag == "visit" || tag == "tp") && prev != std::string::npos) {
        id = id.substr(0, prev);
        continue;
      }
    }
    if (!is_date_or_visit(part)) break;
    id = id.substr(0, pos);
  }
  return id.empty() ? case_id : id;
}

namespace {

// Cases grouped by patient; a patient has foreground when any of its cases has.
struct Patients {
  std::map<std::string, std::vector<std::string>> cases_of;
  std::vector<std::string> strata[2];  // patients without / with foreground, sorted
};

Patients group_by_patient(const std::vector<std::string>& case_ids, const std::vector<bool>& has_foreground) {
  if (case_ids.size() != has_foreground.size()) throw Error(ErrorCode::Internal, "split: size mismatch");
  Patients out;
  std::map<std::string, bool> fg_of;
  for (std::size_t i = 0; i < case_ids.size(); ++i) {
    const std::string p = patient_id(case_ids[i]);
    out.cases_of[p].push_back(case_ids[i]);
    fg_of[p] = fg_of[p] || has_foreground[i];
  }
  for (const auto& [p, fg] : fg_of) out.strata[fg ? 1 : 0].push_back(p);  // sorted by the map
  return out;
}

// Fisher-Yates with our own generator: the same order on every platform.
void shuffle(std::vector<std::string>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<std::size_t>(rng.below(static_cast<int64_t>(i)))]);
}

// The cases of `val_patients` to validation, the others to train, both sorted.
Split assemble(const Patients& patients, const std::set<std::string>& val_patients, uint64_t seed) {
  Split split;
  split.seed = seed;
  for (const auto& [p, ids] : patients.cases_of) {
    auto& side = val_patients.count(p) ? split.validation : split.train;
    side.insert(side.end(), ids.begin(), ids.end());
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

}  // namespace

Split make_split(const std::vector<std::string>& case_ids, const std::vector<bool>& has_foreground, double fraction,
                 uint64_t seed, int validation_patients) {
  if (!(fraction >= 0 && fraction < 1)) {
    throw Error(ErrorCode::BadArgument, "validation fraction must be in [0, 1), is " + std::to_string(fraction));
  }
  Patients patients = group_by_patient(case_ids, has_foreground);
  const std::size_t total = patients.cases_of.size();
  Rng rng(mix_seed(seed, 0x5917));
  std::set<std::string> val_patients;
  for (auto& s : patients.strata) {
    shuffle(s, rng);
    if (s.size() < 2) continue;
    double want = validation_patients > 0
                      ? static_cast<double>(validation_patients) * static_cast<double>(s.size()) / static_cast<double>(total)
                      : fraction * static_cast<double>(s.size());
    if (fraction == 0 && validation_patients <= 0) continue;
    std::size_t n = static_cast<std::size_t>(std::llround(want));
    n = std::max<std::size_t>(1, std::min(n, s.size() - 1));
    for (std::size_t i = 0; i < n; ++i) val_patients.insert(s[i]);
  }
  return assemble(patients, val_patients, seed);
}

Split make_fold(const std::vector<std::string>& case_ids, const std::vector<bool>& has_foreground, int folds, int fold,
                uint64_t seed) {
  if (folds < 2 || fold < 0 || fold >= folds) {
    throw Error(ErrorCode::BadArgument, "cross-validation needs folds >= 2 and 0 <= fold < folds, got fold " +
                                            std::to_string(fold) + " of " + std::to_string(folds));
  }
  Patients patients = group_by_patient(case_ids, has_foreground);
  if (patients.cases_of.size() < static_cast<std::size_t>(folds)) {
    throw Error(ErrorCode::BadArgument, "cross-validation: " + std::to_string(patients.cases_of.size()) +
                                            " training patients cannot fill " + std::to_string(folds) + " folds");
  }
  Rng rng(mix_seed(seed, 0xf01d));
  std::set<std::string> val_patients;
  std::size_t dealt = 0;  // continues across strata, so the folds' totals stay balanced too
  for (auto& s : patients.strata) {
    shuffle(s, rng);
    for (const auto& p : s) {
      if (dealt++ % static_cast<std::size_t>(folds) == static_cast<std::size_t>(fold)) val_patients.insert(p);
    }
  }
  Split split = assemble(patients, val_patients, seed);
  split.folds = folds;
  split.fold = fold;
  return split;
}

json to_json(const Split& split) {
  json j = {{"format", "tumorlab-split"},
            {"seed", split.seed},
            {"rule", "by patient (case id without a trailing date/visit part), stratified by foreground"},
            {"train", split.train},
            {"validation", split.validation}};
  if (split.folds > 0) {
    j["folds"] = split.folds;
    j["fold"] = split.fold;
    j["rule"] = "fold " + std::to_string(split.fold) + " of a " + std::to_string(split.folds) +
                "-fold cross-validation of the training patients of a split (its validation patients left out), "
                "by patient, stratified by foreground";
  }
  return j;
}

Split load_split(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::FileNotFound, path.string() + ": cannot open split file");
  Split s;
  try {
    const json j = json::parse(in);
    if (!j.is_object() || !j.contains("train") || !j.contains("validation")) {
      throw Error(ErrorCode::InvalidDataset,
                  path.string() + ": expected an object with arrays 'train' and 'validation'");
    }
    s.train = j.at("train").get<std::vector<std::string>>();
    s.validation = j.at("validation").get<std::vector<std::string>>();
    s.seed = j.value("seed", uint64_t{0});
    s.folds = j.value("folds", 0);
    s.fold = j.value("fold", 0);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidDataset, path.string() + ": " + e.what());
  }
  return s;
}

void save_split(const Split& split, const fs::path& path) { write_text_atomic(path, to_json(split).dump(2) + "\n"); }

}  // namespace tumorlab::model
