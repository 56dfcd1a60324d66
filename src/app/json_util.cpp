#include "tumorlab/app/json_util.h"

#include <array>
#include <cmath>

#include "tumorlab/core/error.h"

namespace tumorlab::app {
using nlohmann::json;

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& expected, const json& v) {
  throw Error(ErrorCode::BadArgument, "field '" + key + "': expected " + expected + ", got " + v.type_name());
}
const json* field(const json& body, const std::string& key) {
  if (!body.is_object()) throw Error(ErrorCode::BadArgument, "request body: expected a JSON object");
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}
}  // namespace

std::optional<std::string> json_opt_string(const json& body, const std::string& key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(key, "a string", *v);
  return v->get<std::string>();
}

std::string json_string(const json& body, const std::string& key) {
  auto v = json_opt_string(body, key);
  if (!v) throw Error(ErrorCode::BadArgument, "field '" + key + "' is required");
  return *v;
}

std::optional<bool> json_opt_bool(const json& body, const std::string& key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, "true or false", *v);
  return v->get<bool>();
}

bool json_bool(const json& body, const std::string& key) {
  auto v = json_opt_bool(body, key);
  if (!v) throw Error(ErrorCode::BadArgument, "field '" + key + "' is required");
  return *v;
}

std::optional<std::int64_t> json_opt_int(const json& body, const std::string& key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<std::int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<std::int64_t>(d);
  }
  bad(key, "an integer", *v);
}

std::int64_t json_int(const json& body, const std::string& key) {
  auto v = json_opt_int(body, key);
  if (!v) throw Error(ErrorCode::BadArgument, "field '" + key + "' is required");
  return *v;
}

std::optional<double> json_opt_double(const json& body, const std::string& key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, "a number", *v);
  double d = v->get<double>();
  if (!std::isfinite(d)) throw Error(ErrorCode::BadArgument, "field '" + key + "': expected a finite number");
  return d;
}

double json_double(const json& body, const std::string& key) {
  auto v = json_opt_double(body, key);
  if (!v) throw Error(ErrorCode::BadArgument, "field '" + key + "' is required");
  return *v;
}

std::int64_t json_int_in(const json& body, const std::string& key, std::int64_t lo, std::int64_t hi,
                         std::optional<std::int64_t> fallback) {
  auto v = json_opt_int(body, key);
  if (!v) {
    if (fallback) return *fallback;
    throw Error(ErrorCode::BadArgument, "field '" + key + "' is required");
  }
  if (*v < lo || *v > hi)
    throw Error(ErrorCode::BadArgument, "field '" + key + "': expected " + std::to_string(lo) + ".." +
                                            std::to_string(hi) + ", got " + std::to_string(*v));
  return *v;
}

std::string base64_decode(const std::string& text, const std::string& field_name) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = i;
    t['-'] = 62;  // URL-safe alphabet too
    t['_'] = 63;
    return t;
  }();
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '=') break;
    if (c == '\n' || c == '\r') continue;
    int v = table[c];
    if (v < 0)
      throw Error(ErrorCode::BadArgument,
                  "field '" + field_name + "': not base64 (bad character at " + std::to_string(i) + ")");
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  for (; i < text.size(); ++i)
    if (text[i] != '=')
      throw Error(ErrorCode::BadArgument, "field '" + field_name + "': not base64 (data after padding)");
  return out;
}

std::string base64_encode(const std::string& bytes) {
  const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                      static_cast<unsigned char>(bytes[i + 2]);
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += a[(n >> 6) & 63];
    out += a[n & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace tumorlab::app
