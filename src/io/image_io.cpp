// Image files through ITK's ImageIO factory: NIfTI, NRRD, MetaImage, PNG, TIFF.
#include "tumorlab/io/image_io.h"

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOBase.h>
#include <itkImageIOFactory.h>
#include <itkVectorImage.h>

#include <fcntl.h>
#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <optional>
#include <cstring>
#include <cmath>
#include <fstream>

#include "tumorlab/io/dicom.h"
#include "tumorlab/itk/itk_bridge.h"

namespace fs = std::filesystem;

namespace tumorlab::io {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

const char* const kExtensions[] = {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tiff", ".tif",
                                   ".dcm", ".zip"};

std::string name_of(const fs::path& p) { return p.filename().string(); }

PixelType pixel_type_from_itk(itk::IOComponentEnum c, const fs::path& path) {
  using C = itk::IOComponentEnum;
  switch (c) {
    case C::UCHAR: return PixelType::UInt8;
    case C::CHAR: return PixelType::Int8;
    case C::USHORT: return PixelType::UInt16;
    case C::SHORT: return PixelType::Int16;
    case C::UINT: return PixelType::UInt32;
    case C::INT: return PixelType::Int32;
    case C::FLOAT: return PixelType::Float32;
    case C::DOUBLE: return PixelType::Float64;
    case C::LONG:
    case C::LONGLONG: return PixelType::Int32;   // narrowed with range check after reading
    case C::ULONG:
    case C::ULONGLONG: return PixelType::UInt32;
    default: break;
  }
  throw Error(ErrorCode::UnsupportedFormat, name_of(path) + ": voxel component type " +
                                                itk::ImageIOBase::GetComponentTypeAsString(c) + " is not supported");
}

// Reads an N-D image with `components` components per voxel into our channel-planar volume.
// The 4th dimension of a 4D file (NIfTI time/channels) becomes channels too.
template <class T>
Volume read_typed(const fs::path& path, itk::ImageIOBase* io, unsigned dims, unsigned components) {
  const std::string p = path.string();
  if (dims <= 3) {
    if (components == 1) {
      auto reader = itk::ImageFileReader<itk::Image<T, 3>>::New();
      reader->SetFileName(p);
      reader->SetImageIO(io);
      reader->Update();
      return itkbridge::from_itk<T>(reader->GetOutput());
    }
    auto reader = itk::ImageFileReader<itk::VectorImage<T, 3>>::New();
    reader->SetFileName(p);
    reader->SetImageIO(io);
    reader->Update();
    auto* img = reader->GetOutput();
    Volume v(itkbridge::geometry_of(img), pixel_type_of<T>(), static_cast<int>(components));
    const T* src = img->GetBufferPointer();
    const int64_t n = v.voxel_count();
    for (unsigned c = 0; c < components; ++c) {
      T* dst = v.template channel_data<T>(static_cast<int>(c));
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i * components + c];
    }
    return v;
  }
  if (components != 1) {
    throw Error(ErrorCode::UnsupportedFormat, name_of(path) + ": 4D images with vector voxels are not supported");
  }
  auto reader = itk::ImageFileReader<itk::Image<T, 4>>::New();
  reader->SetFileName(p);
  reader->SetImageIO(io);
  reader->Update();
  auto* img = reader->GetOutput();
  Geometry g;
  for (unsigned a = 0; a < 3; ++a) {
    g.size[a] = static_cast<int64_t>(img->GetLargestPossibleRegion().GetSize()[a]);
    g.spacing_mm[a] = img->GetSpacing()[a];
    g.origin_lps[a] = img->GetOrigin()[a];
    for (unsigned c = 0; c < 3; ++c) g.direction[a * 3 + c] = img->GetDirection()[a][c];
  }
  const int channels = static_cast<int>(img->GetLargestPossibleRegion().GetSize()[3]);
  Volume v(g, pixel_type_of<T>(), channels);
  std::copy_n(img->GetBufferPointer(), v.voxel_count() * channels, v.template data<T>());
  return v;
}

// What tumorlab checks in a NIfTI-1 header itself, before ITK reads it.
struct NiftiRaw {
  bool valid = false;
  bool swapped = false;
  int16_t datatype = 0, bitpix = 0;
  std::array<int16_t, 8> dim{};
  double vox_offset = 0;
  // Set when the 348-byte header could be read at all (single file or .hdr), even if not valid.
  bool readable = false;
  // First geometry field that is NaN/Inf or absurdly large, with its value; empty when all are sane.
  std::string bad_geometry;
  // The file (or its gzip stream) ends inside the header: how many bytes of it there are.
  std::optional<int> short_header_bytes;
  bool gzip = false;  // the file is gzip-compressed
  uint64_t voxels() const {
    uint64_t n = 1;
    for (int d = 1; d <= std::clamp<int>(dim[0], 0, 7); ++d) n *= static_cast<uint64_t>(std::max<int16_t>(dim[d], 1));
    return n;
  }
};

class GzFile {
 public:
  explicit GzFile(const fs::path& p) : f_(gzopen(p.c_str(), "rb")) {}
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  gzFile get() const { return f_; }

 private:
  gzFile f_;
};

template <class T> T swap_bytes(T v) {
  auto* b = reinterpret_cast<unsigned char*>(&v);
  std::reverse(b, b + sizeof(T));
  return v;
}

// Reads the fixed NIfTI-1 header fields (plain or gzip-compressed; zlib reads both).
NiftiRaw peek_nifti(const fs::path& path) {
  NiftiRaw h;
  GzFile gz(path);
  unsigned char buf[348];
  if (!gz.get()) return h;
  const int got = gzread(gz.get(), buf, sizeof buf);
  h.gzip = gzdirect(gz.get()) == 0;
  if (got != static_cast<int>(sizeof buf)) {
    h.short_header_bytes = std::max(got, 0);
    return h;
  }
  int32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, buf, 4);
  if (sizeof_hdr != 348) {
    if (swap_bytes(sizeof_hdr) != 348) return h;
    h.swapped = true;
  }
  auto get16 = [&](int off) {
    int16_t v;
    std::memcpy(&v, buf + off, 2);
    return h.swapped ? swap_bytes(v) : v;
  };
  float off;
  std::memcpy(&off, buf + 108, 4);
  if (h.swapped) off = swap_bytes(off);
  for (int d = 0; d < 8; ++d) h.dim[d] = get16(40 + 2 * d);
  h.readable = true;
  // Geometry fields ITK turns into a matrix and decomposes with vnl, which abort()s on NaN/Inf.
  // Bounds keep every product of two fields finite as well (1e9 mm is far beyond any scanner).
  auto getf = [&](int off) {
    float v;
    std::memcpy(&v, buf + off, 4);
    return h.swapped ? swap_bytes(v) : v;
  };
  auto check = [&](const char* field, int off, double limit) {
    const float v = getf(off);
    if (h.bad_geometry.empty() && !(std::isfinite(v) && std::fabs(v) <= limit)) {
      h.bad_geometry = std::string(field) + " = " + std::to_string(v) + " (expected a finite value within +-" +
                       std::to_string(static_cast<long long>(limit)) + ")";
    }
  };
  const int16_t qform_code = get16(252), sform_code = get16(254);
  static const char* const pixdim_names[] = {"pixdim[0]", "pixdim[1]", "pixdim[2]", "pixdim[3]",
                                             "pixdim[4]", "pixdim[5]", "pixdim[6]", "pixdim[7]"};
  for (int d = 0; d < 8; ++d) check(pixdim_names[d], 76 + 4 * d, 1e6);
  if (qform_code > 0) {
    check("quatern_b", 256, 1e6);
    check("quatern_c", 260, 1e6);
    check("quatern_d", 264, 1e6);
    check("qoffset_x", 268, 1e9);
    check("qoffset_y", 272, 1e9);
    check("qoffset_z", 276, 1e9);
  }
  if (sform_code > 0) {
    static const char* const srow_names[] = {"srow_x[0]", "srow_x[1]", "srow_x[2]", "srow_x[3]",
                                             "srow_y[0]", "srow_y[1]", "srow_y[2]", "srow_y[3]",
                                             "srow_z[0]", "srow_z[1]", "srow_z[2]", "srow_z[3]"};
    for (int i = 0; i < 12; ++i) check(srow_names[i], 280 + 4 * i, 1e9);
  }
  h.datatype = get16(70);
  h.bitpix = get16(72);
  h.vox_offset = off;
  // Only a well-formed single-file header is checked here; anything else is left to ITK to refuse.
  const bool bitpix_ok = h.bitpix > 0 && h.bitpix % 8 == 0 && h.bitpix <= 256;
  const bool offset_ok = std::isfinite(h.vox_offset) && h.vox_offset >= 352 && h.vox_offset < 1e9;
  bool dims_ok = h.dim[0] >= 1 && h.dim[0] <= 7;
  for (int d = 1; dims_ok && d <= h.dim[0]; ++d) dims_ok = h.dim[d] >= 1;
  h.valid = std::string(reinterpret_cast<const char*>(buf + 344), 3) == "n+1" && bitpix_ok && offset_ok && dims_ok;
  return h;
}

// One pass over a NIfTI file's voxel bytes (plain or gzip; zlib reads both), for what the NIfTI
// library would hide: it zero-fills what a truncated .nii.gz lacks and replaces NaN/Inf by 0.
// Reading a gzip stream to its end also checks its CRC.
struct VoxelScan {
  std::string problem;     // empty, or why the data is incomplete or corrupt
  int64_t non_finite = 0;  // NaN/Inf voxels (float32/float64 data only)
};

template <class T> void count_non_finite(const char* bytes, std::size_t n, bool swapped, int64_t& bad) {
  for (std::size_t i = 0; i + sizeof(T) <= n; i += sizeof(T)) {
    T v;
    std::memcpy(&v, bytes + i, sizeof(T));
    bad += !std::isfinite(swapped ? swap_bytes(v) : v);
  }
}

VoxelScan scan_nifti_voxels(const fs::path& path, const NiftiRaw& h) {
  VoxelScan scan;
  GzFile gz(path);
  if (!gz.get() || gzseek(gz.get(), static_cast<z_off_t>(h.vox_offset), SEEK_SET) < 0) {
    scan.problem = "data ends before the voxel offset";
    return scan;
  }
  const uint64_t need = h.voxels() * static_cast<uint64_t>(h.bitpix / 8);
  std::vector<char> chunk(1 << 20);  // a multiple of every voxel size
  uint64_t total = 0;
  for (;;) {
    const int got = gzread(gz.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got <= 0) break;  // 0: end of data; < 0: gzerror() below says why
    const auto n = static_cast<std::size_t>(std::min<uint64_t>(static_cast<uint64_t>(got), need - std::min(need, total)));
    if (h.datatype == 16 /* DT_FLOAT32 */) count_non_finite<float>(chunk.data(), n, h.swapped, scan.non_finite);
    if (h.datatype == 64 /* DT_FLOAT64 */) count_non_finite<double>(chunk.data(), n, h.swapped, scan.non_finite);
    total += static_cast<uint64_t>(got);
  }
  int err = Z_OK;
  const char* message = gzerror(gz.get(), &err);
  if (err != Z_OK && err != Z_STREAM_END) {
    scan.problem = std::string("corrupt or truncated gzip data (") + (message ? message : "zlib error") + ")";
  } else if (total < need) {
    scan.problem = "truncated: the header declares " + std::to_string(need) + " bytes of voxels after offset " +
                   std::to_string(static_cast<uint64_t>(h.vox_offset)) + ", the data holds " + std::to_string(total);
  }
  return scan;
}

bool has_png_signature(const fs::path& path) {
  unsigned char sig[8] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(sig), sizeof sig);
  return in.gcount() == 8 && png_sig_cmp(sig, 0, 8) == 0;
}

// ITK's PNG reader lets libpng abort() the process on a corrupt file. libpng's simplified API
// reports errors as return values instead, so every PNG is decoded once that way first.
void validate_png(const fs::path& path, const std::string& fname) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    throw Error(ErrorCode::CorruptFile, fname + ": corrupt PNG (" + image.message + ")");
  }
  try {
    check_allocation({static_cast<int64_t>(image.width), static_cast<int64_t>(image.height), 1}, 4,
                     PixelType::UInt16, fname);
  } catch (...) {
    png_image_free(&image);
    throw;
  }
  image.format = PNG_FORMAT_LINEAR_RGB_ALPHA;
  std::vector<unsigned char> scratch(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, scratch.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw Error(ErrorCode::CorruptFile, fname + ": corrupt PNG (" + message + ")");
  }
}

// The NIfTI library resolves file names itself: asked for "x.nii.gz" it may read the header or
// the voxels of a sibling "x.nii" (or .hdr/.img). Reading through a symlink with a fixed name in
// a private folder makes it read exactly the file we were given.
class IsolatedNiftiPath {
 public:
  explicit IsolatedNiftiPath(const fs::path& path) {
    const std::string n = name_of(path);
    if (!ends_with(n, ".nii") && !ends_with(n, ".nii.gz")) {
      path_ = path;
      return;
    }
    char tmpl[] = "/tmp/tumorlab-read-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      throw Error(ErrorCode::IoFailure, "cannot create a temporary folder to read " + n);
    }
    dir_ = tmpl;
    path_ = dir_ / (ends_with(n, ".nii.gz") ? "image.nii.gz" : "image.nii");
    fs::create_symlink(fs::absolute(path), path_);
  }
  ~IsolatedNiftiPath() {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  IsolatedNiftiPath(const IsolatedNiftiPath&) = delete;
  IsolatedNiftiPath& operator=(const IsolatedNiftiPath&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path dir_, path_;
};

Volume read_with_itk(const fs::path& original, const ReadOptions& options) {
  const IsolatedNiftiPath isolated(original);
  const fs::path& path = isolated.path();
  const std::string fname = name_of(original);
  const bool nifti = ends_with(fname, ".nii") || ends_with(fname, ".nii.gz");
  const NiftiRaw h = nifti || ends_with(fname, ".hdr") ? peek_nifti(original) : NiftiRaw{};
  if (nifti && h.short_header_bytes) {
    throw Error(ErrorCode::CorruptFile,
                fname + ": truncated: the " + (h.gzip ? "gzip data holds " : "file holds ") +
                    std::to_string(*h.short_header_bytes) + " bytes, a NIfTI-1 header needs 348");
  }
  if (h.readable && !h.bad_geometry.empty()) {
    throw Error(ErrorCode::HeaderMismatch, fname + ": NIfTI header field " + h.bad_geometry);
  }
  // ITK picks the reader by content, so a PNG is checked whatever its file name says.
  if (has_png_signature(original)) validate_png(original, fname);
  const std::string p = path.string();
  itk::ImageIOBase::Pointer io =
      itk::ImageIOFactory::CreateImageIO(p.c_str(), itk::ImageIOFactory::IOFileModeEnum::ReadMode);
  if (!io) {
    throw Error(ErrorCode::UnsupportedFormat,
                fname + ": not a readable image (expected NIfTI .nii/.nii.gz, NRRD, MetaImage .mha/.mhd, "
                                "PNG, TIFF or DICOM; the header could not be parsed)");
  }
  io->SetFileName(p);
  try {
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, fname + ": cannot read header");
  }
  const unsigned dims = io->GetNumberOfDimensions();
  if (dims < 2 || dims > 4) {
    throw Error(ErrorCode::UnsupportedFormat,
                fname + ": " + std::to_string(dims) + " dimensions, expected 2, 3 or 4");
  }
  const unsigned components = io->GetNumberOfComponents();
  Size3 size{1, 1, 1};
  int64_t channels = components;
  for (unsigned a = 0; a < dims; ++a) {
    const auto d = static_cast<int64_t>(io->GetDimensions(a));
    if (d < 1) {
      throw Error(ErrorCode::HeaderMismatch, fname + ": header gives dimension " + std::to_string(a) +
                                                 " as " + std::to_string(d) + ", expected >= 1");
    }
    if (a < 3) size[a] = d;
    else channels *= d;
  }
  if (channels > 4096) {
    throw Error(ErrorCode::TooLarge, fname + ": " + std::to_string(channels) + " channels, at most 4096");
  }
  PixelType type = pixel_type_from_itk(io->GetComponentType(), original);
  // Refuse absurd headers before ITK allocates anything.
  check_allocation(size, static_cast<int>(channels), PixelType::Float64, fname);

  // NIfTI: the data must be as long as the header says, and NaN/Inf are counted before ITK
  // (whose NIfTI library would turn them into zeros without a word).
  int64_t raw_non_finite = 0;
  if (nifti) {
    if (h.valid && ends_with(fname, ".nii")) {
      std::error_code ec;
      const auto file_bytes = fs::file_size(original, ec);
      const uint64_t need = static_cast<uint64_t>(h.vox_offset) + h.voxels() * static_cast<uint64_t>(h.bitpix / 8);
      if (!ec && file_bytes < need) {
        throw Error(ErrorCode::HeaderMismatch,
                    fname + ": header declares " + std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" +
                        std::to_string(size[2]) + "x" + std::to_string(channels) + " voxels of " +
                        std::to_string(h.bitpix) + " bits after offset " + std::to_string(h.vox_offset) + " (" +
                        std::to_string(need) + " bytes) but the file holds only " + std::to_string(file_bytes) +
                        " bytes");
      }
    }
    const bool is_float = h.datatype == 16 || h.datatype == 64;
    if (h.valid && (ends_with(fname, ".nii.gz") || is_float)) {
      const VoxelScan scan = scan_nifti_voxels(original, h);
      if (!scan.problem.empty()) throw Error(ErrorCode::CorruptFile, fname + ": " + scan.problem);
      raw_non_finite = scan.non_finite;
    }
    if (raw_non_finite > 0 && !options.allow_non_finite) {
      throw Error(ErrorCode::NonFiniteVoxels, fname + ": " + std::to_string(raw_non_finite) + " of " +
                                                  std::to_string(h.voxels()) + " voxels are NaN or Inf");
    }
  }

  Volume v;
  try {
    v = dispatch_pixel_type(type, [&](auto tag) { return read_typed<decltype(tag)>(path, io, dims, components); });
  } catch (const itk::ExceptionObject& e) {
    throw itkbridge::translate(e, fname + ": cannot read voxel data (truncated or corrupt?)");
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::TooLarge, fname + ": out of memory while reading");
  }
  v.geometry().validate(fname);
  if (!options.allow_non_finite) {
    const int64_t bad = v.count_non_finite();
    if (bad > 0) {
      throw Error(ErrorCode::NonFiniteVoxels, fname + ": " + std::to_string(bad) + " of " +
                                                  std::to_string(v.voxel_count() * v.channels()) +
                                                  " voxels are NaN or Inf");
    }
  }
  return v;
}

// Runs `write(tmp)` and renames the temporary file into place after an fsync.
template <class F> void write_atomically(const fs::path& path, F&& write) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) {
    throw Error(ErrorCode::FileNotFound, path.string() + ": folder " + dir.string() + " does not exist");
  }
  const fs::path tmp = dir / (".tmp-" + std::to_string(::getpid()) + "-" + name_of(path));
  try {
    write(tmp);
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    fs::rename(tmp, path);
  } catch (const itk::ExceptionObject& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw itkbridge::translate(e, name_of(path) + ": cannot write", ErrorCode::IoFailure);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(ErrorCode::IoFailure, name_of(path) + ": cannot write: " + e.code().message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

template <class T> void write_typed(const Volume& v, const fs::path& path, bool as_2d) {
  const std::string p = path.string();
  if (as_2d) {
    using Image2 = itk::Image<T, 2>;
    auto img = Image2::New();
    typename Image2::RegionType region;
    region.SetSize(0, static_cast<itk::SizeValueType>(v.geometry().size[0]));
    region.SetSize(1, static_cast<itk::SizeValueType>(v.geometry().size[1]));
    img->SetRegions(region);
    typename Image2::SpacingType spacing;
    spacing[0] = v.geometry().spacing_mm[0];
    spacing[1] = v.geometry().spacing_mm[1];
    img->SetSpacing(spacing);
    img->Allocate();
    std::copy_n(v.template data<T>(), v.voxel_count(), img->GetBufferPointer());
    auto writer = itk::ImageFileWriter<Image2>::New();
    writer->SetFileName(p);
    writer->SetInput(img);
    writer->Update();
    return;
  }
  if (v.channels() == 1) {
    auto img = itkbridge::to_itk<T>(v);
    auto writer = itk::ImageFileWriter<itk::Image<T, 3>>::New();
    writer->SetFileName(p);
    writer->SetInput(img);
    writer->SetUseCompression(true);
    writer->Update();
    return;
  }
  using VImage = itk::VectorImage<T, 3>;
  auto img = VImage::New();
  itkbridge::set_geometry(img.GetPointer(), v.geometry());
  img->SetNumberOfComponentsPerPixel(static_cast<unsigned>(v.channels()));
  img->Allocate();
  T* dst = img->GetBufferPointer();
  const int64_t n = v.voxel_count();
  const int nc = v.channels();
  for (int c = 0; c < nc; ++c) {
    const T* src = v.template channel_data<T>(c);
    for (int64_t i = 0; i < n; ++i) dst[i * nc + c] = src[i];
  }
  auto writer = itk::ImageFileWriter<VImage>::New();
  writer->SetFileName(p);
  writer->SetInput(img);
  writer->SetUseCompression(true);
  writer->Update();
}

}  // namespace

std::string to_string(ImageFormat f) {
  switch (f) {
    case ImageFormat::Nifti: return "NIfTI";
    case ImageFormat::Nrrd: return "NRRD";
    case ImageFormat::Meta: return "MetaImage";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Dicom: return "DICOM";
    case ImageFormat::Unknown: return "unknown";
  }
  return "unknown";
}

ImageFormat format_from_path(const fs::path& path) {
  const std::string n = name_of(path);
  if (fs::is_directory(path) || ends_with(n, ".zip") || ends_with(n, ".dcm")) return ImageFormat::Dicom;
  if (ends_with(n, ".nii") || ends_with(n, ".nii.gz")) return ImageFormat::Nifti;
  if (ends_with(n, ".nrrd") || ends_with(n, ".nhdr")) return ImageFormat::Nrrd;
  if (ends_with(n, ".mha") || ends_with(n, ".mhd")) return ImageFormat::Meta;
  if (ends_with(n, ".png")) return ImageFormat::Png;
  if (ends_with(n, ".tif") || ends_with(n, ".tiff")) return ImageFormat::Tiff;
  if (fs::is_regular_file(path) && is_dicom_file(path)) return ImageFormat::Dicom;
  return ImageFormat::Unknown;
}

std::string strip_image_extension(const fs::path& path) {
  const std::string n = name_of(path);
  for (const char* ext : kExtensions) {
    if (ends_with(n, ext)) return n.substr(0, n.size() - std::string(ext).size());
  }
  return path.stem().string();
}

Volume read_image(const fs::path& path, const ReadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw Error(ErrorCode::FileNotFound, path.string() + ": no such file or folder");
  }
  const ImageFormat format = format_from_path(path);
  if (format == ImageFormat::Dicom) {
    auto series = scan_dicom(path);
    std::vector<const DicomSeriesInfo*> readable;
    for (const auto& s : series) {
      if (s.readable) readable.push_back(&s);
    }
    if (readable.size() != 1) {
      throw Error(ErrorCode::BadArgument,
                  name_of(path) + ": holds " + std::to_string(readable.size()) +
                      " image series; read_image needs exactly one (use `tumorlab info` to list them)");
    }
    return read_dicom_series(*readable.front());
  }
  if (fs::is_regular_file(path) && fs::file_size(path, ec) == 0) {
    throw Error(ErrorCode::CorruptFile, name_of(path) + ": file is empty");
  }
  return read_with_itk(path, options);
}

LabelMap read_label(const fs::path& path, const Geometry* grid) {
  Volume v = read_image(path);
  if (v.channels() != 1) {
    throw Error(ErrorCode::InvalidLabel, name_of(path) + ": a label has 1 channel, found " +
                                             std::to_string(v.channels()));
  }
  LabelMap label = LabelMap::from_volume(v, name_of(path));
  if (grid) {
    const std::string diff = grid->difference(label.geometry());
    if (!diff.empty()) {
      throw Error(ErrorCode::GeometryMismatch,
                  name_of(path) + ": label grid differs from its image: image " + diff.substr(0, diff.find(" vs ")) +
                      " vs label " + diff.substr(diff.find(" vs ") + 4));
    }
  }
  return label;
}

void write_image(const Volume& volume, const fs::path& path) {
  if (volume.empty()) throw Error(ErrorCode::Internal, "write_image: empty volume for " + name_of(path));
  const ImageFormat format = format_from_path(path);
  switch (format) {
    case ImageFormat::Nifti:
    case ImageFormat::Nrrd:
    case ImageFormat::Meta: break;
    case ImageFormat::Png:
    case ImageFormat::Tiff:
      if (!volume.geometry().is_2d()) {
        throw Error(ErrorCode::BadArgument, name_of(path) + ": " + to_string(format) +
                                                " holds 2D images, the volume has " +
                                                std::to_string(volume.geometry().size[2]) + " slices");
      }
      if (volume.channels() != 1) {
        throw Error(ErrorCode::BadArgument, name_of(path) + ": " + to_string(format) +
                                                " output is written single-channel, the volume has " +
                                                std::to_string(volume.channels()));
      }
      if (format == ImageFormat::Png && volume.pixel_type() != PixelType::UInt8 &&
          volume.pixel_type() != PixelType::UInt16) {
        throw Error(ErrorCode::BadArgument, name_of(path) + ": PNG holds uint8 or uint16 voxels, the volume is " +
                                                to_string(volume.pixel_type()));
      }
      break;
    default:
      throw Error(ErrorCode::UnsupportedFormat,
                  name_of(path) + ": cannot write this format (use .nii.gz, .nii, .nrrd, .mha, .png or .tif)");
  }
  const bool as_2d = format == ImageFormat::Png || format == ImageFormat::Tiff;
  write_atomically(path, [&](const fs::path& tmp) {
    dispatch_pixel_type(volume.pixel_type(), [&](auto tag) { write_typed<decltype(tag)>(volume, tmp, as_2d); });
  });
}

void write_label(const LabelMap& label, const fs::path& path) { write_image(label.to_volume(), path); }

}  // namespace tumorlab::io
