// Plans of a tiny untrained 2D U-Net on one MR channel, for server tests that need a registered
// model bundle (model::write_untrained_bundle) whose predictions do not matter, only its speed.
#pragma once

#include <string>
#include <vector>

#include "tumorlab/imaging/normalize.h"
#include "tumorlab/model/plans.h"

namespace tumorlab::testing {

inline model::Plans tiny_plans(const std::string& name, const std::string& channel,
                               std::vector<int> tta_mirror_axes = {0}) {
  model::Plans p;
  p.name = name;
  p.modality = "MR";
  model::ChannelPlan c;
  c.name = channel;
  c.normalization.scheme = imaging::NormalizationScheme::ZScore;
  c.foreground = "all";
  p.channels = {c};
  p.network.dims = 2;
  p.network.features = {4, 8};
  p.network.strides = {{2, 2, 1}};
  p.network.deep_supervision = false;
  p.patch_size = {16, 16, 1};
  p.target_spacing_mm = {1, 1, 2};
  p.inference.window_batch = 4;
  p.inference.tta_mirror_axes = std::move(tta_mirror_axes);
  return p;
}

}  // namespace tumorlab::testing
