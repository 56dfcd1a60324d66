#pragma once
// INTERNAL to src/model (no torch): the training set in memory and the fixed split by patient.
//
// Cases are preprocessed once (preprocess_image / preprocess_label, from plans.json) and kept as
// float32 images (channel-planar, as Volume) and uint8 labels on the same grid. For foreground
// oversampling each case keeps the linear indices of (up to kMaxForegroundSamples, evenly
// strided) foreground voxels per foreground class.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::model {

inline constexpr std::size_t kMaxForegroundSamples = 20000;

struct TrainingCase {
  std::string id;
  Volume image;   // float32, plans.channels.size() channels
  LabelMap label; // on image's grid
  std::vector<int64_t> foreground;  // linear voxel indices of (a subset of) the foreground voxels
  bool has_foreground() const { return !foreground.empty(); }
};

// Reads an nnU-Net raw dataset (io::read_nnunet_dataset), checks that its channels match the
// plans, and preprocesses every labelled training case. `only` (if not empty) restricts the
// cases read. `progress(done, total)` is called on the calling thread. Errors: InvalidDataset
// (naming the file and the mismatch), FileNotFound, reader errors.
std::vector<TrainingCase> load_training_cases(const std::filesystem::path& dataset, const Plans& plans,
                                              int threads = 1,
                                              const std::function<void(int, int)>& progress = {});

// Builds the foreground index list of a case (label > 0), at most kMaxForegroundSamples,
// evenly strided so that big tumours are sampled across their extent.
void index_foreground(TrainingCase& c);

// Patient of a case id: the id without a trailing date or visit part, so that several scans of
// one patient land on the same side of the split. A trailing "_" or "-" separated part is
// dropped when it is an 8-digit date (YYYYMMDD, "TCGA_CS_4941_19960909" -> "TCGA_CS_4941"), a
// 6-digit date, an ISO date (2001-02-08), or a visit/time-point tag ("v2", "visit3", "tp1",
// "t0", "ses-01", "scan2", "followup", "baseline"). Everything else is kept ("patient_001").
std::string patient_id(const std::string& case_id);

struct Split {
  std::vector<std::string> train, validation;
  uint64_t seed = 0;
  int folds = 0, fold = 0;  // folds > 0: fold `fold` of a cross-validation (make_fold)
};

// Fixed split by patient, seeded and platform-independent (own PRNG, own shuffle). Patients are
// stratified by whether any of their cases has foreground: each stratum with at least two
// patients gives round(fraction * n) (at least 1, at most n-1) patients to validation, so the
// validation set holds cases with and without foreground when the dataset has both.
// `validation_patients` > 0 sets the total number of validation patients instead of the fraction
// (shared across strata in proportion). Case lists are sorted.
Split make_split(const std::vector<std::string>& case_ids, const std::vector<bool>& has_foreground, double fraction,
                 uint64_t seed, int validation_patients = 0);

// Cross-validation inside `case_ids` (the training cases of an outer split, whose validation
// patients stay out of every fold): patients are stratified by foreground, shuffled with `seed`
// and dealt to `folds` folds in turn, so fold sizes differ by at most one patient per stratum.
// Returns fold `fold` as validation and the other folds as train (sorted). Errors: BadArgument
// (folds < 2, fold outside [0, folds), fewer patients than folds).
Split make_fold(const std::vector<std::string>& case_ids, const std::vector<bool>& has_foreground, int folds, int fold,
                uint64_t seed);

nlohmann::json to_json(const Split& split);
// Errors: FileNotFound, InvalidDataset (naming the file and field).
Split load_split(const std::filesystem::path& path);
void save_split(const Split& split, const std::filesystem::path& path);

// splitmix64: small, fast, platform-independent.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t below(int64_t n) { return n <= 0 ? 0 : static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform() < p; }
  double normal();  // Box-Muller
};

// Seed mixing for (seed, a, b, c) so every sample has its own stream.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

// Writes text atomically (temp file in the same folder, then rename). Error IoFailure.
void write_text_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace tumorlab::model
