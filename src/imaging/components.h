#pragma once
// Connected components of a binary mask (a label map's foreground, or one label).
// Connectivity Face: voxels sharing a face (6 neighbours in 3D, 4 in 2D);
// Full: sharing a face, edge or corner (26 in 3D, 8 in 2D). 2D images (size[2] == 1) thus
// behave as 4/8-connected. Uses ITK's ConnectedComponentImageFilter (FullyConnected = Full)
// and RelabelComponentImageFilter.

#include <cstdint>
#include <vector>

#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/box.h"

namespace tumorlab::imaging {

enum class Connectivity { Face, Full };

struct Component {
  int32_t id = 0;         // 1..count, by decreasing voxel count (ties in ITK's label order)
  int64_t voxels = 0;
  double volume_ml = 0;
  Box box;                // bounding box (end exclusive)
};

struct Components {
  Volume ids;                         // int32, 0 = background, 1..count = component id
  std::vector<Component> components;  // components[id - 1]
  int32_t count() const { return static_cast<int32_t>(components.size()); }
};

// Components of the voxels with label != 0 (label == 0) or == label.
Components connected_components(const LabelMap& labels, Connectivity connectivity = Connectivity::Full,
                                uint8_t label = 0);

// Returns `labels` with the components (of the selected foreground) smaller than min_voxels set to 0.
// Voxels outside the selected foreground keep their label. These filters return a label map
// without selected foreground as it is, without labelling it.
LabelMap remove_small_components(const LabelMap& labels, int64_t min_voxels,
                                 Connectivity connectivity = Connectivity::Full, uint8_t label = 0);
// Same with a volume threshold: components with volume_ml < min_volume_ml are removed.
LabelMap remove_small_components_ml(const LabelMap& labels, double min_volume_ml,
                                    Connectivity connectivity = Connectivity::Full, uint8_t label = 0);
// Keeps only the largest component of the selected foreground (ties: the first in scan order).
LabelMap keep_largest_component(const LabelMap& labels, Connectivity connectivity = Connectivity::Full,
                                uint8_t label = 0);
// Removes the components with fewer voxels than fraction x the largest one's (the largest is always
// kept; fraction 1 keeps it and any component of the same size).
LabelMap remove_components_below_fraction_of_largest(const LabelMap& labels, double fraction,
                                                     Connectivity connectivity = Connectivity::Full,
                                                     uint8_t label = 0);

// The three rules above in one labelling (a rule at 0 is off): the same result as applying
// remove_small_components_ml, remove_small_components and then
// remove_components_below_fraction_of_largest, at the cost of one.
struct ComponentRules {
  double min_volume_ml = 0;
  int64_t min_voxels = 0;
  double min_fraction_of_largest = 0;
};
LabelMap remove_components(const LabelMap& labels, const ComponentRules& rules,
                           Connectivity connectivity = Connectivity::Full, uint8_t label = 0);

}  // namespace tumorlab::imaging
