// DICOM series input through GDCM.
//
// Decisions (documented here because they shape what callers get):
// - Sources: a folder (recursive), one file, or a .zip. A zip is extracted into a private
//   temporary folder that lives as long as any DicomSeriesInfo::layout refers to it.
// - Series are grouped by SeriesInstanceUID. Inside a series the frames are split by image size
//   and orientation; when several such groups exist (a 3-plane localiser, say) the largest one
//   is read and a warning says how many frames were left out.
// - Slices are sorted by ImagePositionPatient projected on the slice normal (row x column
//   cosine). Frames sharing a position become channels, ordered by b-value (DiffusionBValue, or
//   Siemens' private b-value), TemporalPositionIndex, AcquisitionNumber, InstanceNumber.
// - Spacing along k is (last - first position) / (slices - 1). A gap is a step > 1.5x the median
//   step; spacing is uneven when a slice lies more than 1% of the spacing away from the
//   least-squares uniform grid through all positions (IPP is often rounded to 0.1 mm, which
//   makes step-by-step comparisons jitter by more than 1% on real series).
// - Pixel type: decided from the header (bits stored, signedness, rescale) like GDCM's own
//   Rescaler: uint8/uint16/int16/int32 when slope is 1 and the intercept integral and the full
//   stored range fits, float32 otherwise.
// - Colour (RGB, YBR) images become grayscale luminance (Rec. 601 weights; for YBR the Y plane);
//   palette colour is refused.

#include "tumorlab/io/dicom.h"

#include <dcmtk/config/osconfig.h>  // must precede other DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>
#include <fcntl.h>
#include <gdcmDataSet.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPixelFormat.h>
#include <gdcmPrivateTag.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmStringFilter.h>
#include <gdcmTrace.h>
#include <openjpeg-2.5/openjpeg.h>  // not ITK's bundled openjpeg.h, which comes first on the path
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "tumorlab/core/log.h"

namespace fs = std::filesystem;

namespace tumorlab::io {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A private temporary folder (extracted zip), removed when the last series using it goes.
struct TempTree {
  fs::path dir;
  ~TempTree() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

void quiet_gdcm() {
  static std::once_flag once;
  std::call_once(once, [] {
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  });
}

// ---- Files in memory ------------------------------------------------------------------------
// Each file is read into memory with one open() and a few large read()s, and both libraries parse
// that buffer: DCMTK through MemoryInputStream (below), GDCM through a std::istream over it. The
// file is never parsed from disk again (no per-element read()/lseek() syscalls, no stdio
// buffers thrown away on every seek).

// A byte buffer that is not zero-filled when it grows (it is about to be overwritten).
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using Bytes = std::vector<char, UninitializedAllocator<char>>;

// The bytes of one file. `size` is what the parsers see: the whole file, or the file without
// trailing zero padding after its last element (see without_trailing_padding()).
struct FileBytes {
  std::shared_ptr<const Bytes> buffer;
  std::size_t size = 0;
  const char* data() const { return buffer->data(); }
  std::size_t file_size() const { return buffer->size(); }
};

[[noreturn]] void corrupt(const std::string& display, const std::string& what) {
  throw Error(ErrorCode::CorruptFile, display + ": corrupt or truncated DICOM (" + what + ")");
}

// Largest file read into memory: the largest volume plus room for a header.
uint64_t max_file_bytes() {
  return max_volume_bytes() + (uint64_t{64} << 20);
}

class Fd {
 public:
  explicit Fd(const fs::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Reads until `want` bytes are in `out` (from offset out.size()) or the file ends.
  bool read_to(Bytes& out, std::size_t want) const {
    std::size_t have = out.size();
    out.resize(want);
    while (have < want) {
      const ssize_t got = ::read(fd_, out.data() + have, want - have);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return false;
      if (got == 0) break;
      have += static_cast<std::size_t>(got);
    }
    out.resize(have);
    return true;
  }

 private:
  int fd_;
};

// Reads the rest of an open file into `out` (which holds its first bytes), refusing files larger
// than max_file_bytes(). The size comes from fstat(), then reading continues to the real end.
void read_rest(const Fd& fd, Bytes& out, const std::string& display) {
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw Error(ErrorCode::IoFailure, display + ": cannot stat the file");
  const uint64_t limit = max_file_bytes();
  if (static_cast<uint64_t>(st.st_size) > limit) {
    throw Error(ErrorCode::TooLarge, display + ": the file is " + std::to_string(st.st_size >> 20) +
                                         " MiB, more than the " + std::to_string(limit >> 20) +
                                         " MiB allowed (TUMORLAB_MAX_VOLUME_BYTES)");
  }
  std::size_t want = std::max<std::size_t>(static_cast<std::size_t>(st.st_size), out.size()) + 1;
  for (;;) {
    if (!fd.read_to(out, want)) throw Error(ErrorCode::IoFailure, display + ": cannot read the file");
    if (out.size() < want) break;  // end of file
    if (out.size() > limit) {
      throw Error(ErrorCode::TooLarge, display + ": the file grows beyond " + std::to_string(limit >> 20) + " MiB");
    }
    want = out.size() + (std::size_t{1} << 20);  // the file grew while we read it
  }
}

// Walks the top-level elements of a DICOM file without interpreting them, to find where trailing
// zero padding starts. Some writers pad files with zeros after the pixel data (one file of the
// shared MR series carries 2.4 MB of them); both libraries read each 8 zero bytes as an empty
// element (0000,0000) with an invalid VR, GDCM with one C++ exception per element, which made one
// such file cost more than a second. The zeros carry nothing, so the parsers are given the file up
// to the element boundary where only zeros remain. This walk only chooses that length: whatever
// it decides, DCMTK checks the bytes it returns before GDCM sees the same bytes, and if DCMTK
// refuses them the whole file is used instead (load_checked()).
class PaddingWalker {
 public:
  PaddingWalker(const char* data, std::size_t size) : d_(reinterpret_cast<const unsigned char*>(data)), size_(size) {}

  std::size_t usable_length() {
    std::size_t zeros_from = size_;
    while (zeros_from >= 8) {  // 8 bytes at a time: padding can be megabytes
      uint64_t word;
      std::memcpy(&word, d_ + zeros_from - 8, 8);
      if (word != 0) break;
      zeros_from -= 8;
    }
    while (zeros_from > 0 && d_[zeros_from - 1] == 0) --zeros_from;
    if (size_ - zeros_from < 64) return size_;  // nothing worth walking for
    if (size_ < 132 || std::memcmp(d_ + 128, "DICM", 4) != 0) return size_;
    std::size_t pos = 132;
    // Meta header: explicit VR little endian, group 0002.
    explicit_ = true;
    big_ = false;
    std::string ts;
    while (pos + 8 <= size_ && u16(pos) == 0x0002) {
      std::size_t value = pos;
      uint16_t g = 0, e = 0;
      uint32_t len = 0;
      if (!header(value, g, e, len)) return size_;
      if (e == 0x0010 && len != kUndefined && len <= size_ - value) {
        ts.assign(reinterpret_cast<const char*>(d_ + value), len);
        while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
      }
      if (!skip_value(value, len, 0)) return size_;
      pos = value;
    }
    if (ts.empty() || ts == "1.2.840.10008.1.2.1.99") return size_;  // unknown or deflated
    explicit_ = ts != "1.2.840.10008.1.2";
    big_ = ts == "1.2.840.10008.1.2.2";
    while (pos < size_) {
      if (pos >= zeros_from) return pos;  // an element boundary with only zeros after it
      uint16_t g = 0, e = 0;
      uint32_t len = 0;
      if (!header(pos, g, e, len) || !skip_value(pos, len, 0)) return size_;
    }
    return size_;
  }

 private:
  static constexpr uint32_t kUndefined = 0xffffffffu;
  uint16_t u16(std::size_t at) const {
    return big_ ? static_cast<uint16_t>(d_[at] << 8 | d_[at + 1]) : static_cast<uint16_t>(d_[at] | d_[at + 1] << 8);
  }
  uint32_t u32(std::size_t at) const {
    const uint32_t a = u16(at), b = u16(at + 2);
    return big_ ? (a << 16 | b) : (b << 16 | a);
  }
  static bool is_vr(const char* list, unsigned char a, unsigned char b) {
    for (const char* p = list; p[0] && p[1]; p += 2)
      if (p[0] == a && p[1] == b) return true;
    return false;
  }
  // Reads the tag and length at `pos` and moves `pos` to the value. False when unsure.
  bool header(std::size_t& pos, uint16_t& group, uint16_t& element, uint32_t& length) const {
    if (pos + 8 > size_) return false;
    group = u16(pos);
    element = u16(pos + 2);
    if (group == 0xfffe || !explicit_) {
      length = u32(pos + 4);
      pos += 8;
      return true;
    }
    const unsigned char a = d_[pos + 4], b = d_[pos + 5];
    if (is_vr("OBODOFOLOVOWSQSVUCUNURUTUV", a, b)) {
      if (pos + 12 > size_) return false;
      length = u32(pos + 8);
      pos += 12;
      return true;
    }
    if (is_vr("AEASATCSDADSDTFLFDISLOLTPNSHSLSSSTTMUIULUS", a, b)) {
      length = u16(pos + 6);
      pos += 8;
      return true;
    }
    return false;
  }
  bool skip_value(std::size_t& pos, uint32_t length, int depth) const {
    if (length != kUndefined) {
      if (length > size_ - pos) return false;
      pos += length;
      return true;
    }
    return skip_items(pos, depth + 1);
  }
  // The value of an undefined-length element: items up to the sequence delimiter.
  bool skip_items(std::size_t& pos, int depth) const {
    if (depth > 32) return false;
    for (;;) {
      if (pos + 8 > size_) return false;
      const uint16_t g = u16(pos), e = u16(pos + 2);
      const uint32_t len = u32(pos + 4);
      pos += 8;
      if (g != 0xfffe) return false;
      if (e == 0xe0dd) return true;
      if (e != 0xe000) return false;
      if (len != kUndefined) {
        if (len > size_ - pos) return false;
        pos += len;
        continue;
      }
      for (;;) {  // undefined-length item: elements up to the item delimiter
        if (pos + 8 > size_) return false;
        if (u16(pos) == 0xfffe && u16(pos + 2) == 0xe00d) {
          pos += 8;
          break;
        }
        uint16_t g2 = 0, e2 = 0;
        uint32_t len2 = 0;
        if (!header(pos, g2, e2, len2) || !skip_value(pos, len2, depth)) return false;
      }
    }
  }

  const unsigned char* d_;
  std::size_t size_;
  bool explicit_ = true, big_ = false;
};

FileBytes make_file_bytes(Bytes bytes) {
  FileBytes out;
  out.size = PaddingWalker(bytes.data(), bytes.size()).usable_length();
  out.buffer = std::make_shared<const Bytes>(std::move(bytes));
  return out;
}

// The whole file. Errors: CorruptFile when it cannot be opened (as DCMTK's loader reported it),
// TooLarge, IoFailure.
FileBytes read_file_bytes(const fs::path& path, const std::string& display) {
  Fd fd(path);
  if (fd.get() < 0) corrupt(display, "cannot open the file");
  Bytes bytes;
  read_rest(fd, bytes, display);
  return make_file_bytes(std::move(bytes));
}

// DCMTK input from a FileBytes buffer. Like DcmInputFileStream (and unlike DcmInputBufferStream)
// it has a stream factory, so DCMTK leaves values over its read limit in the buffer and, more
// importantly, checks every such declared length against the bytes that remain ("larger than
// remaining bytes in file") instead of allocating it. The factory keeps the buffer alive for as
// long as an element refers to it.
class MemoryProducer : public DcmProducer {
 public:
  MemoryProducer(std::shared_ptr<const Bytes> buffer, std::size_t size, std::size_t offset)
      : buffer_(std::move(buffer)), size_(std::min(size, buffer_->size())), pos_(std::min(offset, size_)) {}
  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool eos() override { return pos_ >= size_; }
  offile_off_t avail() override { return status_.good() ? static_cast<offile_off_t>(size_ - pos_) : 0; }
  offile_off_t read(void* buf, offile_off_t buflen) override {
    if (status_.bad() || buflen <= 0) return 0;
    const std::size_t n = std::min(static_cast<std::size_t>(buflen), size_ - pos_);
    std::memcpy(buf, buffer_->data() + pos_, n);
    pos_ += n;
    return static_cast<offile_off_t>(n);
  }
  offile_off_t skip(offile_off_t skiplen) override {
    if (status_.bad() || skiplen <= 0) return 0;
    const std::size_t n = std::min(static_cast<std::size_t>(skiplen), size_ - pos_);
    pos_ += n;
    return static_cast<offile_off_t>(n);
  }
  void putback(offile_off_t num) override {
    if (status_.bad() || num <= 0) return;
    if (static_cast<std::size_t>(num) > pos_) {
      status_ = EC_PutbackFailed;
    } else {
      pos_ -= static_cast<std::size_t>(num);
    }
  }

 private:
  std::shared_ptr<const Bytes> buffer_;
  std::size_t size_, pos_;
  OFCondition status_ = EC_Normal;
};

class MemoryInputStream : public DcmInputStream {
 public:
  MemoryInputStream(std::shared_ptr<const Bytes> buffer, std::size_t size, std::size_t offset = 0)
      : DcmInputStream(&producer_),  // only stores the pointer, as DcmInputFileStream does
        producer_(buffer, size, offset),
        buffer_(std::move(buffer)),
        size_(size),
        offset_(offset) {}
  DcmInputStreamFactory* newFactory() const override;

 private:
  MemoryProducer producer_;
  std::shared_ptr<const Bytes> buffer_;
  std::size_t size_, offset_;
};

class MemoryStreamFactory : public DcmInputStreamFactory {
 public:
  MemoryStreamFactory(std::shared_ptr<const Bytes> buffer, std::size_t size, std::size_t offset)
      : buffer_(std::move(buffer)), size_(size), offset_(offset) {}
  DcmInputStream* create() const override { return new MemoryInputStream(buffer_, size_, offset_); }
  DcmInputStreamFactory* clone() const override { return new MemoryStreamFactory(*this); }
  // There is no memory type in the enum; VXL's vil_dicom_stream_factory answers the same.
  DcmInputStreamFactoryType ident() const override { return DFT_DcmInputFileStreamFactory; }

 private:
  std::shared_ptr<const Bytes> buffer_;
  std::size_t size_, offset_;
};

DcmInputStreamFactory* MemoryInputStream::newFactory() const {
  if (currentProducer() != &producer_) return nullptr;  // a compression filter is installed
  return new MemoryStreamFactory(buffer_, size_, offset_ + static_cast<std::size_t>(tell()));
}

// A std::istream over a FileBytes buffer, for GDCM (which seeks a lot).
class MemoryBuf : public std::streambuf {
 public:
  MemoryBuf(const char* data, std::size_t size) {
    char* p = const_cast<char*>(data);  // the get area is only read
    setg(p, p, p + size);
  }

 protected:
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override {
    if (!(which & std::ios_base::in)) return pos_type(off_type(-1));
    const off_type size = egptr() - eback();
    const off_type base = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? gptr() - eback() : size;
    const off_type target = base + off;
    if (target < 0 || target > size) return pos_type(off_type(-1));
    setg(eback(), eback() + target, egptr());
    return pos_type(target);
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode which) override {
    return seekoff(off_type(pos), std::ios_base::beg, which);
  }
};

struct MemoryIStream {
  explicit MemoryIStream(const FileBytes& bytes) : buf(bytes.data(), bytes.size), in(&buf) {}
  MemoryBuf buf;
  std::istream in;
};

}  // namespace

namespace detail {

// Every file is parsed completely by DCMTK before GDCM sees it, for two reasons:
// - Debian's GDCM is built with assertions on, and some malformed inputs (a file cut inside its
//   header, say) hit an assert() and abort the process; DCMTK reports them as errors.
// - GDCM allocates (and zero-fills) an element's declared 32-bit length before it reads the
//   value, so a few bytes claiming 3 GB made it allocate 3 GB (found by the fuzzer). DCMTK checks
//   every declared length against the bytes that remain in the file and refuses the file.
// The whole file is parsed, not just up to the pixel data: GDCM reads the length of the element
// after its stop tag too. DCMTK leaves values over 4 KiB in the file's buffer (MemoryInputStream).
// Where GDCM would parse the same bytes differently from DCMTK, the file is refused as well:
// GDCM re-reads a dataset with other rules (implicit lengths, 16-bit VRs) after it meets a
// non-standard VR, and it "repairs" some lengths (a UL of 6 bytes, an implicit length of 13),
// after which it no longer sees the elements DCMTK checked.
// A deflated dataset is first inflated (bounded) into memory, because DCMTK cannot know the
// remaining length of a compressed stream and would allocate declared lengths itself; the
// inflated bytes are then parsed like a plain file.
std::unique_ptr<DcmFileFormat> load_checked_dicom(const fs::path& path, const std::string& display);

}  // namespace detail

namespace {

std::string tag_text(const DcmTagKey& key) {
  return key.toString().c_str();
}

// Refuses what DCMTK accepted but GDCM reads differently (see load_checked_dicom()).
void check_gdcm_agrees(DcmItem& ds, bool implicit, const std::string& display) {
  DcmStack stack;
  while (ds.nextObject(stack, OFTrue).good()) {
    DcmObject* obj = stack.top();
    if (!obj) break;
    const DcmEVR vr = obj->getTag().getEVR();
    const Uint32 length = obj->getLengthField();
    // Zero padding after the pixel data reads as empty (0000,0000) elements with VR "\0\0";
    // harmless (GDCM then reads the rest with 16-bit lengths, as DCMTK did) and common.
    const bool zero_padding = obj->getTag() == DcmTagKey(0, 0) && length == 0;
    if (!implicit && (vr == EVR_UNKNOWN || vr == EVR_UNKNOWN2B) && !zero_padding) {
      corrupt(display, "element " + tag_text(obj->getTag()) + " has a non-standard value representation");
    }
    if (length == DCM_UndefinedLength) continue;
    int width = 0;
    switch (vr) {
      case EVR_US:
      case EVR_SS:
        width = 2;
        break;
      case EVR_UL:
      case EVR_SL:
      case EVR_FL:
      case EVR_AT:
        width = 4;
        break;
      case EVR_FD:
      case EVR_SV:
      case EVR_UV:
        width = 8;
        break;
      default:
        break;
    }
    if (width > 0 && length % width != 0) {
      corrupt(display, "element " + tag_text(obj->getTag()) + " has a length of " + std::to_string(length) +
                           " bytes, not a multiple of " + std::to_string(width));
    }
    if (implicit && length == 13) {
      corrupt(display, "element " + tag_text(obj->getTag()) + " has an odd length of 13 bytes");
    }
  }
}

// DCMTK's DcmFileFormat::loadFile(), from memory.
OFCondition parse_file_format(DcmFileFormat& ff, const FileBytes& bytes) {
  MemoryInputStream in(bytes.buffer, bytes.size);
  ff.transferInit();
  const OFCondition cond = ff.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  ff.transferEnd();
  return cond;
}

// The checked DCMTK parse of load_checked_dicom(). When the parsers were to see the file without
// its trailing zero padding but DCMTK refuses that, `bytes` falls back to the whole file.
std::unique_ptr<DcmFileFormat> load_checked(FileBytes& bytes, const std::string& display) {
  quiet_gdcm();
  auto ff = std::make_unique<DcmFileFormat>();
  // The meta header (always explicit little endian, no compression) says whether the dataset
  // is deflated. A file without one is read as a plain dataset.
  MemoryInputStream in(bytes.buffer, bytes.size);
  DcmMetaInfo& meta = *ff->getMetaInfo();
  meta.transferInit();
  OFCondition cond = meta.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  meta.transferEnd();
  if (cond.bad()) corrupt(display, cond.text());
  OFString ts;
  meta.findAndGetOFString(DCM_TransferSyntaxUID, ts);
  if (ts != UID_DeflatedExplicitVRLittleEndianTransferSyntax) {
    ff = std::make_unique<DcmFileFormat>();
    cond = parse_file_format(*ff, bytes);
    if (cond.bad() && bytes.size < bytes.file_size()) {
      bytes.size = bytes.file_size();  // see PaddingWalker
      ff = std::make_unique<DcmFileFormat>();
      cond = parse_file_format(*ff, bytes);
    }
    if (cond.bad()) corrupt(display, cond.text());
  } else {
    // Inflate with DCMTK's own filter, as DcmDataset::read would, into memory (bounded: the
    // inflated dataset holds the pixel data, so it may not exceed the largest volume), then
    // parse that like a plain file.
    const uint64_t limit = max_file_bytes();
    cond = in.installCompressionFilter(ESC_zlib);
    if (cond.bad()) corrupt(display, cond.text());
    Bytes inflated;
    std::size_t have = 0;
    while (!in.eos()) {
      inflated.resize(have + (std::size_t{1} << 16));
      const offile_off_t got = in.read(inflated.data() + have, static_cast<offile_off_t>(inflated.size() - have));
      if (got <= 0) break;
      have += static_cast<std::size_t>(got);
      if (have > limit) {
        throw Error(ErrorCode::TooLarge, display + ": the deflated dataset inflates to more than " +
                                             std::to_string(limit >> 20) + " MiB (TUMORLAB_MAX_VOLUME_BYTES)");
      }
    }
    inflated.resize(have);
    if (in.status().bad()) corrupt(display, std::string("cannot inflate the dataset: ") + in.status().text());
    const auto plain = std::make_shared<const Bytes>(std::move(inflated));
    MemoryInputStream plain_in(plain, plain->size());
    DcmDataset& ds = *ff->getDataset();
    ds.transferInit();
    cond = ds.read(plain_in, EXS_LittleEndianExplicit, EGL_noChange, DCM_MaxReadLength);
    ds.transferEnd();
    if (cond.bad()) corrupt(display, cond.text());
  }
  // The meta header too: GDCM asserts (aborts) on a non-standard VR there.
  check_gdcm_agrees(*ff->getMetaInfo(), /*implicit=*/false, display);
  check_gdcm_agrees(*ff->getDataset(), DcmXfer(ff->getDataset()->getOriginalXfer()).isImplicitVR(), display);
  return ff;
}

}  // namespace

std::unique_ptr<DcmFileFormat> detail::load_checked_dicom(const fs::path& path, const std::string& display) {
  FileBytes bytes = read_file_bytes(path, display);
  return load_checked(bytes, display);
}

namespace {

// load_checked(), then: GDCM must take the dataset to be in the same encoding as DCMTK did
// (explicit or implicit VR, byte order). With a damaged meta header the two guess differently
// (the fuzzer found GDCM reading as big endian a dataset DCMTK had checked as little endian),
// and the lengths DCMTK checked are then not the ones GDCM reads. GDCM's guess comes from
// reading the meta header only (ReadUpToTag stops before the first dataset element's value).
// Afterwards `bytes.size` is what GDCM may parse.
void check_structure(FileBytes& bytes, const std::string& display) {
  const auto ff = load_checked(bytes, display);
  const DcmXfer dcmtk(ff->getDataset()->getOriginalXfer());
  MemoryIStream in(bytes);
  gdcm::Reader probe;
  probe.SetStream(in.in);
  try {
    probe.ReadUpToTag(gdcm::Tag(0x0000, 0x0000));
  } catch (const std::exception&) {
  }
  const gdcm::TransferSyntax ts = probe.GetFile().GetHeader().GetDataSetTransferSyntax();
  if (!ts.IsValid()) return;  // GDCM refuses the file itself ("Meta Header issue")
  const bool gdcm_explicit = ts.GetNegociatedType() == gdcm::TransferSyntax::Explicit;
  const bool gdcm_big = ts.GetSwapCode() == gdcm::SwapCode::BigEndian;
  if (gdcm_explicit != dcmtk.isExplicitVR() || gdcm_big != (dcmtk.getByteOrder() == EBO_BigEndian)) {
    corrupt(display, "the transfer syntax is ambiguous (damaged meta header?)");
  }
}

std::string trim(std::string s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\0' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\0')) ++b;
  return s.substr(b);
}

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

// Raw text of a (text VR) element; "" when absent or empty.
std::string text_of(const gdcm::DataSet& ds, const gdcm::Tag& tag) {
  if (!ds.FindDataElement(tag)) return "";
  const gdcm::DataElement& de = ds.GetDataElement(tag);
  const gdcm::ByteValue* bv = de.GetByteValue();
  if (!bv || bv->GetLength() == 0) return "";
  return trim(std::string(bv->GetPointer(), bv->GetLength()));
}

std::vector<double> parse_numbers(const std::string& text) {
  std::vector<double> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, '\\')) {
    item = trim(item);
    if (item.empty()) {
      out.push_back(kNaN);
      continue;
    }
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    out.push_back(end && end != item.c_str() && std::isfinite(v) ? v : kNaN);
  }
  return out;
}

double number_of(const std::string& text, double fallback) {
  const auto v = parse_numbers(text);
  return (!v.empty() && std::isfinite(v[0])) ? v[0] : fallback;
}

// The first item's dataset of a sequence, or nullptr.
const gdcm::DataSet* item_of(const gdcm::DataSet& ds, const gdcm::Tag& seq_tag, std::size_t index1 = 1) {
  if (!ds.FindDataElement(seq_tag)) return nullptr;
  gdcm::SmartPointer<gdcm::SequenceOfItems> sq = ds.GetDataElement(seq_tag).GetValueAsSQ();
  if (!sq || sq->GetNumberOfItems() < index1) return nullptr;
  return &sq->GetItem(index1).GetNestedDataSet();
}

using V3 = std::array<double, 3>;
V3 cross(const V3& a, const V3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const V3& a, const V3& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
double norm(const V3& a) {
  return std::sqrt(dot(a, a));
}

// What one frame contributes to a series.
struct FrameInfo {
  int file = 0;
  int frame = 0;
  bool has_pos = false;
  bool has_ori = false;
  V3 ipp{0, 0, 0};
  std::array<double, 6> iop{1, 0, 0, 0, 1, 0};
  double spacing_row = kNaN, spacing_col = kNaN;  // PixelSpacing[0], [1]
  double thickness = kNaN, between = kNaN;
  double slope = 1, intercept = 0;
  double bvalue = kNaN;
  double temporal = kNaN;
  int acquisition = 0, instance = 0;
};

struct FileHeader {
  std::string path;
  std::string display;  // path relative to the source, for messages
  std::string series_uid, study_uid, modality, description, sop_class, transfer_syntax, photometric;
  bool palette = false;  // GDCM's image reader would take the image as PALETTE COLOR
  int series_number = 0;
  int rows = 0, cols = 0, frames = 1;
  int bits_allocated = 0, bits_stored = 0, pixel_representation = 0, samples = 1;
  std::vector<FrameInfo> frame_info;
};

bool is_seg_sop_class(const std::string& uid) {
  return uid == "1.2.840.10008.5.1.4.1.1.66.4";
}

// Reads the frame geometry out of one functional-group item (shared or per-frame).
void apply_functional_groups(const gdcm::DataSet& fg, FrameInfo& f, const gdcm::StringFilter& sf) {
  if (const gdcm::DataSet* pos = item_of(fg, gdcm::Tag(0x0020, 0x9113))) {
    const auto v = parse_numbers(text_of(*pos, gdcm::Tag(0x0020, 0x0032)));
    if (v.size() >= 3 && std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2])) {
      f.ipp = {v[0], v[1], v[2]};
      f.has_pos = true;
    }
  }
  if (const gdcm::DataSet* ori = item_of(fg, gdcm::Tag(0x0020, 0x9116))) {
    const auto v = parse_numbers(text_of(*ori, gdcm::Tag(0x0020, 0x0037)));
    if (v.size() >= 6 && std::all_of(v.begin(), v.begin() + 6, [](double x) { return std::isfinite(x); })) {
      std::copy(v.begin(), v.begin() + 6, f.iop.begin());
      f.has_ori = true;
    }
  }
  if (const gdcm::DataSet* pm = item_of(fg, gdcm::Tag(0x0028, 0x9110))) {
    const auto ps = parse_numbers(text_of(*pm, gdcm::Tag(0x0028, 0x0030)));
    if (ps.size() >= 2) {
      f.spacing_row = ps[0];
      f.spacing_col = ps[1];
    }
    f.thickness = number_of(text_of(*pm, gdcm::Tag(0x0018, 0x0050)), f.thickness);
    f.between = number_of(text_of(*pm, gdcm::Tag(0x0018, 0x0088)), f.between);
  }
  if (const gdcm::DataSet* pt = item_of(fg, gdcm::Tag(0x0028, 0x9145))) {
    f.slope = number_of(text_of(*pt, gdcm::Tag(0x0028, 0x1053)), f.slope);
    f.intercept = number_of(text_of(*pt, gdcm::Tag(0x0028, 0x1052)), f.intercept);
  }
  if (const gdcm::DataSet* fc = item_of(fg, gdcm::Tag(0x0020, 0x9111))) {
    if (fc->FindDataElement(gdcm::Tag(0x0020, 0x9128))) {
      f.temporal = number_of(sf.ToString(fc->GetDataElement(gdcm::Tag(0x0020, 0x9128))), f.temporal);
    }
  }
  if (const gdcm::DataSet* diff = item_of(fg, gdcm::Tag(0x0018, 0x9117))) {
    if (diff->FindDataElement(gdcm::Tag(0x0018, 0x9087))) {
      f.bvalue = number_of(sf.ToString(diff->GetDataElement(gdcm::Tag(0x0018, 0x9087))), f.bvalue);
    }
  }
}

int to_int(const std::string& s, int fallback) {
  const double v = number_of(s, kNaN);
  if (!std::isfinite(v) || v < -2147483647.0 || v > 2147483647.0) return fallback;
  return static_cast<int>(v);
}

// Whether GDCM's image reader takes this dataset's PhotometricInterpretation as PALETTE COLOR.
// It reads the raw value as a C string and, failing an exact match, takes any prefix of a
// defined term ("P", "PALETTE CO" followed by a NUL): such an image without its palette lookup
// tables made GDCM abort the process on an assert (found by the fuzzer). The same rule as
// gdcm::PixmapReader::ReadImageInternal, so every image GDCM would treat as a palette is refused.
bool gdcm_reads_palette(const gdcm::DataSet& ds) {
  const gdcm::Tag tag(0x0028, 0x0004);
  if (!ds.FindDataElement(tag)) return false;
  const gdcm::ByteValue* bv = ds.GetDataElement(tag).GetByteValue();
  if (!bv || bv->GetLength() == 0) return false;
  const std::string raw(bv->GetPointer(), bv->GetLength());
  if (raw.c_str()[0] == '\0') return false;  // GDCM reads an empty C string as MONOCHROME1
  return gdcm::PhotometricInterpretation::GetPIType(raw.c_str()) == gdcm::PhotometricInterpretation::PALETTE_COLOR;
}

// Parses everything but the pixel data. Throws Error(CorruptFile) when GDCM cannot read it.
FileHeader read_header(const fs::path& path, FileBytes& bytes, const std::string& display) {
  quiet_gdcm();
  FileHeader h;
  h.path = path.string();
  h.display = display;
  check_structure(bytes, display);
  MemoryIStream in(bytes);
  gdcm::Reader reader;
  reader.SetStream(in.in);
  bool ok = false;
  try {
    ok = reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::CorruptFile, display + ": cannot parse the DICOM header (" + e.what() + ")");
  }
  if (!ok) throw Error(ErrorCode::CorruptFile, display + ": cannot parse the DICOM header");
  const gdcm::File& file = reader.GetFile();
  const gdcm::DataSet& ds = file.GetDataSet();
  gdcm::StringFilter sf;
  sf.SetFile(file);
  auto str = [&](uint16_t g, uint16_t e) -> std::string {
    const gdcm::Tag t(g, e);
    if (!ds.FindDataElement(t) || ds.GetDataElement(t).IsEmpty()) return "";
    try {
      return trim(sf.ToString(t));
    } catch (const std::exception&) {
      return "";
    }
  };
  h.series_uid = str(0x0020, 0x000e);
  h.study_uid = str(0x0020, 0x000d);
  h.modality = str(0x0008, 0x0060);
  h.description = str(0x0008, 0x103e);
  h.series_number = to_int(str(0x0020, 0x0011), 0);
  h.sop_class = str(0x0008, 0x0016);
  if (h.sop_class.empty()) h.sop_class = trim(file.GetHeader().GetMediaStorageAsString());
  h.transfer_syntax = trim(std::string(gdcm::TransferSyntax::GetTSString(file.GetHeader().GetDataSetTransferSyntax())));
  h.rows = to_int(str(0x0028, 0x0010), 0);
  h.cols = to_int(str(0x0028, 0x0011), 0);
  h.frames = std::max(1, to_int(str(0x0028, 0x0008), 1));
  h.samples = std::max(1, to_int(str(0x0028, 0x0002), 1));
  h.bits_allocated = to_int(str(0x0028, 0x0100), 16);
  h.bits_stored = to_int(str(0x0028, 0x0101), h.bits_allocated);
  h.pixel_representation = to_int(str(0x0028, 0x0103), 0);
  h.photometric = str(0x0028, 0x0004);
  h.palette = gdcm_reads_palette(ds);

  // Native (uncompressed, not deflated) pixel data must fit in the file: catches truncated files
  // and damaged Rows/Columns/NumberOfFrames before anything is allocated for them.
  const gdcm::TransferSyntax ts = file.GetHeader().GetDataSetTransferSyntax();
  if (h.rows > 0 && h.cols > 0 && !ts.IsEncapsulated() && ts != gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian &&
      !is_seg_sop_class(h.sop_class)) {
    const uint64_t bits = static_cast<uint64_t>(h.rows) * static_cast<uint64_t>(h.cols) *
                          static_cast<uint64_t>(h.frames) * static_cast<uint64_t>(h.samples) *
                          static_cast<uint64_t>(std::max(1, h.bits_allocated));
    const uint64_t file_size = bytes.size;  // without trailing zero padding
    if (bits / 8 > file_size) {
      throw Error(ErrorCode::CorruptFile, display + ": the header describes " + std::to_string(h.cols) + "x" +
                                              std::to_string(h.rows) + "x" + std::to_string(h.frames) + " pixels (" +
                                              std::to_string(bits / 8) + " bytes) but the file holds " +
                                              std::to_string(file_size) + " bytes (truncated?)");
    }
  }

  FrameInfo base;
  {
    const auto ipp = parse_numbers(text_of(ds, gdcm::Tag(0x0020, 0x0032)));
    if (ipp.size() >= 3 && std::isfinite(ipp[0]) && std::isfinite(ipp[1]) && std::isfinite(ipp[2])) {
      base.ipp = {ipp[0], ipp[1], ipp[2]};
      base.has_pos = true;
    }
    const auto iop = parse_numbers(text_of(ds, gdcm::Tag(0x0020, 0x0037)));
    if (iop.size() >= 6 && std::all_of(iop.begin(), iop.begin() + 6, [](double x) { return std::isfinite(x); })) {
      std::copy(iop.begin(), iop.begin() + 6, base.iop.begin());
      base.has_ori = true;
    }
    const auto ps = parse_numbers(text_of(ds, gdcm::Tag(0x0028, 0x0030)));
    if (ps.size() >= 2) {
      base.spacing_row = ps[0];
      base.spacing_col = ps[1];
    } else {
      // Imager pixel spacing (projection images) as a fallback.
      const auto ips = parse_numbers(text_of(ds, gdcm::Tag(0x0018, 0x1164)));
      if (ips.size() >= 2) {
        base.spacing_row = ips[0];
        base.spacing_col = ips[1];
      }
    }
    base.thickness = number_of(text_of(ds, gdcm::Tag(0x0018, 0x0050)), kNaN);
    base.between = number_of(text_of(ds, gdcm::Tag(0x0018, 0x0088)), kNaN);
    base.slope = number_of(text_of(ds, gdcm::Tag(0x0028, 0x1053)), 1.0);
    base.intercept = number_of(text_of(ds, gdcm::Tag(0x0028, 0x1052)), 0.0);
    if (base.slope == 0) base.slope = 1;
    base.instance = to_int(str(0x0020, 0x0013), 0);
    base.acquisition = to_int(str(0x0020, 0x0012), 0);
    base.bvalue = number_of(str(0x0018, 0x9087), kNaN);
    if (!std::isfinite(base.bvalue)) {
      // Siemens keeps the b-value in a private element of the "SIEMENS MR HEADER" block.
      const gdcm::PrivateTag siemens_b(0x0019, 0x0c, "SIEMENS MR HEADER");
      if (ds.FindDataElement(siemens_b)) {
        const gdcm::DataElement& de = ds.GetDataElement(siemens_b);
        if (const gdcm::ByteValue* bv = de.GetByteValue()) {
          base.bvalue = number_of(trim(std::string(bv->GetPointer(), bv->GetLength())), kNaN);
        }
      }
    }
  }

  const gdcm::DataSet* shared = item_of(ds, gdcm::Tag(0x5200, 0x9229));
  if (shared) apply_functional_groups(*shared, base, sf);
  const bool per_frame = ds.FindDataElement(gdcm::Tag(0x5200, 0x9230));
  h.frame_info.reserve(static_cast<std::size_t>(std::min(h.frames, 100000)));
  for (int f = 0; f < h.frames; ++f) {
    FrameInfo fi = base;
    fi.frame = f;
    if (per_frame) {
      if (const gdcm::DataSet* item = item_of(ds, gdcm::Tag(0x5200, 0x9230), static_cast<std::size_t>(f) + 1)) {
        apply_functional_groups(*item, fi, sf);
      }
    } else if (h.frames > 1 && base.has_pos && base.has_ori) {
      // Legacy multi-frame: frames are stacked along the normal from the file's position.
      const V3 r{base.iop[0], base.iop[1], base.iop[2]}, c{base.iop[3], base.iop[4], base.iop[5]};
      V3 n = cross(r, c);
      const double nn = norm(n);
      double step = std::isfinite(base.between) && base.between > 0       ? base.between
                    : std::isfinite(base.thickness) && base.thickness > 0 ? base.thickness
                                                                          : 1.0;
      if (nn > 0) {
        for (int a = 0; a < 3; ++a) fi.ipp[a] = base.ipp[a] + f * step * n[a] / nn;
      }
    }
    h.frame_info.push_back(fi);
  }
  return h;
}

bool ends_with_zip(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".zip";
}

bool starts_with_zip_magic(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char b[4] = {};
  in.read(b, 4);
  return in.gcount() == 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

// Extracts a zip into a fresh temp folder. Entry names are not trusted: each entry is written as
// "<index>_<sanitised basename>", so nothing can escape the folder.
std::shared_ptr<TempTree> extract_zip(const fs::path& zip_path) {
  int err = 0;
  zip_t* za = zip_open(zip_path.string().c_str(), ZIP_RDONLY, &err);
  if (!za) {
    throw Error(ErrorCode::CorruptFile, zip_path.filename().string() + ": not a readable zip archive (libzip error " +
                                            std::to_string(err) + ")");
  }
  struct Closer {
    zip_t* z;
    ~Closer() { zip_discard(z); }
  } closer{za};

  auto tree = std::make_shared<TempTree>();
  std::string templ = (fs::temp_directory_path() / "tumorlab-dicom-zip-XXXXXX").string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw Error(ErrorCode::IoFailure, "cannot create a temporary folder to extract the zip");
  tree->dir = buf.data();

  const uint64_t budget = max_volume_bytes() * 2;
  uint64_t written = 0;
  const zip_int64_t n = zip_get_num_entries(za, 0);
  std::vector<char> chunk(1 << 16);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, static_cast<zip_uint64_t>(i), 0, &st) != 0 || !st.name) continue;
    std::string name = st.name;
    if (name.empty() || name.back() == '/') continue;  // folder entry
    std::string base = fs::path(name).filename().string();
    if (base.empty() || base[0] == '.') continue;  // hidden files, __MACOSX resource forks
    if (name.find("__MACOSX/") != std::string::npos) continue;
    for (char& ch : base) {
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '_')) ch = '_';
    }
    zip_file_t* zf = zip_fopen_index(za, static_cast<zip_uint64_t>(i), 0);
    if (!zf) {
      throw Error(ErrorCode::CorruptFile, zip_path.filename().string() + ": cannot open entry '" + name + "'");
    }
    const fs::path out_path = tree->dir / (std::to_string(i) + "_" + base);
    std::ofstream out(out_path, std::ios::binary);
    zip_int64_t got;
    bool failed = false;
    while ((got = zip_fread(zf, chunk.data(), chunk.size())) > 0) {
      written += static_cast<uint64_t>(got);
      if (written > budget) {
        zip_fclose(zf);
        throw Error(ErrorCode::TooLarge, zip_path.filename().string() + ": uncompressed contents exceed " +
                                             std::to_string(budget >> 20) + " MiB");
      }
      out.write(chunk.data(), got);
    }
    if (got < 0) failed = true;
    zip_fclose(zf);
    if (failed) {
      throw Error(ErrorCode::CorruptFile, zip_path.filename().string() + ": entry '" + name + "' is corrupt");
    }
    if (!out) throw Error(ErrorCode::IoFailure, "cannot write the extracted zip entry '" + name + "'");
  }
  return tree;
}

struct SeriesBuild {
  std::vector<FileHeader> files;
};

// Orientation/size key for splitting a series into consistent groups.
struct GroupKey {
  int rows, cols, samples;
  bool has_pos, has_ori;
  std::array<double, 6> iop;
  bool matches(const GroupKey& o) const {
    if (rows != o.rows || cols != o.cols || samples != o.samples || has_pos != o.has_pos || has_ori != o.has_ori)
      return false;
    for (int i = 0; i < 6; ++i)
      if (std::fabs(iop[i] - o.iop[i]) > 1e-3) return false;
    return true;
  }
};

std::string series_label(const DicomSeriesInfo& s) {
  std::string label = "series " + std::to_string(s.series_number);
  if (!s.series_description.empty()) label += " '" + s.series_description + "'";
  return label;
}

struct Range {
  double lo, hi;
};

PixelType choose_pixel_type(const FileHeader& h, const std::vector<const FrameInfo*>& frames) {
  bool need_float = false;
  double icpt_lo = 0, icpt_hi = 0;
  bool first = true;
  for (const FrameInfo* f : frames) {
    if (f->slope != 1.0 || f->intercept != std::floor(f->intercept) || std::fabs(f->intercept) > 1e9) need_float = true;
    if (first) {
      icpt_lo = icpt_hi = f->intercept;
      first = false;
    }
    icpt_lo = std::min(icpt_lo, f->intercept);
    icpt_hi = std::max(icpt_hi, f->intercept);
  }
  if (need_float || h.bits_allocated > 32 || h.bits_allocated == 1) return PixelType::Float32;
  int bits = h.bits_stored > 0 && h.bits_stored <= h.bits_allocated ? h.bits_stored : h.bits_allocated;
  if (bits <= 0 || bits > 32) return PixelType::Float32;
  const bool is_signed = h.pixel_representation == 1 && h.samples == 1;
  Range stored = is_signed ? Range{-std::ldexp(1.0, bits - 1), std::ldexp(1.0, bits - 1) - 1}
                           : Range{0.0, std::ldexp(1.0, bits) - 1};
  const double lo = stored.lo + icpt_lo, hi = stored.hi + icpt_hi;
  if (h.bits_allocated == 8 && lo >= 0 && hi <= 255) return PixelType::UInt8;
  if (!is_signed && lo >= 0 && hi <= 65535) return PixelType::UInt16;
  if (lo >= -32768 && hi <= 32767) return PixelType::Int16;
  if (!is_signed && lo >= 0 && hi <= 65535) return PixelType::UInt16;
  if (lo >= -2147483648.0 && hi <= 2147483647.0) return PixelType::Int32;
  return PixelType::Float32;
}

}  // namespace

struct DicomSeriesInfo::Layout {
  std::shared_ptr<TempTree> temp;
  struct File {
    std::string path, display;
    int frames = 1;
  };
  struct Slot {
    int file = 0, frame = 0;
    double slope = 1, intercept = 0;
  };
  std::vector<File> files;
  std::vector<Slot> slots;  // slot index = channel * slices + k
  int rows = 0, cols = 0, slices = 0, channels = 1, samples = 1;
  std::string label;
  std::string incomplete_reason;
  std::string unreadable_reason;
};

namespace {

// Builds the public description of one series from its files.
DicomSeriesInfo build_series(std::vector<FileHeader> files, const std::shared_ptr<TempTree>& temp) {
  std::sort(files.begin(), files.end(), [](const FileHeader& a, const FileHeader& b) {
    const int ia = a.frame_info.empty() ? 0 : a.frame_info[0].instance;
    const int ib = b.frame_info.empty() ? 0 : b.frame_info[0].instance;
    if (ia != ib) return ia < ib;
    return a.path < b.path;
  });
  DicomSeriesInfo info;
  const FileHeader& h0 = files.front();
  info.series_instance_uid = h0.series_uid;
  info.study_instance_uid = h0.study_uid;
  info.modality = h0.modality;
  info.series_description = h0.description;
  info.series_number = h0.series_number;
  info.sop_class_uid = h0.sop_class;
  info.transfer_syntax_uid = h0.transfer_syntax;
  info.instances = static_cast<int>(files.size());
  for (const auto& f : files) info.frames += f.frames;

  auto layout = std::make_shared<DicomSeriesInfo::Layout>();
  layout->temp = temp;
  layout->label = series_label(info);
  for (std::size_t i = 0; i < files.size(); ++i) {
    layout->files.push_back({files[i].path, files[i].display, files[i].frames});
    for (auto& fi : files[i].frame_info) fi.file = static_cast<int>(i);
  }
  info.layout = layout;

  auto unreadable = [&](const std::string& why) {
    info.readable = false;
    info.warnings.push_back(why);
    layout->unreadable_reason = why;
    return info;
  };
  if (is_seg_sop_class(h0.sop_class) || h0.modality == "SEG") {
    return unreadable("DICOM SEG (a segmentation, not an image): read it with read_dicom_seg()");
  }

  // Split into groups of consistent size and orientation; keep the largest.
  std::vector<std::pair<GroupKey, std::vector<const FrameInfo*>>> groups;
  std::map<const FrameInfo*, const FileHeader*> owner;
  for (const auto& f : files) {
    if (f.rows <= 0 || f.cols <= 0) continue;
    for (const auto& fi : f.frame_info) {
      owner[&fi] = &f;
      GroupKey key{f.rows, f.cols, f.samples, fi.has_pos, fi.has_ori, fi.iop};
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first.matches(key); });
      if (it == groups.end()) {
        groups.push_back({key, {}});
        it = groups.end() - 1;
      }
      it->second.push_back(&fi);
    }
  }
  if (groups.empty()) return unreadable("no image pixel data (Rows/Columns missing)");
  std::stable_sort(groups.begin(), groups.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  if (groups.size() > 1) {
    int total = 0;
    for (const auto& g : groups) total += static_cast<int>(g.second.size());
    info.warnings.push_back("mixed orientations or image sizes (" + std::to_string(groups.size()) +
                            " groups, e.g. a localiser): reading the largest consistent group, " +
                            std::to_string(groups[0].second.size()) + " of " + std::to_string(total) + " frames");
  }
  const GroupKey key = groups[0].first;
  std::vector<const FrameInfo*> frames = groups[0].second;
  const FileHeader& hdr = *owner[frames[0]];
  layout->rows = key.rows;
  layout->cols = key.cols;
  layout->samples = key.samples;
  if (key.samples != 1 && key.samples != 3) {
    return unreadable(std::to_string(key.samples) + " samples per pixel are not supported");
  }
  for (const FrameInfo* f : frames) {
    if (owner[f]->palette) return unreadable("palette colour images are not supported");
  }

  Geometry g;
  g.size = {key.cols, key.rows, 1};
  const double sp_row = frames[0]->spacing_row, sp_col = frames[0]->spacing_col;
  g.spacing_mm[0] = std::isfinite(sp_col) && sp_col > 0 ? sp_col : 1.0;
  g.spacing_mm[1] = std::isfinite(sp_row) && sp_row > 0 ? sp_row : 1.0;

  V3 row{1, 0, 0}, col{0, 1, 0};
  if (key.has_ori) {
    row = {key.iop[0], key.iop[1], key.iop[2]};
    col = {key.iop[3], key.iop[4], key.iop[5]};
    const double nr = norm(row), nc = norm(col);
    if (nr < 0.5 || nc < 0.5 || std::fabs(dot(row, col)) / (nr * nc) > 1e-2) {
      return unreadable("ImageOrientationPatient is not a pair of orthogonal unit vectors");
    }
    for (int a = 0; a < 3; ++a) row[a] /= nr;
    const double rc = dot(row, col);
    for (int a = 0; a < 3; ++a) col[a] -= rc * row[a];
    const double nc2 = norm(col);
    for (int a = 0; a < 3; ++a) col[a] /= nc2;
  }
  const V3 normal = cross(row, col);
  for (int a = 0; a < 3; ++a) {
    g.direction[a * 3 + 0] = row[a];
    g.direction[a * 3 + 1] = col[a];
    g.direction[a * 3 + 2] = normal[a];
  }

  // Order: by position along the normal, then acquisition order.
  auto acquisition_less = [&](const FrameInfo* a, const FrameInfo* b) {
    const double ba = std::isfinite(a->bvalue) ? a->bvalue : -1, bb = std::isfinite(b->bvalue) ? b->bvalue : -1;
    if (ba != bb) return ba < bb;
    const double ta = std::isfinite(a->temporal) ? a->temporal : -1, tb = std::isfinite(b->temporal) ? b->temporal : -1;
    if (ta != tb) return ta < tb;
    if (a->acquisition != b->acquisition) return a->acquisition < b->acquisition;
    if (a->instance != b->instance) return a->instance < b->instance;
    if (a->file != b->file) return a->file < b->file;
    return a->frame < b->frame;
  };
  std::vector<std::vector<const FrameInfo*>> positions;  // one entry per distinct position
  std::vector<double> dist;
  if (key.has_pos) {
    std::vector<std::pair<double, const FrameInfo*>> sorted;
    for (const FrameInfo* f : frames) sorted.push_back({dot(f->ipp, normal), f});
    std::stable_sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) { return a.first < b.first; });
    const double tol = 0.01 * std::min(g.spacing_mm[0], g.spacing_mm[1]) + 1e-4;
    for (const auto& [d, f] : sorted) {
      if (positions.empty() || d - dist.back() > tol) {
        positions.push_back({});
        dist.push_back(d);
      }
      positions.back().push_back(f);
    }
  } else {
    std::vector<const FrameInfo*> sorted = frames;
    std::stable_sort(sorted.begin(), sorted.end(), [](const FrameInfo* a, const FrameInfo* b) {
      if (a->file != b->file) return a->file < b->file;  // files are in InstanceNumber order
      return a->frame < b->frame;
    });
    for (std::size_t k = 0; k < sorted.size(); ++k) {
      positions.push_back({sorted[k]});
      dist.push_back(static_cast<double>(k));
    }
    info.warnings.push_back("no ImagePositionPatient: frames are stacked in file/frame order");
  }
  for (auto& p : positions) std::stable_sort(p.begin(), p.end(), acquisition_less);

  std::size_t min_rep = positions[0].size(), max_rep = positions[0].size();
  for (const auto& p : positions) {
    min_rep = std::min(min_rep, p.size());
    max_rep = std::max(max_rep, p.size());
  }
  if (min_rep != max_rep) {
    const std::string w = "slice positions repeat unevenly (" + std::to_string(min_rep) + " to " +
                          std::to_string(max_rep) +
                          " images per position): duplicate or missing images; with allow_incomplete the first " +
                          std::to_string(min_rep) + " per position are read";
    info.warnings.push_back(w);
    info.incomplete = true;
    layout->incomplete_reason = w;
  }
  const int nk = static_cast<int>(positions.size());
  const int channels = static_cast<int>(min_rep);
  g.size[2] = nk;

  // Spacing along k, gaps and unevenness.
  if (nk == 1) {
    const FrameInfo* f = positions[0][0];
    g.spacing_mm[2] = std::isfinite(f->thickness) && f->thickness > 0 ? f->thickness
                      : std::isfinite(f->between) && f->between > 0   ? f->between
                                                                      : 1.0;
  } else if (!key.has_pos) {
    const FrameInfo* f = positions[0][0];
    g.spacing_mm[2] = std::isfinite(f->between) && f->between > 0       ? f->between
                      : std::isfinite(f->thickness) && f->thickness > 0 ? f->thickness
                                                                        : 1.0;
  } else {
    g.spacing_mm[2] = (dist.back() - dist.front()) / (nk - 1);
    std::vector<double> steps;
    for (int k = 1; k < nk; ++k) steps.push_back(dist[k] - dist[k - 1]);
    std::vector<double> sorted_steps = steps;
    std::nth_element(sorted_steps.begin(), sorted_steps.begin() + sorted_steps.size() / 2, sorted_steps.end());
    const double median = sorted_steps[sorted_steps.size() / 2];
    std::vector<std::string> problems;
    int gaps = 0;
    for (int k = 0; k + 1 < nk; ++k) {
      if (steps[k] > 1.5 * median) {
        ++gaps;
        if (gaps <= 3) {
          problems.push_back("missing slice(s) between slices " + std::to_string(k + 1) + " and " +
                             std::to_string(k + 2) + " of " + std::to_string(nk) + " (step " + fmt(steps[k]) +
                             " mm at " + fmt(dist[k]) + " mm along the slice normal, median step " + fmt(median) +
                             " mm)");
        }
      }
    }
    if (gaps > 3) problems.push_back(std::to_string(gaps - 3) + " more gap(s)");
    if (gaps == 0) {
      // Least-squares uniform grid through all positions.
      double mk = (nk - 1) / 2.0, md = 0;
      for (double d : dist) md += d;
      md /= nk;
      double sxy = 0, sxx = 0;
      for (int k = 0; k < nk; ++k) {
        sxy += (k - mk) * (dist[k] - md);
        sxx += (k - mk) * (k - mk);
      }
      const double slope = sxy / sxx;
      double worst = 0;
      int worst_k = 0;
      for (int k = 0; k < nk; ++k) {
        const double dev = std::fabs(dist[k] - (md + slope * (k - mk)));
        if (dev > worst) {
          worst = dev;
          worst_k = k;
        }
      }
      if (slope > 0 && worst > 0.01 * slope) {
        problems.push_back("uneven slice spacing: slice " + std::to_string(worst_k + 1) + " of " + std::to_string(nk) +
                           " lies " + fmt(worst) + " mm (" + fmt(100 * worst / slope) + "% of the " + fmt(slope) +
                           " mm spacing) off a uniform grid");
      }
    }
    for (const auto& p : problems) {
      info.warnings.push_back(p);
      if (!layout->incomplete_reason.empty()) layout->incomplete_reason += "; ";
      layout->incomplete_reason += p;
      info.incomplete = true;
    }
    // Shear (gantry tilt): positions drifting within the slice plane.
    double shear = 0;
    const V3 p0 = positions[0][0]->ipp;
    for (int k = 1; k < nk; ++k) {
      const V3& p = positions[k][0]->ipp;
      V3 v{p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]};
      const double along = dot(v, normal);
      for (int a = 0; a < 3; ++a) v[a] -= along * normal[a];
      shear = std::max(shear, norm(v));
    }
    if (shear > 0.1 * std::min(g.spacing_mm[0], g.spacing_mm[1]) + 1e-3) {
      info.warnings.push_back("slice positions drift within the slice plane by up to " + fmt(shear) +
                              " mm (gantry tilt?): the volume geometry ignores this shear");
    }
  }
  if (key.has_pos) {
    const V3& o = positions[0][0]->ipp;
    g.origin_lps = {o[0], o[1], o[2]};
  }
  if (!(g.spacing_mm[2] > 0) || !std::isfinite(g.spacing_mm[2])) g.spacing_mm[2] = 1.0;
  info.geometry = g;
  info.channels = channels;

  // Channel names from b-values when every channel has one.
  bool all_b = true;
  for (int c = 0; c < channels && all_b; ++c) all_b = std::isfinite(positions[0][c]->bvalue);
  if (channels > 1 && all_b) {
    for (int c = 0; c < channels; ++c) info.channel_names.push_back("b=" + fmt(positions[0][c]->bvalue));
  }

  layout->slices = nk;
  layout->channels = channels;
  layout->slots.resize(static_cast<std::size_t>(nk) * channels);
  std::vector<const FrameInfo*> used;
  for (int k = 0; k < nk; ++k) {
    for (int c = 0; c < channels; ++c) {
      const FrameInfo* f = positions[k][c];
      used.push_back(f);
      layout->slots[static_cast<std::size_t>(c) * nk + k] = {f->file, f->frame, f->slope, f->intercept};
    }
  }
  info.pixel_type = choose_pixel_type(hdr, used);
  if (key.samples == 3) info.pixel_type = hdr.bits_allocated <= 8 ? PixelType::UInt8 : PixelType::UInt16;
  if (key.samples == 3 &&
      std::any_of(used.begin(), used.end(), [](const FrameInfo* f) { return f->slope != 1.0 || f->intercept != 0.0; }))
    info.pixel_type = PixelType::Float32;
  return info;
}

}  // namespace

namespace {

// The first test of is_dicom_file(): 1 = DICOM ("DICM" after the preamble), 0 = not DICOM,
// -1 = no preamble but a plausible first element, so DCMTK must parse it.
int dicom_magic(const char* data, std::size_t got) {
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  if (got >= 132 && std::memcmp(b + 128, "DICM", 4) == 0) return 1;
  if (got < 8) return 0;
  // No preamble: accept a dataset that starts with a group 0002 or 0008 element (either byte
  // order) and that DCMTK can parse.
  const unsigned group_le = b[0] | (b[1] << 8), group_be = (b[0] << 8) | b[1];
  const bool plausible = group_le == 0x0002 || group_le == 0x0008 || group_be == 0x0002 || group_be == 0x0008;
  return plausible ? -1 : 0;
}

bool parses_until_pixel_data(const FileBytes& bytes) {
  quiet_gdcm();
  DcmFileFormat ff;
  MemoryInputStream in(bytes.buffer, bytes.file_size());
  ff.transferInit();
  const OFCondition cond = ff.readUntilTag(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
  ff.transferEnd();
  return cond.good() && ff.getDataset() && !ff.getDataset()->isEmpty();
}

// The file when is_dicom_file() would say yes, else nullopt; only the first 132 bytes are read
// of a file that is clearly not DICOM. Errors: TooLarge, IoFailure (a DICOM file that cannot be
// read whole).
std::optional<FileBytes> read_if_dicom(const fs::path& path, const std::string& display) {
  Fd fd(path);
  if (fd.get() < 0) return std::nullopt;
  Bytes bytes;
  if (!fd.read_to(bytes, 132)) return std::nullopt;
  const int magic = dicom_magic(bytes.data(), bytes.size());
  if (magic == 0) return std::nullopt;
  read_rest(fd, bytes, display);
  FileBytes file = make_file_bytes(std::move(bytes));
  if (magic < 0 && !parses_until_pixel_data(file)) return std::nullopt;
  return file;
}

}  // namespace

bool is_dicom_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  Fd fd(path);
  if (fd.get() < 0) return false;
  Bytes bytes;
  if (!fd.read_to(bytes, 132)) return false;
  const int magic = dicom_magic(bytes.data(), bytes.size());
  if (magic >= 0) return magic == 1;
  try {
    read_rest(fd, bytes, path.filename().string());
  } catch (const Error&) {
    return false;  // cannot be read whole
  }
  return parses_until_pixel_data(make_file_bytes(std::move(bytes)));
}

std::vector<DicomSeriesInfo> scan_dicom(const fs::path& source) {
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    throw Error(ErrorCode::FileNotFound, source.string() + ": no such file or folder");
  }
  std::shared_ptr<TempTree> temp;
  fs::path root = source;
  bool single_file = false;
  if (fs::is_regular_file(source, ec) && (ends_with_zip(source) || starts_with_zip_magic(source))) {
    temp = extract_zip(source);
    root = temp->dir;
  } else if (!fs::is_directory(source, ec)) {
    single_file = true;
  }

  std::vector<fs::path> candidates;
  if (single_file) {
    candidates.push_back(source);
  } else {
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) candidates.push_back(it->path());
    }
    std::sort(candidates.begin(), candidates.end());
  }
  const std::string what = temp ? source.filename().string() : source.string();
  if (candidates.empty()) {
    throw Error(ErrorCode::EmptyInput, what + ": no files found" + (temp ? " in the zip" : ""));
  }

  auto display_of = [&](const fs::path& p) {
    if (single_file) return p.filename().string();
    std::string rel = fs::relative(p, root, ec).string();
    if (ec || rel.empty()) rel = p.filename().string();
    if (temp) {
      // Extracted as "<index>_<name>": show the name.
      const auto us = rel.find('_');
      if (us != std::string::npos) rel = rel.substr(us + 1);
      return source.filename().string() + ":" + rel;
    }
    return rel;
  };

  std::vector<std::string> not_dicom;
  std::vector<Error> corrupt;
  std::map<std::string, std::vector<FileHeader>> by_series;
  for (const auto& p : candidates) {
    try {
      std::optional<FileBytes> bytes = read_if_dicom(p, display_of(p));
      if (!bytes) {
        not_dicom.push_back(display_of(p));
        continue;
      }
      FileHeader h = read_header(p, *bytes, display_of(p));
      by_series[h.series_uid].push_back(std::move(h));
    } catch (const Error& e) {
      if (single_file) throw;
      log_warn("DICOM scan: skipping " + std::string(e.what()));
      corrupt.push_back(e);
    }
  }
  if (by_series.empty()) {
    if (!corrupt.empty()) throw corrupt.front();
    std::string names;
    for (std::size_t i = 0; i < not_dicom.size() && i < 3; ++i) names += (i ? ", " : "") + not_dicom[i];
    if (not_dicom.size() > 3) names += " and " + std::to_string(not_dicom.size() - 3) + " more";
    throw Error(ErrorCode::NotDicom, what + ": no DICOM file found (tried " + names + ")");
  }

  std::vector<DicomSeriesInfo> out;
  for (auto& [uid, files] : by_series) {
    DicomSeriesInfo info = build_series(std::move(files), temp);
    if (!corrupt.empty()) {
      info.warnings.push_back(std::to_string(corrupt.size()) + " file(s) in the source could not be parsed, e.g. " +
                              std::string(corrupt.front().what()));
    }
    out.push_back(std::move(info));
  }
  std::stable_sort(out.begin(), out.end(), [](const DicomSeriesInfo& a, const DicomSeriesInfo& b) {
    if (a.series_number != b.series_number) return a.series_number < b.series_number;
    return a.series_instance_uid < b.series_instance_uid;
  });
  return out;
}

namespace {

template <class T>
void store(void* base, int64_t index, double v) {
  T* out = static_cast<T*>(base) + index;
  if constexpr (std::is_floating_point_v<T>) {
    *out = static_cast<T>(v);
  } else {
    v = std::round(v);
    if (v < static_cast<double>(std::numeric_limits<T>::min())) v = std::numeric_limits<T>::min();
    if (v > static_cast<double>(std::numeric_limits<T>::max())) v = std::numeric_limits<T>::max();
    *out = static_cast<T>(v);
  }
}

// Reads the stored value number `index` (sample-wise) of a decoded buffer.
struct SampleReader {
  gdcm::PixelFormat::ScalarType type;
  int bits_stored, bits_allocated;
  bool is_signed;
  const char* data;
  double operator()(std::size_t index) const {
    auto masked = [&](uint64_t raw, int width) -> double {
      if (bits_stored <= 0 || bits_stored >= width) {
        return 0;  // unused
      }
      raw &= (uint64_t{1} << bits_stored) - 1;
      if (is_signed && (raw >> (bits_stored - 1)) & 1) return static_cast<double>(raw) - std::ldexp(1.0, bits_stored);
      return static_cast<double>(raw);
    };
    switch (type) {
      case gdcm::PixelFormat::UINT8: {
        uint8_t v;
        std::memcpy(&v, data + index, 1);
        return bits_stored > 0 && bits_stored < 8 ? masked(v, 8) : v;
      }
      case gdcm::PixelFormat::INT8: {
        int8_t v;
        std::memcpy(&v, data + index, 1);
        return bits_stored > 0 && bits_stored < 8 ? masked(static_cast<uint8_t>(v), 8) : v;
      }
      case gdcm::PixelFormat::UINT16: {
        uint16_t v;
        std::memcpy(&v, data + 2 * index, 2);
        return bits_stored > 0 && bits_stored < 16 ? masked(v, 16) : v;
      }
      case gdcm::PixelFormat::INT16: {
        int16_t v;
        std::memcpy(&v, data + 2 * index, 2);
        return bits_stored > 0 && bits_stored < 16 ? masked(static_cast<uint16_t>(v), 16) : v;
      }
      case gdcm::PixelFormat::UINT32: {
        uint32_t v;
        std::memcpy(&v, data + 4 * index, 4);
        return bits_stored > 0 && bits_stored < 32 ? masked(v, 32) : v;
      }
      case gdcm::PixelFormat::INT32: {
        int32_t v;
        std::memcpy(&v, data + 4 * index, 4);
        return bits_stored > 0 && bits_stored < 32 ? masked(static_cast<uint32_t>(v), 32) : v;
      }
      case gdcm::PixelFormat::FLOAT32: {
        float v;
        std::memcpy(&v, data + 4 * index, 4);
        return v;
      }
      case gdcm::PixelFormat::FLOAT64: {
        double v;
        std::memcpy(&v, data + 8 * index, 8);
        return v;
      }
      default:
        return 0;
    }
  }
};

// One grey frame of `n` stored values of type S, rescaled into T: the same values as
// SampleReader + store<T>(), in loops the compiler can vectorise (integer arithmetic when the
// rescale is an integral shift, which is the common case).
template <class S, class T>
void convert_grey(const char* base, std::size_t first, T* out, int64_t n, int bits_stored, bool is_signed, double slope,
                  double intercept) {
  const char* src = base + first * sizeof(S);  // `first` counts samples, as SampleReader does
  auto load = [src](int64_t p) {
    S v;
    std::memcpy(&v, src + p * static_cast<int64_t>(sizeof(S)), sizeof(S));
    return v;
  };
  if constexpr (std::is_integral_v<S>) {
    constexpr int width = 8 * static_cast<int>(sizeof(S));
    const bool mask = bits_stored > 0 && bits_stored < width;
    const uint64_t bits = mask ? (uint64_t{1} << bits_stored) - 1 : 0;
    auto stored = [&](int64_t p) -> int64_t {
      if (!mask) return static_cast<int64_t>(load(p));
      const uint64_t raw = static_cast<uint64_t>(static_cast<std::make_unsigned_t<S>>(load(p))) & bits;
      if (is_signed && ((raw >> (bits_stored - 1)) & 1)) return static_cast<int64_t>(raw) - (int64_t{1} << bits_stored);
      return static_cast<int64_t>(raw);
    };
    if constexpr (std::is_integral_v<T>) {
      if (slope == 1.0 && intercept == std::floor(intercept) && std::fabs(intercept) <= 1e9) {
        const int64_t shift = static_cast<int64_t>(intercept);
        constexpr int64_t lo = static_cast<int64_t>(std::numeric_limits<T>::min());
        constexpr int64_t hi = static_cast<int64_t>(std::numeric_limits<T>::max());
        for (int64_t p = 0; p < n; ++p) out[p] = static_cast<T>(std::clamp(stored(p) + shift, lo, hi));
        return;
      }
    }
    for (int64_t p = 0; p < n; ++p) store<T>(out, p, static_cast<double>(stored(p)) * slope + intercept);
  } else {
    for (int64_t p = 0; p < n; ++p) store<T>(out, p, static_cast<double>(load(p)) * slope + intercept);
  }
}

template <class T>
void convert_grey_from(gdcm::PixelFormat::ScalarType type, const char* src, std::size_t first, T* out, int64_t n,
                       int bits_stored, bool is_signed, double slope, double intercept) {
  switch (type) {
    case gdcm::PixelFormat::UINT8:
      return convert_grey<uint8_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::INT8:
      return convert_grey<int8_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::UINT16:
      return convert_grey<uint16_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::INT16:
      return convert_grey<int16_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::UINT32:
      return convert_grey<uint32_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::INT32:
      return convert_grey<int32_t>(src, first, out, n, bits_stored, is_signed, slope, intercept);
    case gdcm::PixelFormat::FLOAT32:
      return convert_grey<float>(src, first, out, n, 0, is_signed, slope, intercept);
    case gdcm::PixelFormat::FLOAT64:
      return convert_grey<double>(src, first, out, n, 0, is_signed, slope, intercept);
    default:
      throw Error(ErrorCode::Internal, "unexpected pixel scalar type");
  }
}

// ---- JPEG 2000 codestreams are checked before GDCM decodes them -------------------------------
// GDCM 3.0.21's JPEG2000Codec::DecodeByStreamsCommon trusts the codestream: it allocates
// Rows x Columns x BitsAllocated/8 x components bytes from the DICOM header, then writes the
// codestream's own width x height samples of 1, 2 or 4 bytes (by the codestream's precision)
// into it, so a codestream larger than the header (or with more components, or a higher
// precision) writes past the buffer (the fuzzer's SEGV). It also assert()s (aborts, in Debian's
// build) when OpenJPEG cannot read the header or decode the data, and when no 0xD9 byte ends the
// codestream. So each codestream GDCM would decode is first decoded here with OpenJPEG, the way
// GDCM does it (same trimming, same codec choice), and refused unless it decodes and matches the
// header exactly. This decodes JPEG 2000 twice; JPEG 2000 DICOM is rare and small.

struct OpjMemory {
  const unsigned char* data;
  std::size_t size, pos;
};

OPJ_SIZE_T opj_memory_read(void* out, OPJ_SIZE_T n, void* user) {
  auto* m = static_cast<OpjMemory*>(user);
  if (m->pos >= m->size) return static_cast<OPJ_SIZE_T>(-1);
  const std::size_t k = std::min<std::size_t>(n, m->size - m->pos);
  std::memcpy(out, m->data + m->pos, k);
  m->pos += k;
  return k;
}

OPJ_OFF_T opj_memory_skip(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<OpjMemory*>(user);
  if (n < 0 || static_cast<uint64_t>(n) > m->size - m->pos) {
    m->pos = m->size;
    return -1;
  }
  m->pos += static_cast<std::size_t>(n);
  return n;
}

OPJ_BOOL opj_memory_seek(OPJ_OFF_T at, void* user) {
  auto* m = static_cast<OpjMemory*>(user);
  if (at < 0 || static_cast<uint64_t>(at) > m->size) return OPJ_FALSE;
  m->pos = static_cast<std::size_t>(at);
  return OPJ_TRUE;
}

void opj_quiet(const char*, void*) {}

// Checks one codestream (one frame) as GDCM's decoder will see it. Returns "" when GDCM can
// decode it safely, else what is wrong.
std::string check_j2k_codestream(const unsigned char* data, std::size_t size, unsigned rows, unsigned cols, int samples,
                                 int bits_allocated) {
  // GDCM drops everything after the last 0xD9 byte (the end of the EOC marker FFD9).
  while (size > 0 && data[size - 1] != 0xd9) --size;
  if (size == 0) return "the JPEG 2000 codestream has no end marker";
  if (bits_allocated % 8 != 0 || bits_allocated <= 0 || bits_allocated > 32) {
    return "BitsAllocated " + std::to_string(bits_allocated) + " is not 8, 16 or 32";
  }
  static const unsigned char jp2_magic[] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};
  const bool jp2 = size >= sizeof jp2_magic && std::memcmp(data, jp2_magic, sizeof jp2_magic) == 0;
  struct Codec {
    opj_codec_t* codec = nullptr;
    opj_stream_t* stream = nullptr;
    opj_image_t* image = nullptr;
    ~Codec() {
      if (image) opj_image_destroy(image);
      if (stream) opj_stream_destroy(stream);
      if (codec) opj_destroy_codec(codec);
    }
  } c;
  OpjMemory memory{data, size, 0};
  c.codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
  c.stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
  if (!c.codec || !c.stream) throw std::bad_alloc();
  opj_set_error_handler(c.codec, opj_quiet, nullptr);
  opj_set_warning_handler(c.codec, opj_quiet, nullptr);
  opj_set_info_handler(c.codec, opj_quiet, nullptr);
  opj_stream_set_user_data(c.stream, &memory, nullptr);
  opj_stream_set_user_data_length(c.stream, size);
  opj_stream_set_read_function(c.stream, opj_memory_read);
  opj_stream_set_skip_function(c.stream, opj_memory_skip);
  opj_stream_set_seek_function(c.stream, opj_memory_seek);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(c.codec, &parameters)) return "OpenJPEG refused the decoder set-up";
  if (!opj_read_header(c.stream, c.codec, &c.image) || !c.image) return "the JPEG 2000 header (SIZ) cannot be read";
  const opj_image_t& im = *c.image;
  if (im.numcomps != static_cast<OPJ_UINT32>(samples)) {
    return "the JPEG 2000 codestream has " + std::to_string(im.numcomps) + " component(s), SamplesPerPixel is " +
           std::to_string(samples);
  }
  for (OPJ_UINT32 i = 0; i < im.numcomps; ++i) {
    const opj_image_comp_t& comp = im.comps[i];
    if (comp.w != cols || comp.h != rows || comp.dx != 1 || comp.dy != 1) {
      return "the JPEG 2000 codestream is " + std::to_string(comp.w) + "x" + std::to_string(comp.h) + " (subsampling " +
             std::to_string(comp.dx) + "x" + std::to_string(comp.dy) + "), Columns x Rows is " + std::to_string(cols) +
             "x" + std::to_string(rows);
    }
    const int width = comp.prec <= 8 ? 8 : comp.prec <= 16 ? 16 : 32;
    if (comp.prec == 0 || comp.prec > 32 || width != bits_allocated) {
      return "the JPEG 2000 codestream has a precision of " + std::to_string(comp.prec) + " bits, BitsAllocated is " +
             std::to_string(bits_allocated);
    }
    if (comp.prec != im.comps[0].prec || comp.sgnd != im.comps[0].sgnd) {
      return "the JPEG 2000 components differ in precision or sign";
    }
  }
  if (!opj_decode(c.codec, c.stream, c.image) || !opj_end_decompress(c.codec, c.stream)) {
    return "the JPEG 2000 data cannot be decoded (truncated or corrupt)";
  }
  for (OPJ_UINT32 i = 0; i < im.numcomps; ++i) {
    const opj_image_comp_t& comp = im.comps[i];
    if (!comp.data || comp.w != cols || comp.h != rows || comp.factor != 0) {
      return "the decoded JPEG 2000 image does not match its header";
    }
  }
  return "";
}

// Every codestream GDCM's JPEG 2000 decoder would see: the fragments joined for a single-frame
// image, one fragment per frame otherwise (as GDCM decodes them).
void check_j2k_pixel_data(const gdcm::File& file, const gdcm::Image& image, const std::string& display) {
  const gdcm::DataSet& ds = file.GetDataSet();
  const gdcm::Tag pixel_data(0x7fe0, 0x0010);
  if (!ds.FindDataElement(pixel_data)) return;  // GDCM reports a missing image itself
  const gdcm::SequenceOfFragments* sf = ds.GetDataElement(pixel_data).GetSequenceOfFragments();
  if (!sf) corrupt(display, "JPEG 2000 pixel data is not encapsulated in fragments");
  const unsigned rows = image.GetDimension(1), cols = image.GetDimension(0);
  const gdcm::PixelFormat pf = image.GetPixelFormat();
  const int samples = pf.GetSamplesPerPixel(), bits = pf.GetBitsAllocated();
  if (image.GetPhotometricInterpretation().GetSamplesPerPixel() != pf.GetSamplesPerPixel()) {
    corrupt(display, "PhotometricInterpretation does not match SamplesPerPixel");
  }
  auto check = [&](const std::vector<unsigned char>& codestream, const std::string& what) {
    const std::string problem = check_j2k_codestream(codestream.data(), codestream.size(), rows, cols, samples, bits);
    if (!problem.empty()) corrupt(display, what + problem);
  };
  auto bytes_of = [](const gdcm::Fragment& frag, std::vector<unsigned char>& out) {
    const gdcm::ByteValue* bv = frag.GetByteValue();
    if (!bv) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(bv->GetPointer());
    out.insert(out.end(), p, p + bv->GetLength());
    return true;
  };
  const std::size_t n = sf->GetNumberOfFragments();
  if (image.GetNumberOfDimensions() == 2) {
    std::vector<unsigned char> codestream;
    for (std::size_t i = 0; i < n; ++i) bytes_of(sf->GetFragment(static_cast<unsigned>(i)), codestream);
    check(codestream, "");
    return;
  }
  const unsigned frames = image.GetDimension(2);
  if (n != frames) {
    corrupt(display, "JPEG 2000 pixel data has " + std::to_string(n) + " fragments for " + std::to_string(frames) +
                         " frames (one fragment per frame is required)");
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<unsigned char> codestream;
    if (!bytes_of(sf->GetFragment(static_cast<unsigned>(i)), codestream) || codestream.empty()) {
      corrupt(display, "JPEG 2000 frame " + std::to_string(i + 1) + " is empty");
    }
    check(codestream, "frame " + std::to_string(i + 1) + ": ");
  }
}

bool is_jpeg2000(const gdcm::TransferSyntax& ts) {
  return ts == gdcm::TransferSyntax::JPEG2000Lossless || ts == gdcm::TransferSyntax::JPEG2000 ||
         ts == gdcm::TransferSyntax::JPEG2000Part2Lossless || ts == gdcm::TransferSyntax::JPEG2000Part2;
}

}  // namespace

Volume read_dicom_series(const DicomSeriesInfo& series, const DicomReadOptions& options) {
  quiet_gdcm();
  const auto& layout = series.layout;
  const std::string label = series_label(series);
  if (!layout) throw Error(ErrorCode::BadArgument, label + ": no layout (was it returned by scan_dicom()?)");
  if (!series.readable) {
    throw Error(ErrorCode::UnsupportedFormat,
                label + " cannot be read as a volume: " +
                    (layout->unreadable_reason.empty() ? std::string("not an image") : layout->unreadable_reason));
  }
  if (series.incomplete && !options.allow_incomplete) {
    throw Error(ErrorCode::IncompleteSeries,
                label + " is incomplete: " + layout->incomplete_reason + " (allow_incomplete reads it anyway)");
  }
  const Geometry& g = series.geometry;
  if (g.size[0] != layout->cols || g.size[1] != layout->rows || g.size[2] != layout->slices ||
      series.channels != layout->channels) {
    throw Error(ErrorCode::BadArgument, label + ": geometry or channel count was changed after scanning");
  }
  check_allocation(g.size, series.channels, series.pixel_type, label);
  Volume volume(g, series.pixel_type, series.channels);
  volume.modality = series.modality;
  volume.channel_names = series.channel_names;

  const int64_t plane = static_cast<int64_t>(layout->rows) * layout->cols;
  // Slots per file, so every file is decoded once.
  std::vector<std::vector<std::size_t>> slots_of(layout->files.size());
  for (std::size_t s = 0; s < layout->slots.size(); ++s) slots_of[layout->slots[s].file].push_back(s);

  for (std::size_t fi = 0; fi < layout->files.size(); ++fi) {
    if (slots_of[fi].empty()) continue;
    const auto& file = layout->files[fi];
    try {
      FileBytes bytes = read_file_bytes(file.path, file.display);
      // The header again (the file may have changed since scanning): refuses what GDCM's image
      // reader must not see before it reads the pixels.
      if (read_header(file.path, bytes, file.display).palette) {
        throw Error(ErrorCode::UnsupportedFormat, file.display + ": palette colour images are not supported");
      }
      MemoryIStream in(bytes);
      gdcm::ImageReader reader;
      reader.SetStream(in.in);
      if (!reader.Read()) throw Error(ErrorCode::CorruptFile, file.display + ": GDCM cannot read the image");
      const gdcm::Image& image = reader.GetImage();
      if (is_jpeg2000(reader.GetFile().GetHeader().GetDataSetTransferSyntax())) {
        check_j2k_pixel_data(reader.GetFile(), image, file.display);
      }
      const unsigned cols = image.GetDimension(0), rows = image.GetDimension(1);
      const unsigned frames = image.GetNumberOfDimensions() > 2 ? image.GetDimension(2) : 1;
      if (static_cast<int>(cols) != layout->cols || static_cast<int>(rows) != layout->rows ||
          static_cast<int>(frames) < file.frames) {
        throw Error(ErrorCode::HeaderMismatch, file.display + ": decoded image is " + std::to_string(cols) + "x" +
                                                   std::to_string(rows) + "x" + std::to_string(frames) +
                                                   ", the header said " + std::to_string(layout->cols) + "x" +
                                                   std::to_string(layout->rows) + "x" + std::to_string(file.frames));
      }
      const gdcm::PixelFormat pf = image.GetPixelFormat();
      const int spp = pf.GetSamplesPerPixel();
      if (spp != layout->samples) {
        throw Error(ErrorCode::HeaderMismatch, file.display + ": samples per pixel differ within the series");
      }
      const auto st = pf.GetScalarType();
      if (st != gdcm::PixelFormat::UINT8 && st != gdcm::PixelFormat::INT8 && st != gdcm::PixelFormat::UINT16 &&
          st != gdcm::PixelFormat::INT16 && st != gdcm::PixelFormat::UINT32 && st != gdcm::PixelFormat::INT32 &&
          st != gdcm::PixelFormat::FLOAT32 && st != gdcm::PixelFormat::FLOAT64) {
        throw Error(ErrorCode::UnsupportedFormat,
                    file.display + ": pixel format " + std::string(pf.GetScalarTypeAsString()) + " is not supported");
      }
      const std::string pi =
          gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation())
              ? trim(gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation()))
              : "";
      if (pi == "PALETTE COLOR") {
        throw Error(ErrorCode::UnsupportedFormat, file.display + ": palette colour images are not supported");
      }
      check_allocation({static_cast<int64_t>(cols), static_cast<int64_t>(rows), static_cast<int64_t>(frames)}, spp,
                       PixelType::UInt8, file.display);
      const unsigned long length = image.GetBufferLength();
      const uint64_t bytes_per_sample = pf.GetPixelSize() / std::max(1, spp);
      const uint64_t expected =
          static_cast<uint64_t>(cols) * rows * frames * spp * std::max<uint64_t>(1, bytes_per_sample);
      if (length < expected) {
        throw Error(ErrorCode::CorruptFile, file.display + ": pixel buffer is " + std::to_string(length) +
                                                " bytes, expected " + std::to_string(expected));
      }
      Bytes buffer(length);
      if (!image.GetBuffer(buffer.data())) {
        throw Error(ErrorCode::CorruptFile, file.display + ": cannot decode the pixel data (transfer syntax " +
                                                series.transfer_syntax_uid + "; truncated or corrupt?)");
      }
      const bool is_float = st == gdcm::PixelFormat::FLOAT32 || st == gdcm::PixelFormat::FLOAT64;
      SampleReader sample{st, is_float ? 0 : pf.GetBitsStored(), pf.GetBitsAllocated(),
                          pf.GetPixelRepresentation() == 1, buffer.data()};
      const bool planar = spp == 3 && image.GetPlanarConfiguration() == 1;
      const bool ybr = pi.rfind("YBR", 0) == 0;
      for (std::size_t s : slots_of[fi]) {
        const auto& slot = layout->slots[s];
        if (slot.frame < 0 || static_cast<unsigned>(slot.frame) >= frames) {
          throw Error(ErrorCode::HeaderMismatch,
                      file.display + ": frame " + std::to_string(slot.frame + 1) + " is missing from the pixel data");
        }
        const int c = static_cast<int>(s / layout->slices);
        const int k = static_cast<int>(s % layout->slices);
        const int64_t out0 = (static_cast<int64_t>(c) * layout->slices + k) * plane;
        const std::size_t frame0 = static_cast<std::size_t>(slot.frame) * plane * spp;
        dispatch_pixel_type(series.pixel_type, [&](auto tag) {
          using T = decltype(tag);
          void* base = volume.raw();
          if (spp == 1) {
            convert_grey_from<T>(st, buffer.data(), frame0, static_cast<T*>(base) + out0, plane, sample.bits_stored,
                                 sample.is_signed, slot.slope, slot.intercept);
            return;
          }
          for (int64_t p = 0; p < plane; ++p) {
            double v;
            if (spp == 1) {
              v = sample(frame0 + p);
            } else if (planar) {
              const double a = sample(frame0 + p), b = sample(frame0 + plane + p), cc = sample(frame0 + 2 * plane + p);
              v = ybr ? a : 0.299 * a + 0.587 * b + 0.114 * cc;
            } else {
              const double a = sample(frame0 + 3 * p), b = sample(frame0 + 3 * p + 1), cc = sample(frame0 + 3 * p + 2);
              v = ybr ? a : 0.299 * a + 0.587 * b + 0.114 * cc;
            }
            store<T>(base, out0 + p, v * slot.slope + slot.intercept);
          }
        });
      }
    } catch (const Error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw Error(ErrorCode::TooLarge, file.display + ": out of memory while decoding");
    } catch (const std::exception& e) {
      throw Error(ErrorCode::CorruptFile, file.display + ": " + e.what());
    }
  }
  return volume;
}

DicomSourceRef dicom_source_ref(const DicomSeriesInfo& series) {
  if (!series.layout || series.layout->slices <= 0 || series.layout->files.empty())
    throw Error(ErrorCode::BadArgument, "DICOM series " + std::to_string(series.series_number) +
                                            ": no image layout (not a readable image series)");
  quiet_gdcm();
  const DicomSeriesInfo::Layout& layout = *series.layout;
  DicomSourceRef ref;
  ref.series_instance_uid = series.series_instance_uid;
  ref.study_instance_uid = series.study_instance_uid;
  ref.modality = series.modality;
  struct Ids {
    std::string sop_class, sop_instance;
  };
  std::map<int, Ids> by_file;
  auto text = [](DcmDataset& ds, const DcmTagKey& tag) {
    OFString v;
    ds.findAndGetOFStringArray(tag, v);
    return trim(std::string(v.c_str()));
  };
  for (int k = 0; k < layout.slices; ++k) {
    const DicomSeriesInfo::Layout::Slot& slot = layout.slots.at(static_cast<std::size_t>(k));
    auto it = by_file.find(slot.file);
    if (it == by_file.end()) {
      const DicomSeriesInfo::Layout::File& f = layout.files.at(static_cast<std::size_t>(slot.file));
      auto ff = detail::load_checked_dicom(f.path, f.display);
      DcmDataset& ds = *ff->getDataset();
      Ids ids{text(ds, DCM_SOPClassUID), text(ds, DCM_SOPInstanceUID)};
      if (ids.sop_instance.empty()) throw Error(ErrorCode::CorruptFile, f.display + ": no SOPInstanceUID (0008,0018)");
      if (ref.frame_of_reference_uid.empty()) ref.frame_of_reference_uid = text(ds, DCM_FrameOfReferenceUID);
      if (ref.patient_id.empty()) ref.patient_id = text(ds, DCM_PatientID);
      if (ref.patient_name.empty()) ref.patient_name = text(ds, DCM_PatientName);
      if (ref.study_id.empty()) ref.study_id = text(ds, DCM_StudyID);
      if (ref.study_date.empty()) ref.study_date = text(ds, DCM_StudyDate);
      if (ref.study_time.empty()) ref.study_time = text(ds, DCM_StudyTime);
      if (ref.accession_number.empty()) ref.accession_number = text(ds, DCM_AccessionNumber);
      it = by_file.emplace(slot.file, std::move(ids)).first;
    }
    DicomSourceSlice s;
    s.sop_class_uid = it->second.sop_class.empty() ? series.sop_class_uid : it->second.sop_class;
    s.sop_instance_uid = it->second.sop_instance;
    s.frame_number = layout.files.at(static_cast<std::size_t>(slot.file)).frames > 1 ? slot.frame + 1 : 0;
    ref.slices.push_back(std::move(s));
  }
  return ref;
}

}  // namespace tumorlab::io
