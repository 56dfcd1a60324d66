// Synthetic demo cases: determinism, geometry, and label content that makes sense anatomically.
#include "tumorlab/imaging/phantom.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tumorlab/core/error.h"
#include "tumorlab/imaging/components.h"

namespace tumorlab::imaging {
namespace {

bool same_voxels(const Volume& a, const Volume& b) {
  return a.size_bytes() == b.size_bytes() && std::memcmp(a.raw(), b.raw(), a.size_bytes()) == 0;
}

// Mean of one channel over voxels where mask(i) holds.
template <class Mask>
double mean_where(const Volume& v, int channel, Mask&& mask) {
  const uint8_t* p = v.channel_data<uint8_t>(channel);
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < v.voxel_count(); ++i)
    if (mask(i)) {
      sum += p[i];
      ++n;
    }
  return n ? sum / static_cast<double>(n) : 0;
}

TEST(Phantom, BrainMr_GeometryChannelsAndDeterminism) {
  const Phantom a = brain_mr_phantom(7);
  const Phantom b = brain_mr_phantom(7);
  const Phantom c = brain_mr_phantom(8);
  EXPECT_EQ(a.image.geometry().size, (Size3{256, 256, 28}));
  EXPECT_EQ(a.image.geometry().spacing_mm, (Vec3{1, 1, 1}));
  EXPECT_EQ(a.image.geometry().direction, (Matrix3{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(a.image.channels(), 2);
  EXPECT_EQ(a.image.pixel_type(), PixelType::UInt8);
  EXPECT_EQ(a.image.channel_names, (std::vector<std::string>{"FLAIR", "T1 post-contrast"}));
  EXPECT_EQ(a.image.modality, "MR");
  EXPECT_EQ(a.name, "DEMO-brain-7");
  EXPECT_NE(a.description.find("SYNTHETIC"), std::string::npos);
  EXPECT_TRUE(a.label.geometry().same_grid(a.image.geometry(), 0));
  EXPECT_TRUE(same_voxels(a.image, b.image));
  EXPECT_EQ(a.label.voxels(), b.label.voxels());
  EXPECT_FALSE(same_voxels(a.image, c.image));
  EXPECT_NE(a.label.voxels(), c.label.voxels());
  EXPECT_EQ(brain_mr_phantom(3, 40).image.geometry().size[2], 40);
  EXPECT_THROW(brain_mr_phantom(1, 8), Error);
}

TEST(Phantom, BrainMr_LesionIsOneBrightBlobInsideTheBrain) {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    const Phantom p = brain_mr_phantom(seed);
    const LabelMap& l = p.label;
    const int64_t lesion = l.count(1);
    // Real LGG lesions in Dataset002 hold about 5 000 to 30 000 voxels.
    EXPECT_GT(lesion, 2000) << "seed " << seed;
    EXPECT_LT(lesion, 40000) << "seed " << seed;
    EXPECT_EQ(l.max_label(), 1);
    const Components cc = connected_components(l, Connectivity::Full);
    ASSERT_GE(cc.count(), 1);
    EXPECT_GT(cc.components[0].voxels, lesion * 9 / 10) << "seed " << seed;
    // Inside the head: no lesion voxel touches the image border, and FLAIR is dark background
    // at the corners.
    const Box& box = cc.components[0].box;
    EXPECT_GT(box.begin[0], 20);
    EXPECT_LT(box.end[0], 236);
    EXPECT_GT(box.begin[1], 10);
    EXPECT_LT(box.end[1], 246);
    EXPECT_GT(box.end[2] - box.begin[2], 2);  // spans several slices
    const uint8_t* lab = l.data();
    const double flair_lesion = mean_where(p.image, 0, [&](int64_t i) { return lab[i] != 0; });
    const double flair_tissue = mean_where(p.image, 0, [&](int64_t i) {
      const uint8_t v = p.image.channel_data<uint8_t>(0)[i];
      return lab[i] == 0 && v > 40 && v < 90;
    });
    const double t1_lesion = mean_where(p.image, 1, [&](int64_t i) { return lab[i] != 0; });
    // Dataset002: FLAIR lesion median ~100-120, brain ~50-70; T1c lesion darker than white matter.
    EXPECT_GT(flair_lesion, 95) << "seed " << seed;
    EXPECT_LT(flair_lesion, 140) << "seed " << seed;
    EXPECT_GT(flair_lesion, flair_tissue + 30) << "seed " << seed;
    EXPECT_LT(t1_lesion, 55) << "seed " << seed;
    // Corners are background.
    EXPECT_LT(p.image.channel_data<uint8_t>(0)[0], 10);
  }
}

TEST(Phantom, PetMip_GeometryConventionAndTumoursInsideTheBody) {
  const Phantom a = pet_mip_phantom(11);
  EXPECT_EQ(a.image.geometry().size, (Size3{400, 900, 1}));
  EXPECT_EQ(a.image.channels(), 1);
  EXPECT_EQ(a.image.pixel_type(), PixelType::UInt8);
  EXPECT_EQ(a.image.modality, "PT");
  EXPECT_EQ(a.name, "DEMO-pet-11");
  EXPECT_NE(a.description.find("SYNTHETIC"), std::string::npos);
  EXPECT_TRUE(same_voxels(a.image, pet_mip_phantom(11).image));
  EXPECT_FALSE(same_voxels(a.image, pet_mip_phantom(12).image));
  EXPECT_EQ(pet_mip_phantom(11, 600).image.geometry().size[1], 600);
  EXPECT_THROW(pet_mip_phantom(1, 100), Error);
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    const Phantom p = pet_mip_phantom(seed);
    const uint8_t* px = p.image.data<uint8_t>();
    const uint8_t* lab = p.label.data();
    const int64_t n = p.image.voxel_count();
    int64_t white = 0;
    for (int64_t i = 0; i < n; ++i) white += px[i] == 255;
    // Dataset001: about half the pixels are the white background.
    EXPECT_GT(white, n * 3 / 10) << "seed " << seed;
    EXPECT_LT(white, n * 3 / 4) << "seed " << seed;
    EXPECT_EQ(px[0], 255);
    // Brain (top centre) is dark: high uptake.
    EXPECT_LT(px[p.image.linear_index(200, 68, 0)], 40) << "seed " << seed;
    // Tumours: 2..5 blobs, dark, all inside the body (never on white background).
    const Components cc = connected_components(p.label, Connectivity::Full);
    EXPECT_GE(cc.count(), 1) << "seed " << seed;
    EXPECT_LE(cc.count(), 5) << "seed " << seed;
    int64_t lesion = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i)
      if (lab[i]) {
        ++lesion;
        sum += px[i];
        EXPECT_LT(px[i], 255);
      }
    EXPECT_GT(lesion, 100) << "seed " << seed;
    EXPECT_LT(sum / static_cast<double>(lesion), 110) << "seed " << seed;  // lesions are dark
  }
}

}  // namespace
}  // namespace tumorlab::imaging
