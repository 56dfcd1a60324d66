// Image file I/O through ITK: round trips, NIfTI header semantics, and bad input.
#include "tumorlab/io/image_io.h"

#include <gtest/gtest.h>
#include <nifti1.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "test_support.h"
#include "tumorlab/core/error.h"

using namespace tumorlab;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

Geometry oblique_geometry() {
  Geometry g;
  g.size = {7, 5, 4};
  g.spacing_mm = {0.8, 1.25, 3.0};
  g.origin_lps = {-120.5, 33.25, 7.75};
  const double a = 0.35, b = -0.2;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double ry[9] = {std::cos(b), 0, std::sin(b), 0, 1, 0, -std::sin(b), 0, std::cos(b)};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += ry[r * 3 + k] * rz[k * 3 + c];
      g.direction[r * 3 + c] = s;
    }
  return g;
}

Volume ramp(const Geometry& g, PixelType type, int channels = 1) {
  Volume v(g, type, channels);
  dispatch_pixel_type(type, [&](auto tag) {
    using T = decltype(tag);
    T* p = v.data<T>();
    for (int64_t i = 0; i < v.voxel_count() * channels; ++i) p[i] = static_cast<T>((i * 7) % 120);
  });
  return v;
}

void expect_same_affine(const Geometry& a, const Geometry& b, double tol) {
  EXPECT_EQ(a.size, b.size);
  const auto A = a.affine_lps(), B = b.affine_lps();
  for (int e = 0; e < 16; ++e) EXPECT_NEAR(A[e], B[e], tol) << "affine element " << e;
}

void expect_same_voxels(const Volume& a, const Volume& b) {
  ASSERT_EQ(a.voxel_count(), b.voxel_count());
  ASSERT_EQ(a.channels(), b.channels());
  for (int c = 0; c < a.channels(); ++c)
    for (int64_t i = 0; i < a.voxel_count(); ++i) ASSERT_EQ(a.value(i, c), b.value(i, c)) << "voxel " << i;
}

// Writes a single-file NIfTI-1 (uncompressed) by hand, so header fields can be set exactly.
fs::path write_raw_nifti(const fs::path& path, short datatype, short bitpix, const std::array<short, 4>& dims,
                         const std::vector<char>& data, float slope = 0, float inter = 0) {
  nifti_1_header h;
  std::memset(&h, 0, sizeof h);
  h.sizeof_hdr = 348;
  h.dim[0] = dims[3] > 1 ? 4 : 3;
  h.dim[1] = dims[0];
  h.dim[2] = dims[1];
  h.dim[3] = dims[2];
  h.dim[4] = dims[3];
  for (int i = 5; i < 8; ++i) h.dim[i] = 1;
  h.datatype = datatype;
  h.bitpix = bitpix;
  for (int i = 0; i < 8; ++i) h.pixdim[i] = 1.0f;
  h.vox_offset = 352;
  h.scl_slope = slope;
  h.scl_inter = inter;
  h.qform_code = 1;
  h.quatern_b = h.quatern_c = h.quatern_d = 0;
  h.pixdim[0] = 1;
  std::memcpy(h.magic, "n+1", 4);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&h), sizeof h);
  const char ext[4] = {0, 0, 0, 0};
  out.write(ext, 4);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

template <class F> ErrorCode error_code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "expected an Error";
  return ErrorCode::Internal;
}

}  // namespace

TEST(ImageIO, FormatAndExtension) {
  EXPECT_EQ(io::format_from_path("a/b.nii.gz"), io::ImageFormat::Nifti);
  EXPECT_EQ(io::format_from_path("b.NII"), io::ImageFormat::Nifti);
  EXPECT_EQ(io::format_from_path("b.nrrd"), io::ImageFormat::Nrrd);
  EXPECT_EQ(io::format_from_path("b.mha"), io::ImageFormat::Meta);
  EXPECT_EQ(io::format_from_path("b.png"), io::ImageFormat::Png);
  EXPECT_EQ(io::format_from_path("b.tif"), io::ImageFormat::Tiff);
  EXPECT_EQ(io::strip_image_extension("dir/case_001.nii.gz"), "case_001");
  EXPECT_EQ(io::strip_image_extension("patient_004.png"), "patient_004");
}

TEST(ImageIO, NiftiRoundTrip_ObliqueAffineAndVoxelsExact) {
  TempDir dir;
  for (auto type : {PixelType::Int16, PixelType::Float32, PixelType::UInt8}) {
    const Volume v = ramp(oblique_geometry(), type);
    for (const char* name : {"a.nii.gz", "a.nii"}) {
      io::write_image(v, dir / name);
      const Volume back = io::read_image(dir / name);
      EXPECT_EQ(back.pixel_type(), type);
      // NIfTI stores the affine as float32: the round trip holds to float precision.
      expect_same_affine(v.geometry(), back.geometry(), 1e-4);
      expect_same_voxels(v, back);
      // Writing what was read and reading it again stays put within float32 precision.
      io::write_image(back, dir / ("again_" + std::string(name)));
      const Volume again = io::read_image(dir / ("again_" + std::string(name)));
      expect_same_affine(back.geometry(), again.geometry(), 1e-6);
    }
  }
  // Seeds for the NIfTI fuzzer.
  io::write_image(ramp(oblique_geometry(), PixelType::Int16), tumorlab::testing::fuzz_seed_dir("nifti") / "oblique.nii");
  io::write_image(ramp(oblique_geometry(), PixelType::Float32), tumorlab::testing::fuzz_seed_dir("nifti") / "float.nii.gz");
}

// Regression: the NIfTI library resolved "a.nii.gz" to a sibling "a.nii" and read stale voxels.
TEST(ImageIO, Nifti_SiblingWithOtherExtension_ReadsTheNamedFile) {
  TempDir dir;
  Volume a = ramp(oblique_geometry(), PixelType::Int16);
  Volume b = ramp(oblique_geometry(), PixelType::Float32);
  b.data<float>()[0] = 42.5f;
  io::write_image(a, dir / "x.nii");
  io::write_image(b, dir / "x.nii.gz");
  const Volume gz = io::read_image(dir / "x.nii.gz");
  EXPECT_EQ(gz.pixel_type(), PixelType::Float32);
  EXPECT_EQ(gz.value(0), 42.5);
  const Volume plain = io::read_image(dir / "x.nii");
  EXPECT_EQ(plain.pixel_type(), PixelType::Int16);
  EXPECT_EQ(plain.value(0), 0);
}

TEST(ImageIO, NrrdAndMetaRoundTrip_GeometryExact) {
  TempDir dir;
  const Volume v = ramp(oblique_geometry(), PixelType::Int16);
  for (const char* name : {"a.nrrd", "a.mha"}) {
    io::write_image(v, dir / name);
    const Volume back = io::read_image(dir / name);
    expect_same_affine(v.geometry(), back.geometry(), 1e-6);
    expect_same_voxels(v, back);
  }
}

TEST(ImageIO, MultiChannelNiftiRoundTrip) {
  TempDir dir;
  const Volume v = ramp(oblique_geometry(), PixelType::Float32, 2);
  io::write_image(v, dir / "two.nii.gz");
  const Volume back = io::read_image(dir / "two.nii.gz");
  EXPECT_EQ(back.channels(), 2);
  expect_same_voxels(v, back);
}

TEST(ImageIO, PngAndTiff_2D) {
  TempDir dir;
  Geometry g;
  g.size = {40, 30, 1};
  const Volume v = ramp(g, PixelType::UInt8);
  io::write_image(v, dir / "a.png");
  io::write_image(v, dir / "a.tif");
  for (const char* name : {"a.png", "a.tif"}) {
    const Volume back = io::read_image(dir / name);
    EXPECT_EQ(back.geometry().size, g.size) << name;
    EXPECT_EQ(back.pixel_type(), PixelType::UInt8) << name;
    expect_same_voxels(v, back);
  }
  // A 3D volume or floats cannot become a PNG.
  EXPECT_EQ(error_code_of([&] { io::write_image(ramp(oblique_geometry(), PixelType::UInt8), dir / "b.png"); }),
            ErrorCode::BadArgument);
  EXPECT_EQ(error_code_of([&] { io::write_image(ramp(g, PixelType::Float32), dir / "b.png"); }),
            ErrorCode::BadArgument);
  EXPECT_FALSE(fs::exists(dir / "b.png"));
}

TEST(ImageIO, Nifti_SclSlopeAndInterceptApplied) {
  TempDir dir;
  std::vector<int16_t> raw = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<char> bytes(reinterpret_cast<char*>(raw.data()), reinterpret_cast<char*>(raw.data() + raw.size()));
  const auto path = write_raw_nifti(dir / "scaled.nii", DT_INT16, 16, {2, 2, 2, 1}, bytes, 2.5f, -10.0f);
  const Volume v = io::read_image(path);
  ASSERT_EQ(v.voxel_count(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(v.value(i), 2.5 * i - 10.0, 1e-6) << i;
  fs::copy_file(path, tumorlab::testing::fuzz_seed_dir("nifti") / "scaled.nii", fs::copy_options::overwrite_existing);
}

TEST(ImageIO, BadInput_TruncatedNiftiGz) {
  TempDir dir;
  io::write_image(ramp(oblique_geometry(), PixelType::Float32), dir / "ok.nii.gz");
  std::ifstream in(dir / "ok.nii.gz", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir / "cut.nii.gz", std::ios::binary).write(all.data(), static_cast<std::streamsize>(all.size() / 2));
  try {
    io::read_image(dir / "cut.nii.gz");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("cut.nii.gz"), std::string::npos) << e.what();
  }
}

// Regression (found by the server's upload tests): an int16 .nii.gz cut at 70% of its bytes read
// with exit 0, the NIfTI library zero-filling the missing voxels. Every cut, down to a missing
// gzip trailer, must be an error naming the file.
TEST(ImageIO, BadInput_TruncatedNiftiGzAnyCutIsAnError) {
  TempDir dir;
  io::write_image(ramp(oblique_geometry(), PixelType::Int16), dir / "ok.nii.gz");
  std::ifstream in(dir / "ok.nii.gz", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(all.size(), 64u);
  for (const std::size_t keep : {all.size() * 7 / 10, all.size() * 9 / 10, all.size() - 8, all.size() - 1}) {
    std::ofstream(dir / "cut.nii.gz", std::ios::binary | std::ios::trunc)
        .write(all.data(), static_cast<std::streamsize>(keep));
    try {
      io::read_image(dir / "cut.nii.gz");
      ADD_FAILURE() << "kept " << keep << " of " << all.size() << " bytes: expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2) << e.what();
      EXPECT_NE(std::string(e.what()).find("cut.nii.gz"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(io::read_image(dir / "ok.nii.gz"));
}

TEST(ImageIO, BadInput_CorruptGzipBytes) {
  TempDir dir;
  {
    std::ofstream out(dir / "junk.nii.gz", std::ios::binary);
    out << "\x1f\x8b\x08" << std::string(1, '\0') << "this is not deflate data at all";
  }
  try {
    io::read_image(dir / "junk.nii.gz");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
    EXPECT_NE(std::string(e.what()).find("junk.nii.gz"), std::string::npos) << e.what();
  }
}

TEST(ImageIO, BadInput_HeaderDimensionsExceedData) {
  TempDir dir;
  std::vector<char> bytes(2 * 2 * 2 * 2, 1);  // 8 int16 voxels, header claims 4x4x4
  const auto path = write_raw_nifti(dir / "short.nii", DT_INT16, 16, {4, 4, 4, 1}, bytes);
  try {
    io::read_image(path);
    FAIL() << "expected HeaderMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::HeaderMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("short.nii"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("4x4x4"), std::string::npos) << e.what();
  }
}

// Regression (found by fuzz_nifti in CI): a NaN or huge sform/qform/pixdim made ITK's vnl_svd
// abort() the process; such headers must be refused by name instead.
TEST(ImageIO, BadInput_NonFiniteOrHugeGeometryFieldsNamed) {
  TempDir dir;
  const std::vector<char> bytes(8, 0);
  struct Case {
    const char* name;
    int offset;  // byte offset of the float in the 348-byte header
    float value;
    int16_t sform_code;
    const char* field;
  };
  const Case cases[] = {
      {"srow_nan.nii", 280, std::numeric_limits<float>::quiet_NaN(), 1, "srow_x[0]"},
      {"qoffset_huge.nii", 272, 1.4e33f, 0, "qoffset_y"},
      {"pixdim_inf.nii", 80, std::numeric_limits<float>::infinity(), 0, "pixdim[1]"},
  };
  for (const Case& c : cases) {
    const auto path = write_raw_nifti(dir / c.name, DT_UINT8, 8, {2, 2, 2, 1}, bytes);
    {
      std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
      f.seekp(c.offset);
      f.write(reinterpret_cast<const char*>(&c.value), 4);
      f.seekp(254);
      f.write(reinterpret_cast<const char*>(&c.sform_code), 2);
    }
    try {
      io::read_image(path);
      ADD_FAILURE() << c.name << ": expected HeaderMismatch";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::HeaderMismatch) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.field), std::string::npos) << e.what();
    }
  }
  // The same header with sane values still reads.
  EXPECT_EQ(io::read_image(write_raw_nifti(dir / "fine.nii", DT_UINT8, 8, {2, 2, 2, 1}, bytes)).voxel_count(), 8);
}

// Regression (found by fuzz_nifti): a NaN vox_offset reached a float-to-integer conversion.
TEST(ImageIO, BadInput_NaNVoxOffsetIsAnErrorNotUndefinedBehaviour) {
  TempDir dir;
  std::vector<char> bytes(16, 0);
  const auto path = write_raw_nifti(dir / "nanoffset.nii", DT_INT16, 16, {2, 2, 2, 1}, bytes);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    f.seekp(108);
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  try {
    io::read_image(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2) << e.what();
  }
}

// Regression (found by fuzz_nifti): libpng abort()ed the process from inside ITK's PNG reader
// on a corrupt PNG, whatever the file's extension.
TEST(ImageIO, BadInput_CorruptPngIsAnErrorNotAnAbort) {
  TempDir dir;
  Geometry g;
  g.size = {64, 48, 1};
  io::write_image(ramp(g, PixelType::UInt8), dir / "ok.png");
  std::ifstream in(dir / "ok.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir / "cut.png", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 30));
  std::string flipped = bytes;
  flipped[40] = static_cast<char>(flipped[40] ^ 0x5a);  // inside the first chunk: CRC no longer matches
  std::ofstream(dir / "flipped.png", std::ios::binary) << flipped;
  // The fuzzer's input: a PNG signature followed by garbage, named .nii.
  const unsigned char fuzz[] = {0x89, 0x50, 0x4e, 0x47, 0xd, 0xa, 0x1a, 0xa, 0x5c, 0x1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0,    0,    0,    0x9,  0,   0,   0,    0,   0,    0,   0, 0, 0, 0, 0, 0, 0x80};
  std::ofstream(dir / "fuzz.nii", std::ios::binary).write(reinterpret_cast<const char*>(fuzz), sizeof fuzz);
  for (const char* name : {"cut.png", "flipped.png", "fuzz.nii"}) {
    try {
      io::read_image(dir / name);
      ADD_FAILURE() << name << ": expected CorruptFile";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::CorruptFile) << name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(io::read_image(dir / "ok.png"));
}

TEST(ImageIO, BadInput_AbsurdDimensionsRefusedBeforeAllocating) {
  TempDir dir;
  std::vector<char> bytes(16, 0);
  const auto path = write_raw_nifti(dir / "huge.nii", DT_FLOAT32, 32, {30000, 30000, 30000, 1}, bytes);
  EXPECT_EQ(error_code_of([&] { io::read_image(path); }), ErrorCode::TooLarge);
  // Compressed too: the size check happens on the header alone.
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  gzFile gz = gzopen((dir / "huge.nii.gz").c_str(), "wb");
  gzwrite(gz, all.data(), static_cast<unsigned>(all.size()));
  gzclose(gz);
  EXPECT_EQ(error_code_of([&] { io::read_image(dir / "huge.nii.gz"); }), ErrorCode::TooLarge);
}

TEST(ImageIO, BadInput_NaNVoxelsReported) {
  TempDir dir;
  Volume v = ramp(oblique_geometry(), PixelType::Float32);
  v.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  v.data<float>()[9] = std::numeric_limits<float>::infinity();
  io::write_image(v, dir / "nan.nii.gz");
  try {
    io::read_image(dir / "nan.nii.gz");
    FAIL() << "expected NonFiniteVoxels";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NonFiniteVoxels);
    EXPECT_NE(std::string(e.what()).find("2 of 140"), std::string::npos) << e.what();
  }
  io::ReadOptions allow;
  allow.allow_non_finite = true;
  // Allowed, the image reads; NIfTI's library has set the NaN and Inf voxels to 0.
  const Volume read = io::read_image(dir / "nan.nii.gz", allow);
  EXPECT_EQ(read.value(3), 0);
  EXPECT_EQ(read.value(9), 0);
  // Other formats keep them and are checked after reading.
  io::write_image(v, dir / "nan.nrrd");
  EXPECT_EQ(error_code_of([&] { io::read_image(dir / "nan.nrrd"); }), ErrorCode::NonFiniteVoxels);
  EXPECT_EQ(io::read_image(dir / "nan.nrrd", allow).count_non_finite(), 2);
}

TEST(ImageIO, BadInput_MissingEmptyAndUnknownFiles) {
  TempDir dir;
  EXPECT_EQ(error_code_of([&] { io::read_image(dir / "nope.nii.gz"); }), ErrorCode::FileNotFound);
  std::ofstream(dir / "empty.nii.gz").close();
  EXPECT_EQ(error_code_of([&] { io::read_image(dir / "empty.nii.gz"); }), ErrorCode::CorruptFile);
  std::ofstream(dir / "notes.txt") << "hello";
  EXPECT_EQ(error_code_of([&] { io::read_image(dir / "notes.txt"); }), ErrorCode::UnsupportedFormat);
}

TEST(ImageIO, BadInput_LabelOnAnotherGrid) {
  TempDir dir;
  const Geometry g = oblique_geometry();
  Geometry other = g;
  other.spacing_mm[2] = 2.0;
  LabelMap label(other);
  io::write_label(label, dir / "label.nii.gz");
  try {
    io::read_label(dir / "label.nii.gz", &g);
    FAIL() << "expected GeometryMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::GeometryMismatch);
    EXPECT_NE(std::string(e.what()).find("spacing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("label.nii.gz"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(io::read_label(dir / "label.nii.gz", &other));
}

TEST(ImageIO, BadInput_LabelWithNonIntegerValues) {
  TempDir dir;
  Volume v = ramp(oblique_geometry(), PixelType::Float32);
  v.data<float>()[0] = 0.5f;
  io::write_image(v, dir / "soft.nii.gz");
  EXPECT_EQ(error_code_of([&] { io::read_label(dir / "soft.nii.gz"); }), ErrorCode::InvalidLabel);
}

TEST(ImageIO, Write_IsAtomicAndLeavesNoTempFiles) {
  TempDir dir;
  io::write_image(ramp(oblique_geometry(), PixelType::Int16), dir / "a.nii.gz");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "a.nii.gz");
  }
  EXPECT_EQ(files, 1);
  EXPECT_EQ(error_code_of([&] { io::write_image(ramp(oblique_geometry(), PixelType::Int16), dir / "no/such/a.nii"); }),
            ErrorCode::FileNotFound);
}
