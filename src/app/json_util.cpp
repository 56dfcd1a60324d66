#include "tumorlab/app/json_util.h"

#include <sodium.h>

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

json stored_object(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json::object();
}

std::string base64_decode(const std::string& text, const std::string& field_name) {
  // libsodium decodes one alphabet without padding: drop the padding, pick the alphabet.
  std::size_t end = text.size();
  while (end > 0 && (text[end - 1] == '=' || text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
  const bool url_safe = text.find_first_of("-_") != std::string::npos;
  const int variant = url_safe ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  std::string out(end / 4 * 3 + 3, '\0');
  std::size_t out_len = 0;
  const char* stop = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), end, "\r\n", &out_len,
                        &stop, variant) != 0 ||
      (stop && stop != text.data() + end)) {
    const std::size_t at = stop ? static_cast<std::size_t>(stop - text.data()) : 0;
    throw Error(ErrorCode::BadArgument, "field '" + field_name + "': not base64 (bad character or length at " +
                                            std::to_string(at) + " of " + std::to_string(text.size()) + ")");
  }
  out.resize(out_len);
  return out;
}

std::string base64_encode(const std::string& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

}  // namespace tumorlab::app
