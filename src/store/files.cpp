// Content-addressed, durable files: DIR/images/<sha256>.nii.gz and DIR/labels/<sha256>.nii.gz.
// A file becomes visible under its final name only once its bytes are on disk: write a temp
// file in the same folder, fsync it, rename it, fsync the folder.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tumorlab/core/error.h"
#include "tumorlab/store/internal.h"

namespace tumorlab::store::detail {
namespace {

[[noreturn]] void throw_errno(const std::string& what, int err) {
  throw Error(ErrorCode::IoFailure, what + ": " + std::strerror(err));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void close_checked(const std::string& what) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno("closing " + what, errno);
  }

 private:
  int fd_;
};

void write_all(int fd, const char* p, std::size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("writing " + what, errno);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void fsync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0) throw_errno("opening folder " + dir, errno);
  if (::fsync(d.get()) != 0) throw_errno("fsync of folder " + dir, errno);
}

std::string hex_of(const unsigned char* digest) {
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, crypto_hash_sha256_BYTES);
  return hex;
}

// Temp file in `dir`, opened for writing; its name is returned through `tmp_path`.
int open_temp(const std::string& dir, std::string* tmp_path) {
  std::string tmpl = dir + "/.tmp-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw_errno("creating a temporary file in " + dir, errno);
  *tmp_path = tmpl;
  return fd;
}

// fsync + close the temp file, then publish it as final (unless an identical file is there).
StoredFile publish(const std::string& dir, Fd& fd, const std::string& tmp, const std::string& hash, std::int64_t bytes,
                   const std::string& final_path) {
  if (::fsync(fd.get()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw_errno("fsync of " + tmp, e);
  }
  fd.close_checked(tmp);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw_errno("renaming " + tmp + " to " + final_path, e);
  }
  fsync_dir(dir);
  return StoredFile{hash, final_path, bytes};
}

}  // namespace

std::int64_t file_size_or_minus_one(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_size);
}

StoredFile write_content_addressed(const std::string& data_dir, const char* sub, std::string_view bytes) {
  ensure_sodium();
  const std::string hash = sha256_hex(bytes);
  const std::string dir = data_dir + "/" + sub;
  const std::string final_path = content_path(data_dir, sub, hash);
  const auto size = static_cast<std::int64_t>(bytes.size());
  if (file_size_or_minus_one(final_path) == size) return StoredFile{hash, final_path, size};
  std::string tmp;
  Fd fd(open_temp(dir, &tmp));
  try {
    write_all(fd.get(), bytes.data(), bytes.size(), tmp);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  return publish(dir, fd, tmp, hash, size, final_path);
}

StoredFile copy_content_addressed(const std::string& data_dir, const char* sub, const std::string& source_path) {
  ensure_sodium();
  Fd src(::open(source_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (src.get() < 0) {
    int e = errno;
    if (e == ENOENT) throw Error(ErrorCode::FileNotFound, source_path + ": no such file");
    throw_errno("opening " + source_path, e);
  }
  const std::string dir = data_dir + "/" + sub;
  std::string tmp;
  Fd fd(open_temp(dir, &tmp));
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::int64_t total = 0;
  try {
    std::string buf(1 << 20, '\0');
    for (;;) {
      ssize_t r = ::read(src.get(), buf.data(), buf.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_errno("reading " + source_path, errno);
      }
      if (r == 0) break;
      crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(buf.data()),
                                static_cast<unsigned long long>(r));
      write_all(fd.get(), buf.data(), static_cast<std::size_t>(r), tmp);
      total += r;
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, digest);
  const std::string hash = hex_of(digest);
  const std::string final_path = content_path(data_dir, sub, hash);
  if (file_size_or_minus_one(final_path) == total) {
    ::unlink(tmp.c_str());
    return StoredFile{hash, final_path, total};
  }
  return publish(dir, fd, tmp, hash, total, final_path);
}

}  // namespace tumorlab::store::detail
