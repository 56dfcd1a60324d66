// The request-body readers, the store's JSON columns and base64 of app/json_util.h: values read
// back, bad input refused with BadArgument naming the field, RFC 4648 test vectors.
#include "tumorlab/app/json_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tumorlab/core/error.h"

using namespace tumorlab;
using nlohmann::json;

namespace {

// The message of the BadArgument that `f` throws ("" and a failure when it throws none).
template <class F>
std::string bad_argument(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no tumorlab::Error thrown";
  return "";
}

}  // namespace

TEST(JsonFields, ReadBack_NullIsAbsent_WrongTypeNamesFieldAndType) {
  const json body = {{"name", "case 7"}, {"flag", true}, {"n", 42}, {"whole", 3.0}, {"x", 0.25}, {"none", nullptr}};
  EXPECT_EQ(app::json_string(body, "name"), "case 7");
  EXPECT_TRUE(app::json_bool(body, "flag"));
  EXPECT_EQ(app::json_int(body, "n"), 42);
  EXPECT_EQ(app::json_int(body, "whole"), 3) << "an integral float is an integer";
  EXPECT_DOUBLE_EQ(app::json_double(body, "x"), 0.25);
  EXPECT_DOUBLE_EQ(app::json_double(body, "n"), 42.0);
  EXPECT_EQ(app::json_opt_string(body, "none"), std::nullopt);
  EXPECT_EQ(app::json_opt_int(body, "missing"), std::nullopt);
  EXPECT_EQ(bad_argument([&] { app::json_string(body, "none"); }), "field 'none' is required");
  EXPECT_EQ(bad_argument([&] { app::json_int(body, "missing"); }), "field 'missing' is required");
  EXPECT_EQ(bad_argument([&] { app::json_string(body, "n"); }), "field 'n': expected a string, got number");
  EXPECT_EQ(bad_argument([&] { app::json_bool(body, "name"); }), "field 'name': expected true or false, got string");
  EXPECT_EQ(bad_argument([&] { app::json_int(body, "x"); }), "field 'x': expected an integer, got number");
  EXPECT_EQ(bad_argument([&] { app::json_double(body, "flag"); }), "field 'flag': expected a number, got boolean");
  const json inf = {{"v", std::numeric_limits<double>::infinity()}};
  EXPECT_EQ(bad_argument([&] { app::json_double(inf, "v"); }), "field 'v': expected a finite number");
  EXPECT_EQ(bad_argument([&] { app::json_string(json::array({1}), "name"); }), "request body: expected a JSON object");
}

TEST(JsonFields, IntInRange_BoundsInclusive_FallbackOnlyWhenAbsent) {
  const json body = {{"k", 5}, {"big", 11}};
  EXPECT_EQ(app::json_int_in(body, "k", 5, 10), 5);
  EXPECT_EQ(app::json_int_in(body, "k", 0, 5), 5);
  EXPECT_EQ(bad_argument([&] { app::json_int_in(body, "big", 0, 10); }), "field 'big': expected 0..10, got 11");
  EXPECT_EQ(app::json_int_in(body, "absent", 0, 10, 7), 7);
  EXPECT_EQ(bad_argument([&] { app::json_int_in(body, "big", 0, 10, 7); }), "field 'big': expected 0..10, got 11")
      << "a fallback does not excuse a value out of range";
  EXPECT_EQ(bad_argument([&] { app::json_int_in(body, "absent", 0, 10); }), "field 'absent' is required");
}

TEST(StoredObject, ObjectsReadBack_AnythingElseIsEmptyObject) {
  EXPECT_EQ(app::stored_object(R"({"model": "lgg-flair-3d", "n": 2})"), (json{{"model", "lgg-flair-3d"}, {"n", 2}}));
  for (const char* text : {"", "not json", "[1, 2]", "\"text\"", "17", "null", "{\"cut\": "})
    EXPECT_EQ(app::stored_object(text), json::object()) << text;
}

TEST(Base64, Rfc4648Vectors_EncodeAndDecode) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(app::base64_encode(plain), encoded) << plain;
    EXPECT_EQ(app::base64_decode(encoded, "label"), plain) << encoded;
  }
}

TEST(Base64, BinaryRoundTrip_PaddingOptional_LineBreaks_UrlSafeAlphabet) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string encoded = app::base64_encode(all);
  EXPECT_EQ(app::base64_decode(encoded, "label"), all);
  // Without padding, and wrapped at 76 characters as MIME writers do.
  std::string unpadded = encoded;
  while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
  EXPECT_EQ(app::base64_decode(unpadded, "label"), all);
  std::string wrapped;
  for (std::size_t i = 0; i < encoded.size(); i += 76) wrapped += encoded.substr(i, 76) + "\r\n";
  EXPECT_EQ(app::base64_decode(wrapped, "label"), all);
  // 0xfb 0xff is "+/8=" in the standard alphabet and "-_8" in the URL-safe one.
  EXPECT_EQ(app::base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(app::base64_decode("+/8=", "label"), "\xfb\xff");
  EXPECT_EQ(app::base64_decode("-_8", "label"), "\xfb\xff");
}

TEST(Base64, BadInput_NamesTheField) {
  for (const char* text : {"Zm9v!", "Z", "Zg==Zg", "Zm9v Zg==", "data:application/gzip;base64,Zm9v"}) {
    const std::string msg = bad_argument([&] { app::base64_decode(text, "label"); });
    EXPECT_EQ(msg.rfind("field 'label': not base64", 0), 0u) << text << ": " << msg;
  }
}
