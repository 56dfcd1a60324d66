#include "tumorlab/imaging/components.h"

#include <itkConnectedComponentImageFilter.h>
#include <itkRelabelComponentImageFilter.h>

#include <algorithm>

#include "tumorlab/itk/itk_bridge.h"

namespace tumorlab::imaging {
namespace {

using IdImage = itk::Image<int32_t, 3>;

// Keeps voxels of `labels` outside the selected foreground, and selected voxels whose component
// satisfies keep(component, voxels of the largest component).
template <class Keep>
LabelMap filter_components(const LabelMap& labels, Connectivity connectivity, uint8_t label, Keep&& keep) {
  // Nothing selected (e.g. an empty prediction): nothing to label.
  if ((label == 0 ? labels.count_nonzero() : labels.count(label)) == 0) return labels;
  const Components cc = connected_components(labels, connectivity, label);
  LabelMap out = labels;
  const int32_t* ids = cc.ids.data<int32_t>();
  std::vector<char> kept(cc.components.size() + 1, 1);
  int64_t largest = 0;
  for (const Component& c : cc.components) largest = std::max(largest, c.voxels);
  for (const Component& c : cc.components) kept[c.id] = keep(c, largest) ? 1 : 0;
  uint8_t* v = out.data();
  for (int64_t i = 0, n = out.voxel_count(); i < n; ++i) {
    if (ids[i] != 0 && !kept[ids[i]]) v[i] = 0;
  }
  return out;
}

}  // namespace

Components connected_components(const LabelMap& labels, Connectivity connectivity, uint8_t label) {
  const LabelMap mask = labels.binary(label);
  auto image = itkbridge::to_itk(mask);
  using CCFilter = itk::ConnectedComponentImageFilter<itkbridge::LabelImage, IdImage>;
  using RelabelFilter = itk::RelabelComponentImageFilter<IdImage, IdImage>;
  auto cc = CCFilter::New();
  cc->SetInput(image);
  cc->SetFullyConnected(connectivity == Connectivity::Full);
  cc->SetBackgroundValue(0);
  auto relabel = RelabelFilter::New();
  relabel->SetInput(cc->GetOutput());
  relabel->SetSortByObjectSize(true);
  try {
    relabel->Update();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, "connected components", ErrorCode::Internal);
  }
  Components out;
  out.ids = itkbridge::from_itk<int32_t>(relabel->GetOutput());
  out.ids.set_geometry(labels.geometry());
  const auto n = static_cast<int32_t>(relabel->GetNumberOfObjects());
  out.components.resize(n);
  const Size3& size = labels.geometry().size;
  for (int32_t c = 0; c < n; ++c) {
    out.components[c].id = c + 1;
    out.components[c].box = Box{{size[0], size[1], size[2]}, {0, 0, 0}};
  }
  const int32_t* ids = out.ids.data<int32_t>();
  int64_t idx = 0;
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      for (int64_t i = 0; i < size[0]; ++i, ++idx) {
        const int32_t id = ids[idx];
        if (id == 0) continue;
        Component& c = out.components[id - 1];
        ++c.voxels;
        Box& b = c.box;
        b.begin[0] = std::min(b.begin[0], i);
        b.end[0] = std::max(b.end[0], i + 1);
        b.begin[1] = std::min(b.begin[1], j);
        b.end[1] = std::max(b.end[1], j + 1);
        b.begin[2] = std::min(b.begin[2], k);
        b.end[2] = std::max(b.end[2], k + 1);
      }
    }
  }
  const double voxel_ml = labels.geometry().voxel_volume_ml();
  for (Component& c : out.components) c.volume_ml = static_cast<double>(c.voxels) * voxel_ml;
  return out;
}

LabelMap remove_small_components(const LabelMap& labels, int64_t min_voxels, Connectivity connectivity,
                                 uint8_t label) {
  return filter_components(labels, connectivity, label,
                           [min_voxels](const Component& c, int64_t) { return c.voxels >= min_voxels; });
}

LabelMap remove_small_components_ml(const LabelMap& labels, double min_volume_ml, Connectivity connectivity,
                                    uint8_t label) {
  return filter_components(labels, connectivity, label,
                           [min_volume_ml](const Component& c, int64_t) { return c.volume_ml >= min_volume_ml; });
}

LabelMap keep_largest_component(const LabelMap& labels, Connectivity connectivity, uint8_t label) {
  return filter_components(labels, connectivity, label, [](const Component& c, int64_t) { return c.id == 1; });
}

LabelMap remove_components_below_fraction_of_largest(const LabelMap& labels, double fraction,
                                                     Connectivity connectivity, uint8_t label) {
  return filter_components(labels, connectivity, label, [fraction](const Component& c, int64_t largest) {
    return c.id == 1 || static_cast<double>(c.voxels) >= fraction * static_cast<double>(largest);
  });
}

LabelMap remove_components(const LabelMap& labels, const ComponentRules& rules, Connectivity connectivity,
                           uint8_t label) {
  if (rules.min_volume_ml <= 0 && rules.min_voxels <= 0 && rules.min_fraction_of_largest <= 0) return labels;
  // The size rules are monotone in the voxel count, so the largest component survives them
  // whenever any component does: the fraction rule may use the largest of all components.
  return filter_components(labels, connectivity, label, [&rules](const Component& c, int64_t largest) {
    if (c.volume_ml < rules.min_volume_ml || c.voxels < rules.min_voxels) return false;
    return rules.min_fraction_of_largest <= 0 || c.id == 1 ||
           static_cast<double>(c.voxels) >= rules.min_fraction_of_largest * static_cast<double>(largest);
  });
}

}  // namespace tumorlab::imaging
