// Training: split by patient, loss, sampling, a smoke run that must learn, resume, export.
#include "tumorlab/model/trainer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>
#include <map>
#include <set>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/model/predictor.h"
#include "tumorlab/model/bundle.h"
#include "tumorlab/model/loss.h"
#include "tumorlab/model/sampler.h"
#include "tumorlab/model/training_data.h"
#include "tumorlab/model/unet.h"

using namespace tumorlab;
using namespace tumorlab::model;
namespace fs = std::filesystem;

namespace {

// nnU-Net raw dataset of `n` 64x64 PNGs: 1-3 bright discs of random radius on noise (labels =
// discs); every fourth case has no disc (a "control").
void write_disc_dataset(const fs::path& root, int n, unsigned seed = 7) {
  fs::create_directories(root / "imagesTr");
  fs::create_directories(root / "labelsTr");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 18);
  for (int c = 0; c < n; ++c) {
    Geometry g;
    g.size = {64, 64, 1};
    Volume img(g, PixelType::UInt8);
    LabelMap lab(g);
    const int discs = c % 4 == 3 ? 0 : 1 + static_cast<int>(u(rng) * 3);
    for (int d = 0; d < discs; ++d) {
      const double r = 4 + u(rng) * 7, cx = 10 + u(rng) * 44, cy = 10 + u(rng) * 44;
      for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x)
          if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) lab.at(x, y, 0) = 1;
    }
    uint8_t* v = img.data<uint8_t>();
    for (int64_t i = 0; i < g.voxel_count(); ++i) {
      const double base = lab.data()[i] ? 150 : 80;
      v[i] = static_cast<uint8_t>(std::clamp(base + noise(rng), 1.0, 255.0));
    }
    char id[32];
    std::snprintf(id, sizeof id, "disc_%03d", c);
    io::write_image(img, root / "imagesTr" / (std::string(id) + "_0000.png"));
    io::write_label(lab, root / "labelsTr" / (std::string(id) + ".png"));
  }
  std::ofstream(root / "dataset.json") << R"({"name": "Discs", "channel_names": {"0": "synthetic"},
    "labels": {"background": 0, "disc": 1}, "numTraining": )"
                                       << n << R"(, "file_ending": ".png"})";
}

Plans disc_plans() {
  Plans p;
  p.name = "discs-2d";
  ChannelPlan ch;
  ch.name = "synthetic";
  ch.normalization.scheme = imaging::NormalizationScheme::ZScore;
  p.channels = {ch};
  p.labels = {{"background", 0}, {"disc", 1}};
  p.file_ending = ".png";
  p.patch_size = {48, 48, 1};
  p.batch_size = 4;
  p.network.dims = 2;
  p.network.features = {8, 16, 32};
  p.network.strides = {{2, 2, 1}, {2, 2, 1}};
  p.network.deep_supervision = true;
  p.training.epochs = 24;
  p.training.iterations_per_epoch = 5;
  p.training.learning_rate = 0.02;
  p.training.momentum = 0.9;
  p.training.seed = 3;
  return p;
}

struct DiscRun {
  tumorlab::testing::TempDir dir;
  fs::path dataset, plans;
  explicit DiscRun(const Plans& p = disc_plans(), int cases = 12) {
    dataset = dir / "Dataset900_Discs";
    write_disc_dataset(dataset, cases);
    plans = dir / "plans.json";
    save_plans(p, plans);
  }
  TrainOptions options(const std::string& out) const {
    TrainOptions o;
    o.dataset = dataset;
    o.plans = plans;
    o.output = dir / out;
    o.threads = 2;
    o.workers = 2;
    return o;
  }
};

// train_loss and val_dice of every epoch, from last/state.json.
std::vector<double> history(const fs::path& run) {
  std::ifstream in(run / "last" / "state.json");
  const auto j = nlohmann::json::parse(in);
  std::vector<double> d;
  for (const auto& e : j["history"]) d.push_back(e["train_loss"].get<double>()), d.push_back(e["val_dice"].get<double>());
  return d;
}

// Trains run `out` (with `plans`, default the run's) to its end and exports its last checkpoint
// as bundle `bundle`.
fs::path trained_bundle(const DiscRun& r, const std::string& out, const std::string& bundle, const fs::path& plans = {}) {
  TrainOptions o = r.options(out);
  if (!plans.empty()) o.plans = plans;
  EXPECT_TRUE(train(o).finished);
  export_bundle(r.dir / out, r.dir / bundle, "last");
  return r.dir / bundle;
}

// Starts run `out` initialised from `bundle` (none: random) and stops it before its first
// iteration, so last/model.pt holds the starting weights.
void start_and_stop(const DiscRun& r, const std::string& out, const fs::path& bundle, const fs::path& plans = {}) {
  std::atomic<bool> cancel{true};
  TrainOptions o = r.options(out);
  if (!plans.empty()) o.plans = plans;
  o.init_from = bundle;
  o.cancel = &cancel;
  EXPECT_TRUE(train(o).cancelled);
}

}  // namespace

TEST(TrainerSplit, PatientId_DropsTrailingDateOrVisit) {
  EXPECT_EQ(patient_id("TCGA_CS_4941_19960909"), "TCGA_CS_4941");
  EXPECT_EQ(patient_id("patient_001"), "patient_001");
  EXPECT_EQ(patient_id("control_042"), "control_042");
  EXPECT_EQ(patient_id("case7_v2"), "case7");
  EXPECT_EQ(patient_id("sub01_ses-02"), "sub01");
  EXPECT_EQ(patient_id("liver_3_2001-02-08"), "liver_3");
  EXPECT_EQ(patient_id("P12_baseline"), "P12");
  EXPECT_EQ(patient_id("19960909"), "19960909");
}

TEST(TrainerSplit, GroupsPatients_StratifiesForeground_StableForSeed) {
  std::vector<std::string> ids;
  std::vector<bool> fg;
  for (int i = 0; i < 20; ++i) ids.push_back("patient_" + std::to_string(100 + i)), fg.push_back(true);
  for (int i = 0; i < 30; ++i) ids.push_back("control_" + std::to_string(100 + i)), fg.push_back(false);
  for (const char* visit : {"19960909", "19970101", "19980202"}) {
    for (int p = 0; p < 4; ++p) ids.push_back("TCGA_CS_49" + std::to_string(p) + "_" + visit), fg.push_back(p % 2 == 0);
  }
  const Split a = make_split(ids, fg, 0.2, 42);
  const Split b = make_split(ids, fg, 0.2, 42);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.train.size() + a.validation.size(), ids.size());
  // Strata: 22 patients with foreground (20 + 2 TCGA), 32 without (30 + 2 TCGA).
  std::set<std::string> val_fg, val_without;
  for (const auto& id : a.validation) {
    const bool has = fg[static_cast<std::size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin())];
    (has ? val_fg : val_without).insert(patient_id(id));
  }
  EXPECT_EQ(val_fg.size(), 4u);       // round(0.2 * 22)
  EXPECT_EQ(val_without.size(), 6u);  // round(0.2 * 32)
  // Every scan of one patient is on one side.
  for (int p = 0; p < 4; ++p) {
    const std::string prefix = "TCGA_CS_49" + std::to_string(p) + "_";
    int in_val = 0;
    for (const auto& id : a.validation) in_val += id.rfind(prefix, 0) == 0;
    EXPECT_TRUE(in_val == 0 || in_val == 3) << prefix << " split across sides";
  }
  const Split c = make_split(ids, fg, 0.2, 43);
  EXPECT_NE(a.validation, c.validation);
  // Round trip through split.json.
  tumorlab::testing::TempDir dir;
  save_split(a, dir / "split.json");
  const Split d = load_split(dir / "split.json");
  EXPECT_EQ(d.validation, a.validation);
  EXPECT_EQ(d.seed, 42u);
}

// make_fold: every patient validates in exactly one fold, all scans of a patient together, folds
// balanced per stratum, reproducible for a seed; bad fold numbers refused.
TEST(TrainerSplit, Folds_PartitionPatients_Balanced_Stable) {
  std::vector<std::string> ids;
  std::vector<bool> fg;
  for (int i = 0; i < 17; ++i) ids.push_back("patient_" + std::to_string(100 + i)), fg.push_back(true);
  for (int i = 0; i < 11; ++i) ids.push_back("control_" + std::to_string(100 + i)), fg.push_back(false);
  for (const char* visit : {"19960909", "19970101"}) {
    for (int p = 0; p < 3; ++p) ids.push_back("TCGA_CS_49" + std::to_string(p) + "_" + visit), fg.push_back(true);
  }
  std::map<std::string, int> validated;  // case -> times in a validation fold
  for (int k = 0; k < 5; ++k) {
    const Split f = make_fold(ids, fg, 5, k, 42);
    EXPECT_EQ(f.folds, 5);
    EXPECT_EQ(f.fold, k);
    EXPECT_EQ(f.train.size() + f.validation.size(), ids.size());
    std::set<std::string> val_patients, train_patients;
    int val_fg = 0;
    for (const auto& id : f.validation) {
      ++validated[id];
      val_patients.insert(patient_id(id));
      val_fg += id.rfind("control_", 0) != 0;
    }
    for (const auto& id : f.train) train_patients.insert(patient_id(id));
    for (const auto& p : val_patients) EXPECT_EQ(train_patients.count(p), 0u) << p << " on both sides";
    // 20 patients with foreground, 11 without: 4 each, and 2 or 3 controls per fold.
    EXPECT_GE(val_patients.size(), 6u);
    EXPECT_LE(val_patients.size(), 7u);
    EXPECT_EQ(make_fold(ids, fg, 5, k, 42).validation, f.validation);
  }
  EXPECT_EQ(validated.size(), ids.size());
  for (const auto& [id, n] : validated) EXPECT_EQ(n, 1) << id;
  EXPECT_NE(make_fold(ids, fg, 5, 0, 42).validation, make_fold(ids, fg, 5, 0, 43).validation);
  EXPECT_THROW(make_fold(ids, fg, 5, 5, 42), Error);
  EXPECT_THROW(make_fold(ids, fg, 1, 0, 42), Error);
  EXPECT_THROW(make_fold({"a_1", "b_1"}, {true, false}, 3, 0, 42), Error);
  // Recorded in split.json.
  tumorlab::testing::TempDir dir;
  save_split(make_fold(ids, fg, 5, 3, 42), dir / "split.json");
  const Split back = load_split(dir / "split.json");
  EXPECT_EQ(back.folds, 5);
  EXPECT_EQ(back.fold, 3);
}

TEST(TrainerLoss, HandComputedDiceCe_PerfectNearZero_WrongHigh) {
  // 1 x 2 classes x 2 x 2; target has 2 foreground voxels of 4.
  const torch::Tensor target = torch::tensor({0, 1, 1, 0}, torch::kLong).view({1, 2, 2});
  // All-zero logits: p = 0.5 everywhere. Soft TP = 1, FP = 1, FN = 1 -> Dice 0.5 -> dice loss 0.5;
  // cross-entropy = ln 2.
  const torch::Tensor zero = torch::zeros({1, 2, 2, 2});
  EXPECT_NEAR(segmentation_loss(zero, target, {}).item<double>(), 0.5 + std::log(2.0), 1e-5);
  EXPECT_NEAR(dice_loss(zero, target).item<double>(), 0.5, 1e-5);
  const torch::Tensor onehot = torch::one_hot(target, 2).permute({0, 3, 1, 2}).to(torch::kFloat);
  const torch::Tensor perfect = (onehot * 2 - 1) * 20;  // +-20 logits
  const torch::Tensor wrong = -perfect;
  EXPECT_LT(segmentation_loss(perfect, target, {}).item<double>(), 1e-4);
  EXPECT_GT(segmentation_loss(wrong, target, {}).item<double>(), 10.0);  // CE ~ 40, Dice loss ~ 1
  LossOptions focal{"dice_focal"};
  EXPECT_LT(segmentation_loss(perfect, target, focal).item<double>(), 1e-4);
  EXPECT_NEAR(segmentation_loss(zero, target, focal).item<double>(), 0.5 + 0.25 * std::log(2.0), 1e-5);
  // Deep supervision: a perfect coarse output (nearest-downsampled target) keeps the loss ~0.
  const torch::Tensor coarse_target = target.index({torch::indexing::Slice(), torch::indexing::Slice(0, 1),
                                                    torch::indexing::Slice(0, 1)});
  const torch::Tensor coarse = (torch::one_hot(coarse_target, 2).permute({0, 3, 1, 2}).to(torch::kFloat) * 2 - 1) * 20;
  EXPECT_LT(deep_supervision_loss({perfect, coarse}, target, {}).item<double>(), 1e-4);
  // Weights 2/3 and 1/3.
  EXPECT_NEAR(deep_supervision_loss({zero, coarse}, target, {}).item<double>(), 2.0 / 3.0 * (0.5 + std::log(2.0)),
              1e-4);
}

TEST(TrainerSampler, BatchesReproduceAndOversampleForeground) {
  DiscRun r;
  const Plans plans = load_plans(r.plans);
  auto cases = load_training_cases(r.dataset, plans, 2);
  ASSERT_EQ(cases.size(), 12u);
  std::vector<const TrainingCase*> ptrs;
  for (const auto& c : cases) ptrs.push_back(&c);
  const Batch a = make_training_batch(ptrs, plans, 5, 1, 2);
  const Batch b = make_training_batch(ptrs, plans, 5, 1, 2);
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.label, b.label);
  // The last sample (round(4 * 0.33) = 1) is centred on foreground: the patch holds some.
  for (int it = 0; it < 10; ++it) {
    const Batch c = make_training_batch(ptrs, plans, 5, 0, it);
    const int64_t pv = c.patch_voxels();
    int64_t fg = 0;
    for (int64_t i = 3 * pv; i < 4 * pv; ++i) fg += c.label[static_cast<std::size_t>(i)];
    EXPECT_GT(fg, 0) << "iteration " << it;
  }
  // The loader hands out the same batches whatever the number of workers.
  BatchLoader one(ptrs, plans, 5, 1, 0, 6, 1), three(ptrs, plans, 5, 1, 0, 6, 3);
  for (int it = 0; it < 6; ++it) {
    const Batch x = one.next(), y = three.next();
    EXPECT_EQ(x.image, y.image) << it;
    EXPECT_EQ(x.label, y.label) << it;
  }
}

// plans.network.context_slices: a 2D patch carries the neighbouring slices of every channel as
// extra channels (clamped at the volume's ends), warped by the same in-plane transform; the
// label is the centre slice's.
TEST(TrainerSampler, ContextSlices_NeighboursAsChannels_SameWarp) {
  TrainingCase tc;
  tc.id = "ctx";
  Geometry g;
  g.size = {20, 16, 5};
  tc.image = Volume(g, PixelType::Float32, 2);
  tc.label = LabelMap(g);
  const int64_t nv = g.voxel_count();
  for (int c = 0; c < 2; ++c)
    for (int64_t z = 0; z < 5; ++z)
      for (int64_t y = 0; y < 16; ++y)
        for (int64_t x = 0; x < 20; ++x) {
          const int64_t i = (z * 16 + y) * 20 + x;
          tc.image.data<float>()[c * nv + i] = static_cast<float>(1000 * c + 100 * z + (x * 7 + y * 3) % 50);
          tc.label.data()[i] = static_cast<uint8_t>(z);
        }
  const std::array<int64_t, 3> patch{12, 10, 1};
  const int64_t pv = 120;
  AugmentationPlan none;
  auto extract = [&](int64_t z, int context, bool augment, const AugmentationPlan& aug, uint64_t seed) {
    SampleSpec spec;
    spec.source = &tc;
    spec.start = {3, 2, z};
    spec.augment = augment;
    Rng rng(seed);
    std::vector<float> img(static_cast<std::size_t>(2 * (2 * context + 1) * pv));
    std::vector<uint8_t> lab(static_cast<std::size_t>(pv));
    extract_patch(spec, patch, aug, rng, img.data(), lab.data(), context);
    return std::make_pair(img, lab);
  };
  // No augmentation: channel c * 3 + (dz + 1) is slice z + dz of channel c, clamped at the ends.
  for (int64_t z : {0, 2, 4}) {
    const auto [img, lab] = extract(z, 1, false, none, 1);
    for (int c = 0; c < 2; ++c)
      for (int dz = -1; dz <= 1; ++dz) {
        const int64_t zz = std::clamp<int64_t>(z + dz, 0, 4);
        for (int64_t o = 0; o < pv; ++o) {
          const int64_t x = 3 + o % 12, y = 2 + o / 12;
          ASSERT_EQ(img[static_cast<std::size_t>((c * 3 + dz + 1) * pv + o)],
                    static_cast<float>(1000 * c + 100 * zz + (x * 7 + y * 3) % 50))
              << "z " << z << " c " << c << " dz " << dz;
        }
      }
    for (uint8_t l : lab) ASSERT_EQ(l, z);
  }
  // Rotated, scaled, mirrored (no intensity change): every slice channel equals that slice
  // extracted alone with the same random draws.
  AugmentationPlan spatial;
  spatial.probability = 1;
  spatial.rotation_deg = 40;
  spatial.noise_std = spatial.blur_sigma_max = spatial.brightness = spatial.contrast = spatial.gamma_high = 0;
  const auto [img, lab] = extract(2, 1, true, spatial, 11);
  int64_t changed = 0;
  for (int dz = -1; dz <= 1; ++dz) {
    const auto [alone, alone_lab] = extract(2 + dz, 0, true, spatial, 11);
    for (int c = 0; c < 2; ++c) {
      for (int64_t o = 0; o < pv; ++o) {
        ASSERT_FLOAT_EQ(img[static_cast<std::size_t>((c * 3 + dz + 1) * pv + o)],
                        alone[static_cast<std::size_t>(c * pv + o)])
            << "dz " << dz;
      }
    }
    if (dz == 0) {
      EXPECT_EQ(lab, alone_lab);
    }
  }
  const auto [plain, plain_lab] = extract(2, 1, false, none, 11);
  for (std::size_t i = 0; i < img.size(); ++i) changed += img[i] != plain[i];
  EXPECT_GT(changed, static_cast<int64_t>(img.size() / 4)) << "the augmentation did not transform the patch";
  // Batches carry the widened channels.
  Plans plans = disc_plans();
  plans.patch_size = {12, 10, 1};
  plans.network.features = {8, 16};
  plans.network.strides = {{2, 2, 1}};
  plans.network.context_slices = 1;
  index_foreground(tc);
  const Batch b = make_training_batch({&tc}, plans, 5, 0, 0);
  EXPECT_EQ(b.channels, 6);
  EXPECT_EQ(b.image.size(), static_cast<std::size_t>(plans.batch_size * 6 * pv));
  // 3D patches take no context.
  SampleSpec spec;
  spec.source = &tc;
  Rng rng(1);
  std::vector<float> img3(static_cast<std::size_t>(2 * 3 * 12 * 10 * 2));
  std::vector<uint8_t> lab3(static_cast<std::size_t>(12 * 10 * 2));
  EXPECT_THROW(extract_patch(spec, {12, 10, 2}, none, rng, img3.data(), lab3.data(), 1), Error);
}

TEST(Trainer, SmokeRun_LearnsDiscs) {
  DiscRun r;
  TrainOptions o = r.options("run");
  std::vector<EpochReport> reports;
  o.on_epoch = [&](const EpochReport& e) { reports.push_back(e); };
  const TrainResult res = train(o);
  EXPECT_TRUE(res.finished);
  EXPECT_EQ(res.epochs_done, 24);
  ASSERT_EQ(reports.size(), 24u);
  std::string dices;
  for (const auto& e : reports) dices += std::to_string(e.val_dice) + " ";
  std::printf("pseudo Dice per epoch: %s(%.2f s/epoch)\n", dices.c_str(), reports.back().epoch_seconds);
  // Seeded and reproducible (same thread count): measured 0.19 after epoch 1 (5 iterations) and
  // 0.95 after epoch 24 (120 iterations, ~3 s on 2 idle cores).
  EXPECT_LT(reports.front().val_dice, 0.4) << dices;
  EXPECT_GT(reports.back().val_dice, 0.85) << dices;
  EXPECT_GT(reports.back().val_dice, reports.front().val_dice + 0.4) << dices;
  EXPECT_LT(reports.back().train_loss, reports.front().train_loss);
  EXPECT_TRUE(fs::exists(r.dir / "run" / "best" / "model.pt"));
  EXPECT_TRUE(fs::exists(r.dir / "run" / "last" / "optimizer.pt"));
  EXPECT_TRUE(fs::exists(r.dir / "run" / "split.json"));
  EXPECT_TRUE(fs::exists(r.dir / "run" / "log.csv"));

  // Export: a bundle the predictor can read.
  export_bundle(r.dir / "run", r.dir / "bundle", "best");
  const BundleMetadata meta = read_bundle_metadata(r.dir / "bundle");
  EXPECT_EQ(meta.name, "discs-2d");
  EXPECT_EQ(meta.channels, std::vector<std::string>{"synthetic"});
  EXPECT_GT(meta.training.at("best_pseudo_dice_ema").get<double>(), 0.3);
  UNet net(unet_config_from_plans(load_plans(r.dir / "bundle" / "plans.json")));
  torch::load(net, (r.dir / "bundle" / "model.pt").string());
  EXPECT_THROW(export_bundle(r.dir / "nothing", r.dir / "b2"), Error);
}

TEST(Trainer, ResumeAfterCancel_MatchesUninterruptedRun) {
  Plans p = disc_plans();
  p.training.epochs = 3;
  p.training.iterations_per_epoch = 4;
  DiscRun r(p);
  const TrainResult full = train(r.options("full"));
  ASSERT_TRUE(full.finished);

  // Cancelled before the first iteration: last/ holds the seeded initial state.
  std::atomic<bool> cancel{true};
  TrainOptions o = r.options("cut");
  o.cancel = &cancel;
  const TrainResult none = train(o);
  EXPECT_TRUE(none.cancelled);
  EXPECT_EQ(none.epochs_done, 0);
  EXPECT_TRUE(fs::exists(r.dir / "cut" / "last" / "state.json"));
  cancel = false;
  o.on_epoch = [&](const EpochReport& e) {
    if (e.epoch == 1) cancel = true;  // stops at the first iteration of epoch 2
  };
  const TrainResult cut = train(o);
  EXPECT_TRUE(cut.cancelled);
  EXPECT_FALSE(cut.finished);
  EXPECT_EQ(cut.epochs_done, 1);
  EXPECT_TRUE(fs::exists(r.dir / "cut" / "last" / "model.pt"));

  cancel = false;
  std::vector<int> resumed_epochs;
  o.on_epoch = [&](const EpochReport& e) { resumed_epochs.push_back(e.epoch); };
  const TrainResult rest = train(o);
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(rest.epochs_done, 3);
  EXPECT_EQ(resumed_epochs, (std::vector<int>{2, 3}));
  const auto a = history(r.dir / "full"), b = history(r.dir / "cut");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  // Same seeds, same threads, same weights and optimiser state: the resumed run reproduces the
  // uninterrupted one exactly (train loss and pseudo Dice of every epoch).
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "value " << i;

  // Resuming a finished run does nothing more.
  EXPECT_EQ(train(o).epochs_done, 3);
}

// An exported bundle keeps float16 weights (about half the float32 checkpoint) and still loads
// into a Predictor.
TEST(Trainer, ExportBundle_Float16WeightsLoad) {
  Plans p = disc_plans();
  p.training.epochs = 1;
  p.training.iterations_per_epoch = 2;
  DiscRun r(p);
  ASSERT_TRUE(train(r.options("run")).finished);
  const fs::path bundle = r.dir / "bundle";
  export_bundle(r.dir / "run", bundle, "last");
  EXPECT_LT(fs::file_size(bundle / "model.pt"), fs::file_size(r.dir / "run" / "last" / "model.pt") * 3 / 4);
  const Predictor predictor = Predictor::load(bundle);
  EXPECT_EQ(predictor.plans().channels.size(), p.channels.size());
  // The same checkpoint as a float32 bundle: predictions must agree up to float16 rounding.
  const fs::path bundle32 = r.dir / "bundle32";
  fs::create_directories(bundle32);
  fs::copy_file(r.dir / "run" / "last" / "model.pt", bundle32 / "model.pt");
  fs::copy_file(bundle / "plans.json", bundle32 / "plans.json");
  BundleMetadata md = read_bundle_metadata(bundle);
  EXPECT_EQ(md.training.value("weights_dtype", ""), "float16");
  md.training["weights_dtype"] = "float32";
  write_bundle_metadata(md, bundle32);
  const Predictor predictor32 = Predictor::load(bundle32);
  const Volume image = io::read_image(r.dataset / "imagesTr" / "disc_000_0000.png");
  const Prediction a = predictor.predict(image), b = predictor32.predict(image);
  ASSERT_EQ(a.probability.geometry().voxel_count(), b.probability.geometry().voxel_count());
  double max_diff = 0;
  for (int64_t i = 0; i < a.probability.geometry().voxel_count(); ++i)
    max_diff = std::max(max_diff, std::abs(double(a.probability.data<float>()[i]) - b.probability.data<float>()[i]));
  EXPECT_LT(max_diff, 0.02);
}

// --init-from: a new run starts from a bundle's weights (here: before its first iteration, last/
// holds exactly the bundle's weights up to float16 rounding, not a fresh random network); a
// bundle with other channels is refused by name.
TEST(Trainer, InitFromBundle_StartsFromItsWeights_OtherChannelsRefused) {
  Plans p = disc_plans();
  p.training.epochs = 1;
  p.training.iterations_per_epoch = 8;
  DiscRun r(p);
  const fs::path bundle = trained_bundle(r, "first", "bundle");
  start_and_stop(r, "second", bundle);
  start_and_stop(r, "fresh", {});
  UNet from_bundle(unet_config_from_plans(p)), started(unet_config_from_plans(p)), fresh(unet_config_from_plans(p));
  torch::load(from_bundle, (r.dir / "first" / "last" / "model.pt").string());
  torch::load(started, (r.dir / "second" / "last" / "model.pt").string());
  torch::load(fresh, (r.dir / "fresh" / "last" / "model.pt").string());
  const auto a = from_bundle->named_parameters(true), b = started->named_parameters(true),
             c = fresh->named_parameters(true);
  double max_diff_bundle = 0, max_diff_fresh = 0;
  for (const auto& kv : a) {
    max_diff_bundle = std::max(max_diff_bundle, (kv.value() - b[kv.key()]).abs().max().item<double>());
    max_diff_fresh = std::max(max_diff_fresh, (kv.value() - c[kv.key()]).abs().max().item<double>());
  }
  EXPECT_LT(max_diff_bundle, 2e-3);                                   // float16 rounding
  EXPECT_GT(max_diff_fresh, 4 * std::max(max_diff_bundle, 1e-4));     // not a fresh network
  RecordProperty("max_diff_bundle", std::to_string(max_diff_bundle));
  RecordProperty("max_diff_fresh", std::to_string(max_diff_fresh));
  std::ifstream state(r.dir / "second" / "last" / "state.json");
  const std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"init_from\""), std::string::npos);

  Plans other = p;
  other.channels[0].name = "other";
  save_plans(other, r.dir / "other.json");
  TrainOptions bad = r.options("third");
  bad.plans = r.dir / "other.json";
  bad.init_from = r.dir / "bundle";
  try {
    train(bad);
    FAIL() << "a bundle with other channels was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
  }
}

// --init-from a bundle without context into plans with network.context_slices: the first
// convolution is widened with zeros, so the new network computes what the bundle computed.
TEST(Trainer, InitFromBundle_WithoutContext_IntoContextPlans_SameFunction) {
  Plans p = disc_plans();
  p.training.epochs = 1;
  p.training.iterations_per_epoch = 8;
  DiscRun r(p);
  const fs::path bundle = trained_bundle(r, "first", "bundle");
  Plans ctx = p;
  ctx.network.context_slices = 2;
  save_plans(ctx, r.dir / "ctx.json");
  start_and_stop(r, "ctx", bundle, r.dir / "ctx.json");
  UNet from(unet_config_from_plans(p)), started(unet_config_from_plans(ctx));
  torch::load(from, (r.dir / "first" / "last" / "model.pt").string());
  torch::load(started, (r.dir / "ctx" / "last" / "model.pt").string());
  from->eval();
  started->eval();
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({2, 5, 48, 48});  // 1 channel x 5 slices
  {
    torch::NoGradGuard no_grad;  // (thread-local: only around these passes, not the training below)
    const torch::Tensor a = from->forward(x.narrow(1, 2, 1))[0], b = started->forward(x)[0];
    const double diff = (a - b).abs().max().item<double>(), scale = a.abs().max().item<double>();
    EXPECT_LT(diff, 0.02 * scale + 1e-3) << "float16 rounding only";
  }
  // The new neighbours' weights start at zero; the centre slice's are the bundle's.
  const torch::Tensor w = started->named_parameters()["encoder.0.convs.0.conv.weight"];
  ASSERT_EQ(w.size(1), 5);
  EXPECT_EQ(w.narrow(1, 0, 2).abs().max().item<double>(), 0.0);
  EXPECT_EQ(w.narrow(1, 3, 2).abs().max().item<double>(), 0.0);

  // Fewer neighbours than the bundle's is refused by name.
  TrainOptions back = r.options("back");
  back.init_from = trained_bundle(r, "ctxrun", "ctxbundle", r.dir / "ctx.json");
  try {
    train(back);
    FAIL() << "a context bundle initialised a network without context";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_NE(std::string(e.what()).find("neighbouring slice"), std::string::npos) << e.what();
  }
}

// plans.training.average_epochs: last/average.pt holds the mean of the weights at the end of each
// of the run's last N epochs, survives a stop and resume, and exports as a bundle.
TEST(Trainer, WeightAverage_MeanOfLastEpochs_SurvivesResume_Exports) {
  Plans p = disc_plans();
  p.training.epochs = 3;
  p.training.iterations_per_epoch = 3;
  p.training.average_epochs = 2;
  DiscRun r(p);
  const fs::path run = r.dir / "run";
  std::atomic<bool> cancel{false};
  TrainOptions o = r.options("run");
  o.cancel = &cancel;
  bool average_after_epoch1 = true;
  o.on_epoch = [&](const EpochReport& e) {
    if (e.epoch == 1) average_after_epoch1 = fs::exists(run / "last" / "average.pt");
    if (e.epoch == 2) cancel = true;  // stops before the first iteration of epoch 3
  };
  EXPECT_TRUE(train(o).cancelled);
  EXPECT_FALSE(average_after_epoch1) << "epoch 1 is not one of the last 2 of 3";
  auto load = [&](const fs::path& file) {
    UNet net(unet_config_from_plans(p));
    torch::load(net, file.string());
    return net;
  };
  UNet w2 = load(run / "last" / "model.pt");
  auto max_diff = [](UNet& a, UNet& b, double wa, UNet* c, double wc) {
    const auto pa = a->named_parameters(true);
    const auto pb = b->named_parameters(true);
    double d = 0;
    for (const auto& kv : pb) {
      torch::Tensor expected = wa * pa[kv.key()];
      if (c) expected = expected + wc * (*c)->named_parameters(true)[kv.key()];
      d = std::max(d, (kv.value() - expected).abs().max().item<double>());
    }
    return d;
  };
  UNet avg2 = load(run / "last" / "average.pt");
  EXPECT_EQ(max_diff(w2, avg2, 1.0, nullptr, 0), 0.0) << "the average of one epoch is that epoch's weights";

  cancel = false;
  o.on_epoch = nullptr;
  const TrainResult rest = train(o);
  EXPECT_TRUE(rest.finished);
  UNet w3 = load(run / "last" / "model.pt");
  UNet avg = load(run / "last" / "average.pt");
  EXPECT_LT(max_diff(w2, avg, 0.5, &w3, 0.5), 1e-6) << "average = (epoch 2 + epoch 3) / 2";
  EXPECT_GT(max_diff(w3, avg, 1.0, nullptr, 0), 1e-4) << "the average differs from the last weights";
  std::ifstream in(run / "last" / "state.json");
  EXPECT_EQ(nlohmann::json::parse(in).at("averaged_epochs"), nlohmann::json::array({2, 3}));

  export_bundle(run, r.dir / "bundle", "average", "2");
  const BundleMetadata meta = read_bundle_metadata(r.dir / "bundle");
  EXPECT_EQ(meta.training.at("checkpoint"), "average");
  EXPECT_EQ(meta.training.at("averaged_epochs"), nlohmann::json::array({2, 3}));
  const Predictor predictor = Predictor::load(r.dir / "bundle");
  const Prediction pred = predictor.predict(io::read_image(r.dataset / "imagesTr" / "disc_000_0000.png"));
  EXPECT_EQ(pred.label.geometry().size, (std::array<int64_t, 3>{64, 64, 1}));

  // A run without averaging has nothing to export as "average"; unknown names are refused.
  Plans plain = disc_plans();
  plain.training.epochs = 1;
  plain.training.iterations_per_epoch = 1;
  save_plans(plain, r.dir / "plain.json");
  TrainOptions q = r.options("plain");
  q.plans = r.dir / "plain.json";
  ASSERT_TRUE(train(q).finished);
  try {
    export_bundle(r.dir / "plain", r.dir / "b2", "average");
    FAIL() << "exported an average the run does not have";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::FileNotFound);
    EXPECT_NE(std::string(e.what()).find("average_epochs is 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(export_bundle(r.dir / "plain", r.dir / "b3", "newest"), Error);
}

// --folds/--fold: the run trains and validates inside the outer split's training patients; its
// split.json records the fold; resuming as another fold is refused.
TEST(Trainer, CrossValidationFold_StaysInsideTheOuterTrainingPatients) {
  Plans p = disc_plans();
  p.training.epochs = 1;
  p.training.iterations_per_epoch = 1;
  DiscRun r(p, 16);
  Split outer;
  for (int c = 0; c < 16; ++c) {
    char id[32];
    std::snprintf(id, sizeof id, "disc_%03d", c);
    (c < 4 ? outer.validation : outer.train).push_back(id);
  }
  save_split(outer, r.dir / "outer.json");
  TrainOptions o = r.options("fold1");
  o.split = r.dir / "outer.json";
  o.folds = 3;
  o.fold = 1;
  ASSERT_TRUE(train(o).finished);
  const Split f = load_split(r.dir / "fold1" / "split.json");
  EXPECT_EQ(f.folds, 3);
  EXPECT_EQ(f.fold, 1);
  EXPECT_EQ(f.train.size() + f.validation.size(), 12u);
  EXPECT_EQ(f.validation.size(), 4u);
  for (const auto& id : outer.validation) {
    EXPECT_EQ(std::count(f.train.begin(), f.train.end(), id), 0) << id;
    EXPECT_EQ(std::count(f.validation.begin(), f.validation.end(), id), 0) << id;
  }
  TrainOptions other = r.options("fold1");
  other.folds = 3;
  other.fold = 2;
  try {
    train(other);
    FAIL() << "resumed fold 1 as fold 2";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_NE(std::string(e.what()).find("fold 1 of 3"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeWithOtherPlans_Refused) {
  Plans p = disc_plans();
  p.training.epochs = 2;
  p.training.iterations_per_epoch = 2;
  DiscRun r(p);
  // A time budget stops after the epoch that crosses it (any epoch takes more than 1 ns).
  TrainOptions budget = r.options("run");
  budget.time_budget_seconds = 1e-9;
  const TrainResult first = train(budget);
  EXPECT_EQ(first.epochs_done, 1);
  EXPECT_FALSE(first.finished);
  EXPECT_FALSE(first.cancelled);
  p.training.learning_rate = 0.5;
  save_plans(p, r.plans);
  try {
    train(r.options("run"));
    FAIL() << "resume with other plans was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument);
    EXPECT_NE(std::string(e.what()).find("learning_rate"), std::string::npos) << e.what();
  }
  // Starting over is allowed.
  TrainOptions fresh = r.options("run");
  fresh.resume = false;
  EXPECT_EQ(train(fresh).epochs_done, 2);
}

// Not run by default: prints seconds per training step for the configurations of the report.
// ./model_tests --gtest_also_run_disabled_tests --gtest_filter='*StepTime*'
TEST(Trainer, DISABLED_StepTime) {
  Plans p2;
  p2.channels = {ChannelPlan{}};
  p2.network.dims = 2;
  p2.network.features = {16, 32, 64, 128, 256};
  p2.network.strides = {};
  p2.patch_size = {256, 256, 1};
  p2.batch_size = 8;
  p2 = plans_from_json(to_json(p2));
  Plans p3;
  p3.channels = {ChannelPlan{}, ChannelPlan{}};
  p3.network.dims = 3;
  p3.network.features = {16, 32, 64, 128, 256};
  p3.network.strides = {{2, 2, 1}, {2, 2, 2}, {2, 2, 2}, {2, 2, 2}};
  p3.patch_size = {128, 128, 32};
  p3.batch_size = 2;
  for (const auto* p : {&p2, &p3}) {
    for (bool bf16 : {false, true}) {
      const double s = measure_training_step(*p, 3, 0, bf16);
      std::printf("%dD batch %d patch %dx%dx%d bf16=%d: %.3f s/iteration\n", p->dims(), p->batch_size,
                  p->patch_size[0], p->patch_size[1], p->patch_size[2], bf16, s);
    }
  }
}
