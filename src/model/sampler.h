#pragma once
// INTERNAL to src/model (no torch): patch sampling with foreground oversampling, data
// augmentation, and a bounded queue of batches filled by worker threads.
//
// Determinism: sample b of iteration i of epoch e draws every random number from its own
// generator seeded by (seed, e, i, b), so a batch does not depend on the number of workers, on
// their timing, or on where a run was interrupted and resumed.
//
// Spatial augmentation is one inverse-mapped resample per patch: for output voxel o the source
// position is centre + R(theta) * S * M * (o - (patch-1)/2) (+ an elastic displacement when
// planned), where M flips the mirrored axes, S scales (x, y, and z for 3D patches) and R rotates
// in the x-y plane. Images are sampled trilinearly, labels by nearest neighbour; positions
// outside the case read 0 (background). Without rotation/scale/elastic the patch is a plain copy.
// Intensity augmentation (per channel, each with plans.training.augmentation.probability):
// Gaussian noise (std ~ U(0, noise_std)), Gaussian blur (sigma ~ U(0.5, blur_sigma_max), in
// plane for 2D patches), multiplicative brightness (1 +- brightness), contrast around the mean
// (1 +- contrast, clipped to the patch's previous range), gamma (U(gamma_low, gamma_high)) on the
// patch rescaled to [0, 1], keeping mean and std.

#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "tumorlab/model/plans.h"
#include "tumorlab/model/training_data.h"

namespace tumorlab::model {

// A batch in tensor layout: image (B, C, Z, Y, X) float32, label (B, Z, Y, X) uint8 (x fastest).
// For 2D plans Z = 1 (the trainer drops that axis).
struct Batch {
  int64_t batch = 0, channels = 0;
  std::array<int64_t, 3> patch{1, 1, 1};  // x, y, z
  std::vector<float> image;
  std::vector<uint8_t> label;
  int64_t patch_voxels() const { return patch[0] * patch[1] * patch[2]; }
};

struct SampleSpec {
  const TrainingCase* source = nullptr;
  std::array<int64_t, 3> start{0, 0, 0};  // patch origin in the case (x, y, z), may be negative
  bool augment = false;
};

// Where a patch of `patch` voxels starts: centred on voxel `centre` (linear index) when
// centre >= 0, else uniformly at random; clamped so the patch stays inside the image where the
// image is large enough (and is centred on the image along axes where it is smaller).
std::array<int64_t, 3> patch_start(const Geometry& grid, const std::array<int64_t, 3>& patch, int64_t centre, Rng& rng);

// Extracts (and, when spec.augment, augments) one patch into image_out (C * (2 * context + 1) *
// patch voxels) and label_out (patch voxels). context > 0 (2D patches only, plans'
// network.context_slices): channel c's slices z - context .. z + context, in that order, become
// channels c * (2 * context + 1) + 0 .. 2 * context (clamped at the volume's ends), all warped by
// the patch's in-plane transform and given the same intensity augmentation; the label is slice z's.
void extract_patch(const SampleSpec& spec, const std::array<int64_t, 3>& patch, const AugmentationPlan& aug, Rng& rng,
                   float* image_out, uint8_t* label_out, int context = 0);

// One training batch: batch_size samples, the last round(batch_size * foreground_oversample)
// (at least one when the fraction is > 0) centred on a random foreground voxel of a random
// case that has foreground; the others on a random position of a random case.
Batch make_training_batch(const std::vector<const TrainingCase*>& cases, const Plans& plans, uint64_t seed, int epoch,
                          int iteration);

// Fixed validation patches: per case `per_case` patches (when the case has foreground, all but one
// centred on foreground voxels, the last at a random position), no augmentation, chosen with the
// seed; at most `max_patches` in all (cases are taken round-robin). Returned as batches of
// plans.batch_size (the last may be smaller).
std::vector<Batch> make_validation_batches(const std::vector<const TrainingCase*>& cases, const Plans& plans,
                                           uint64_t seed, int per_case, int max_patches);

// Fills a bounded queue with the batches of iterations [first, last) of one epoch on `workers`
// threads; next() hands them out in order. A worker's exception is rethrown by next().
class BatchLoader {
 public:
  BatchLoader(const std::vector<const TrainingCase*>& cases, const Plans& plans, uint64_t seed, int epoch, int first,
              int last, int workers, int capacity = 4);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;
  Batch next();

 private:
  void run();
  std::vector<const TrainingCase*> cases_;
  const Plans& plans_;
  uint64_t seed_;
  int epoch_, next_to_make_, next_to_take_, last_, capacity_;
  std::map<int, Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
};

}  // namespace tumorlab::model
