// tumorlab_e2e_seed DATA_DIR: fills an empty data folder, through the real store, with what the
// browser tests need: two users (reviewer "rita", annotator "anna"; passwords from
// $E2E_REVIEWER_PASSWORD / $E2E_ANNOTATOR_PASSWORD) and synthetic cases (no patient data):
//  - DEMO-brain-1: 256x256x40 MR, channels FLAIR + T1c (imaging's brain phantom), with an "AI"
//    revision and an uncertainty map, presegmented, highest active-learning priority;
//  - DEMO-brain-2: the same kind of phantom (other seed), no label yet (status new);
//  - DEMO-pet-3: a 400x600 PET MIP (2D), with an AI revision;
//  - DEMO-ct-1: a 512x512x100 CT-like volume (body, lungs, spine, one lesion), with an AI
//    revision, for the load-time measurement.
// The "AI" revisions are the phantoms' own lesion masks, altered on purpose (a few slices
// dropped, a rim added) so that they differ from a careful correction; they are written by the
// model name "e2e-seed" (synthetic). The uncertainty map is the voxel-wise binary entropy of a
// soft version of that mask (high on its boundary), written where pre-segmentation puts it.
// Prints one JSON line: {"cases": {name: id}, "users": {...}}.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tumorlab/core/error.h"
#include "tumorlab/imaging/phantom.h"
#include "tumorlab/io/image_io.h"
#include "tumorlab/store/store.h"

using namespace tumorlab;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : fallback;
}

// The "AI" version of a true mask: every fourth labelled slice dropped, and a one-voxel rim
// added in-plane on the others.
LabelMap ai_version(const LabelMap& truth) {
  const auto& s = truth.geometry().size;
  LabelMap out(truth.geometry());
  int labelled = 0;
  for (int64_t k = 0; k < s[2]; ++k) {
    bool any = false;
    for (int64_t j = 0; j < s[1] && !any; ++j)
      for (int64_t i = 0; i < s[0] && !any; ++i) any = truth.at(i, j, k) != 0;
    if (!any) continue;
    ++labelled;
    if (s[2] > 1 && labelled % 4 == 0) continue;
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i) {
        bool on = truth.at(i, j, k) != 0;
        if (!on && i > 0 && i + 1 < s[0] && j > 0 && j + 1 < s[1])
          on = truth.at(i - 1, j, k) || truth.at(i + 1, j, k) || truth.at(i, j - 1, k) || truth.at(i, j + 1, k);
        if (on) out.at(i, j, k) = 1;
      }
  }
  return out;
}

// Binary entropy (bits) of p = mean of the mask over a 3x3(x3) neighbourhood.
Volume entropy_map(const LabelMap& mask) {
  const auto& s = mask.geometry().size;
  Volume u(mask.geometry(), PixelType::Float32);
  float* d = u.data<float>();
  const int64_t kr = s[2] > 1 ? 1 : 0;
  for (int64_t k = 0; k < s[2]; ++k)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i) {
        int n = 0, on = 0;
        for (int64_t dk = -kr; dk <= kr; ++dk)
          for (int64_t dj = -1; dj <= 1; ++dj)
            for (int64_t di = -1; di <= 1; ++di) {
              int64_t a = i + di, b = j + dj, c = k + dk;
              if (a < 0 || b < 0 || c < 0 || a >= s[0] || b >= s[1] || c >= s[2]) continue;
              ++n;
              on += mask.at(a, b, c) != 0;
            }
        double p = n ? double(on) / n : 0;
        double h = (p <= 0 || p >= 1) ? 0 : -(p * std::log2(p) + (1 - p) * std::log2(1 - p));
        d[mask.index(i, j, k)] = static_cast<float>(h);
      }
  return u;
}

// 512x512x100 CT-like volume (HU, int16, 0.8x0.8x2.5 mm): air, an elliptic body of soft tissue,
// two lungs, a spine, and a round 45 HU lesion in the liver region (label 1).
imaging::Phantom ct_phantom() {
  Geometry g;
  g.size = {512, 512, 100};
  g.spacing_mm = {0.8, 0.8, 2.5};
  g.origin_lps = {-204.8, -204.8, -125};
  Volume v(g, PixelType::Int16);
  LabelMap l(g);
  auto* d = v.data<int16_t>();
  for (int64_t k = 0; k < 100; ++k)
    for (int64_t j = 0; j < 512; ++j)
      for (int64_t i = 0; i < 512; ++i) {
        const double x = (i - 256) / 220.0, y = (j - 256) / 160.0;
        int16_t hu = -1000;
        if (x * x + y * y < 1) {
          hu = static_cast<int16_t>(40 + ((i * 7 + j * 13 + k * 3) % 17) - 8);
          const double lx = (std::abs(i - 256.0) - 95) / 60.0, ly = (j - 230) / 90.0;
          if (k > 40 && lx * lx + ly * ly < 1) hu = -820;
          const double sx = (i - 256) / 22.0, sy = (j - 370) / 22.0;
          if (sx * sx + sy * sy < 1) hu = 700;
          const double tx = (i - 180) / 18.0, ty = (j - 300) / 18.0, tz = (k - 25) / 7.0;
          if (tx * tx + ty * ty + tz * tz < 1) {
            hu = 95;
            l.at(i, j, k) = 1;
          }
        }
        d[v.linear_index(i, j, k)] = hu;
      }
  v.modality = "CT";
  v.channel_names = {"CT"};
  return {"DEMO-ct-1", "synthetic CT-like volume for the browser tests", std::move(v), std::move(l)};
}

struct Seeder {
  store::Store& st;
  fs::path scratch;
  nlohmann::json cases = nlohmann::json::object();

  store::Id add(const imaging::Phantom& p, const std::string& modality, bool with_ai, double uncertainty, double rank) {
    const fs::path img = scratch / (p.name + ".nii.gz");
    io::write_image(p.image, img);
    auto file = st.put_image_bytes(slurp(img));
    store::NewImage ni;
    ni.sha256 = file.sha256;
    ni.modality = modality;
    ni.channel_names = p.image.channel_names;
    if (ni.channel_names.empty()) ni.channel_names = {modality};
    const auto& g = p.image.geometry();
    ni.size = {g.size[0], g.size[1], g.size[2]};
    ni.spacing_mm = {g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]};
    ni.demo = true;
    auto image = st.write([&](store::WriteTxn& t) { return t.add_image(ni); });
    auto c = st.write([&](store::WriteTxn& t) { return t.add_case({p.name, image.id, std::nullopt}); });
    if (with_ai) {
      const LabelMap ai = ai_version(p.label);
      const fs::path lp = scratch / (p.name + "_ai.nii.gz");
      io::write_label(ai, lp);
      const std::string bytes = slurp(lp);
      auto stored = st.put_label_bytes(bytes);
      store::NewRevision r;
      r.case_id = c.id;
      r.kind = store::RevisionKind::Ai;
      r.model_name = "e2e-seed";
      r.model_version = "synthetic";
      r.voxel_count = ai.count_nonzero();
      r.volume_ml = r.voxel_count * g.spacing_mm[0] * g.spacing_mm[1] * g.spacing_mm[2] / 1000.0;
      r.sha256 = stored.sha256;
      r.note = "synthetic AI label (e2e seed)";
      st.save_revision(r, bytes);
      const fs::path udir = fs::path(st.data_dir()) / "uncertainty";
      fs::create_directories(udir);
      io::write_image(entropy_map(ai), udir / (stored.sha256 + ".nii.gz"));
      st.write([&](store::WriteTxn& t) {
        t.set_case_status(c.id, store::CaseStatus::Presegmented, std::nullopt);
        t.set_case_scores(c.id, uncertainty, rank);
      });
    }
    cases[p.name] = c.id;
    return c.id;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tumorlab_e2e_seed DATA_DIR\n";
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    store::StoreOptions so;
    so.data_dir = dir.string();
    auto st = store::Store::open(so);
    nlohmann::json users;
    users["rita"] =
        st.create_user("rita", store::Role::Reviewer, env_or("E2E_REVIEWER_PASSWORD", "reviewer-pass-1")).id;
    users["anna"] =
        st.create_user("anna", store::Role::Annotator, env_or("E2E_ANNOTATOR_PASSWORD", "annotator-pass-1")).id;
    const fs::path scratch = dir / "e2e-seed-scratch";
    fs::create_directories(scratch);
    Seeder s{st, scratch};
    s.add(imaging::brain_mr_phantom(1, 40), "MR", true, 0.42, 1);
    s.add(imaging::brain_mr_phantom(2, 32), "MR", false, 0, 0);
    s.add(imaging::pet_mip_phantom(3, 600), "PT", true, 0.18, 3);
    s.add(ct_phantom(), "CT", true, 0.27, 2);
    fs::remove_all(scratch);
    std::cout << nlohmann::json{{"cases", s.cases}, {"users", users}}.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tumorlab_e2e_seed: " << e.what() << "\n";
    return 1;
  }
}
