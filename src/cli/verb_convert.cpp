#include <iostream>

#include "tumorlab/app/convert.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_convert(CLI::App& app) {
  struct Args {
    std::string input, output, pixel_type, series;
    bool allow_incomplete = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("IN", args->input, "Input image, DICOM folder/.zip/file, or DICOM SEG file")->required();
  app.add_option("OUT", args->output,
                 "Output file (.nii.gz, .nii, .nrrd, .mha, .png, .tif), or a folder to write every DICOM series "
                 "as <number>_<description>.nii.gz")
      ->required();
  app.add_option("--pixel-type", args->pixel_type,
                 "Cast voxels before writing (rounded, clamped): uint8, int8, uint16, int16, uint32, int32, float32, "
                 "float64");
  app.add_option("--series", args->series, "DICOM: series number or SeriesInstanceUID to convert");
  app.add_flag("--allow-incomplete", args->allow_incomplete,
               "DICOM: convert a series with missing slices or uneven spacing anyway");
  return [args] {
    app::ConvertOptions o;
    if (!args->pixel_type.empty()) o.pixel_type = parse_pixel_type(args->pixel_type);
    o.series = args->series;
    o.allow_incomplete = args->allow_incomplete;
    for (const auto& f : app::convert(args->input, args->output, o)) std::cout << "wrote " << f.string() << "\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
