#pragma once
// Export of labels and datasets: a label revision as NIfTI or PNG, and the validated cases as an
// nnU-Net v2 raw dataset (folder, or a zip kept in DIR/exports/ for the REST API). Exports
// carry case names (pseudonyms for DICOM imports), never patient identifiers. Audited ("export",
// "download").

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/app/cases.h"
#include "tumorlab/app/lab.h"

namespace tumorlab::store {
struct Image;
}

namespace tumorlab::app {

// A revision's label in `format`: "nifti" (the stored .nii.gz) or "png" (only when the case
// image is 2D: Error GeometryMismatch naming the size otherwise). BadArgument on another format.
// Audited as a download with the format.
struct LabelExport {
  std::string path;   // set for nifti: the stored file (stream it)
  std::string bytes;  // set for png
  std::string filename;
  std::string content_type;
};
LabelExport export_label(Lab& lab, const Actor& actor, std::int64_t case_id, std::int64_t revision_id,
                         const std::string& format);

struct NnunetExportRequest {
  std::filesystem::path output;                      // the dataset folder; must not exist (or be empty)
  std::string dataset_name = "Dataset500_tumorlab";  // DatasetNNN_Name
  bool include_demo = false;                         // demo cases are left out unless asked for
  // Only the validated cases whose image this accepts (nullopt) are written; the others are listed
  // in "skipped" with the reason it gives. Unset: every validated case.
  std::function<std::optional<std::string>(const store::Image&)> accept;
  // dataset.json's channel names (e.g. a model's, for its fine-tuning). Empty: those of the first
  // case, and cases with other channel names are left out.
  std::vector<std::string> channel_names;
};
// Writes every validated case with a current revision: imagesTr/<case>_<XXXX>.nii.gz (one file
// per channel, channel order of the image), labelsTr/<case>.nii.gz (the current revision),
// dataset.json (channel_names, labels {background: 0, lesion: 1, label_2: 2, ...}, numTraining,
// file_ending ".nii.gz", and a "tumorlab" block with the case and revision ids). The channel
// names of the first case define the dataset; cases with other channels are left out and listed.
// <case> is the case name with characters outside [A-Za-z0-9-] replaced by '-'.
// Returns {"output", "dataset", "cases": [{"case_id", "name", "revision_id"}], "skipped": [...],
// "num_training"}. Errors: BadArgument (name, output not empty), EmptyInput (no validated case),
// IoFailure. Audited "export".
nlohmann::json export_nnunet(Lab& lab, const Actor& actor, const NnunetExportRequest& request);

// REST: builds the dataset in scratch and zips it to DIR/exports/<export_id>.zip (export_id: 32
// hex digits, random). body: {"format": "nnunet", "name"?, "include_demo"?}. Returns the
// export_nnunet answer plus {"export_id", "file_bytes", "download"}.
nlohmann::json create_export(Lab& lab, const Actor& actor, const nlohmann::json& body);
// The zip of an export (NotFound when unknown; export_id must be 32 hex digits). Audited.
FileDownload export_file(Lab& lab, const Actor& actor, const std::string& export_id);

}  // namespace tumorlab::app
