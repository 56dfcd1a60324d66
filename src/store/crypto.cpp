// libsodium helpers: Argon2id password hashes, SHA-256, random tokens.
#include <sodium.h>

#include <mutex>

#include "tumorlab/core/error.h"
#include "tumorlab/store/internal.h"
#include "tumorlab/store/store.h"

namespace tumorlab::store {

namespace detail {
void ensure_sodium() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = sodium_init(); });
  if (rc < 0) throw Error(ErrorCode::Unavailable, "libsodium: initialisation failed (sodium_init)");
}
}  // namespace detail

namespace {
constexpr std::size_t kMinPassword = 8;
constexpr std::size_t kMaxPassword = 1024;
}  // namespace

std::string hash_password(const std::string& password) {
  detail::ensure_sodium();
  if (password.size() < kMinPassword || password.size() > kMaxPassword)
    throw Error(ErrorCode::BadArgument, "password: expected " + std::to_string(kMinPassword) + ".." +
                                            std::to_string(kMaxPassword) + " bytes, got " +
                                            std::to_string(password.size()));
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw Error(ErrorCode::Unavailable, "password hashing: out of memory (Argon2id needs 64 MiB)");
  return out;
}

bool verify_password(const std::string& hash, const std::string& password) {
  detail::ensure_sodium();
  if (password.size() > kMaxPassword) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::string random_password(int n) {
  detail::ensure_sodium();
  if (n < 8 || n > 256) throw Error(ErrorCode::BadArgument, "random_password: length must be 8..256");
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(kAlphabet[randombytes_uniform(sizeof(kAlphabet) - 1)]);
  return out;
}

std::string random_token() {
  detail::ensure_sodium();
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  detail::ensure_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  detail::ensure_sodium();
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tumorlab::store
