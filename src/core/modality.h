#pragma once
// DICOM modality names as tumorlab compares them (Volume::modality, plans.json "modality").

#include <cctype>
#include <string>

namespace tumorlab {

// Upper case, with the common aliases folded: "PET" is "PT", "MRI" is "MR"; anything else is
// returned upper-cased ("" stays "").
inline std::string canonical_modality(const std::string& modality) {
  std::string m;
  for (char ch : modality) m.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  if (m == "PET") return "PT";
  if (m == "MRI") return "MR";
  return m;
}

}  // namespace tumorlab
