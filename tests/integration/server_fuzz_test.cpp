// Schema-driven mutation test of the real `tumorlab serve` (issue 4: malformed requests get a 4xx
// with a JSON error and the server keeps serving). Every route comes from /api/openapi.json:
// - each JSON-body route (POST/PUT/PATCH) gets malformed bodies (not JSON, truncated, other
//   top-level types, deep nesting, invalid UTF-8, huge numbers) and its schema's sample body with
//   one property at a time replaced by each of a fixed list of wrong or extreme values;
// - each query parameter of every route gets extreme values;
// - path parameters get real ids of a seeded data folder (so handlers get past "not found").
// Deterministic (no randomness): a failure names the request that broke. No answer may be a 5xx
// (or a dropped connection), every 4xx carries a JSON error, and the server still answers at the end.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "server_process.h"
#include "test_support.h"
#include "tumorlab/core/volume.h"
#include "tumorlab/io/image_io.h"

using namespace tumorlab;
using nlohmann::json;
using tumorlab::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const char* kAdminPassword = "fuzz-admin-password-1";

// Values a field should never crash on: wrong types, extremes, paths, control characters.
std::vector<json> wrong_values() {
  return {nullptr,
          true,
          false,
          0,
          -1,
          2147483648LL,
          std::numeric_limits<std::int64_t>::max(),
          std::numeric_limits<std::int64_t>::min(),
          18446744073709551615ULL,
          1e308,
          -1e308,
          0.5,
          "",
          "x",
          std::string(70000, 'x'),
          "../../../../etc/passwd",
          std::string("a\0b", 3),
          "1; DROP TABLE cases",
          json::array(),
          json::array({1, "a", nullptr, json::object()}),
          json::object(),
          json{{"a", json{{"b", json::array()}}}}};
}

std::vector<std::string> malformed_bodies() {
  std::vector<std::string> b{"",
                             "not json",
                             "{",
                             "{\"a\":",
                             "null",
                             "[]",
                             "42",
                             "\"text\"",
                             "{\"a\":1e999999}",
                             "{\"a\":-1e999999}",
                             "{\"a\":\"\\ud800\"}",
                             std::string("{\"a\":\"\xff\xfe\"}"),
                             "{\"a\":1,\"a\":\"twice\"}"};
  b.push_back(std::string(5000, '[') + std::string(5000, ']'));
  b.push_back("{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}");
  return b;
}

json sample_of(const json& schema) {
  const std::string type = schema.value("type", "object");
  if (type == "string") return "a";
  if (type == "integer") return 1;
  if (type == "number") return 0.5;
  if (type == "boolean") return true;
  if (type == "array") return json::array();
  json o = json::object();
  if (schema.contains("properties"))
    for (const auto& [k, v] : schema["properties"].items()) o[k] = sample_of(v);
  return o;
}

class FuzzServer : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp_ / "data";
    seed_dataset();
    server_ = std::make_unique<tumorlab::testing::ServeProcess>(data_, kAdminPassword, tmp_ / "no-models",
                                                                std::vector<std::string>{"--job-workers", "0"});
    ASSERT_GT(server_->port(), 0);
    auto c = client();
    auto r =
        c.Post("/api/auth/login", json{{"username", "admin"}, {"password", kAdminPassword}}.dump(), "application/json");
    ASSERT_TRUE(r && r->status == 200);
    auth_ = {{"Authorization", "Bearer " + json::parse(r->body).value("token", "")}};
    // A second user whose account the /api/users/{user_id} mutations may change.
    r = c.Post("/api/users", auth_,
               json{{"username", "victim"}, {"password", "victim-password-1"}, {"role", "annotator"}}.dump(),
               "application/json");
    ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "");
    victim_id_ = json::parse(r->body).value("id", 0);
  }

  // Two validated 3D cases with imported labels (revisions), through `tumorlab import`.
  void seed_dataset() {
    const fs::path ds = tmp_ / "Dataset011_Fuzz";
    fs::create_directories(ds / "imagesTr");
    fs::create_directories(ds / "labelsTr");
    Geometry g;
    g.size = {24, 20, 4};
    for (int n = 0; n < 2; ++n) {
      Volume v(g, PixelType::Int16);
      LabelMap l(g);
      for (int64_t k = 0; k < 4; ++k)
        for (int64_t j = 0; j < 20; ++j)
          for (int64_t i = 0; i < 24; ++i) {
            const bool in = (i - 10 - n) * (i - 10 - n) + (j - 9) * (j - 9) < 16;
            v.data<int16_t>()[v.linear_index(i, j, k)] = static_cast<int16_t>(in ? 200 : (i * 3 + j + n) % 17);
            if (in) l.at(i, j, k) = 1;
          }
      io::write_image(v, ds / "imagesTr" / ("fz_" + std::to_string(n) + "_0000.nii.gz"));
      io::write_label(l, ds / "labelsTr" / ("fz_" + std::to_string(n) + ".nii.gz"));
    }
    std::ofstream(ds / "dataset.json") << R"({"channel_names": {"0": "T2w"}, "labels": {"background": 0, "lesion": 1},
      "numTraining": 2, "file_ending": ".nii.gz"})";
    const std::string cmd = std::string(TUMORLAB_CLI) + " import " + ds.string() + " --data-dir " + data_.string() +
                            " --modality MR --no-presegment > " + (tmp_ / "import.log").string() + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << tumorlab::testing::slurp_file(tmp_ / "import.log");
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    return c;
  }

  // A path with its parameters filled with real ids.
  std::vector<std::string> concrete_paths(const std::string& pattern) {
    std::vector<std::string> out{pattern};
    auto fill = [&](const std::string& param, const std::vector<std::string>& values) {
      std::vector<std::string> next;
      for (const auto& p : out) {
        const auto pos = p.find("{" + param + "}");
        if (pos == std::string::npos) {
          next.push_back(p);
          continue;
        }
        for (const auto& v : values) next.push_back(p.substr(0, pos) + v + p.substr(pos + param.size() + 2));
      }
      out = next;
    };
    fill("case_id", {"1"});
    fill("revision_id", {"1"});
    fill("job_id", {"1"});
    fill("model_id", {"1"});
    fill("user_id", {std::to_string(victim_id_)});
    fill("tool", {"grow", "threshold", "fill_holes", "remove_islands", "interpolate", "brush", "erase"});
    fill("export_id", {"0123456789abcdef0123456789abcdef"});
    fill("strategy", {"random", "first"});
    fill("model", {"segmentation"});
    return out;
  }

  void expect_handled(const httplib::Result& r, const std::string& what) {
    ++requests_;
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    per_route_ms_[what.substr(0, what.find(' ', what.find(' ') + 1))] += ms;
    if (!r) {
      ADD_FAILURE() << what << ": no answer (" << httplib::to_string(r.error()) << ")";
      return;
    }
    if (r->status >= 500) {
      ADD_FAILURE() << what << ": HTTP " << r->status << " " << r->body.substr(0, 300);
      return;
    }
    if (r->status >= 400 && r->get_header_value("Content-Type").find("json") != std::string::npos) {
      const json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded() || !j.contains("error"))
        ADD_FAILURE() << what << ": HTTP " << r->status << " without a JSON error: " << r->body.substr(0, 200);
    }
  }

  static std::string shorten(const std::string& s) {
    return s.size() > 120 ? s.substr(0, 120) + "...(" + std::to_string(s.size()) + " bytes)" : s;
  }

  TempDir tmp_;
  fs::path data_;
  std::unique_ptr<tumorlab::testing::ServeProcess> server_;
  httplib::Headers auth_;
  std::int64_t victim_id_ = 0;
  int requests_ = 0;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::map<std::string, double> per_route_ms_;  // reported, not asserted
};

}  // namespace

TEST_F(FuzzServer, EveryRoute_MalformedAndMutatedInput_Is4xxNever5xx_ServerKeepsServing) {
  auto c = client();
  auto r = c.Get("/api/openapi.json", auth_);
  ASSERT_TRUE(r && r->status == 200);
  const json spec = json::parse(r->body);
  int json_routes = 0;
  for (const auto& [pattern, ops] : spec["paths"].items()) {
    // Ends the session or changes the admin's own credentials: the rest would only see 401.
    if (pattern == "/api/auth/logout") continue;
    for (const auto& [method, op] : ops.items()) {
      const std::string m = method;
      for (const std::string& path : concrete_paths(pattern)) {
        // Query parameters: extreme values one at a time.
        if (op.contains("parameters")) {
          for (const auto& p : op["parameters"]) {
            if (p.value("in", "") != "query") continue;
            for (const std::string v : {"", "-1", "0", "99999999999999999999999", "abc", "%00", "..%2F..%2Fetc", "true",
                                        std::string(5000, 'q').c_str()}) {
              const std::string url = path + "?" + p.value("name", "") + "=" + v;
              if (m == "get" && pattern.find("/events") == std::string::npos)
                expect_handled(c.Get(url, auth_), "GET " + shorten(url));
              else if (m == "post")
                expect_handled(c.Post(url, auth_, "{}", "application/json"), "POST " + shorten(url));
            }
          }
        }
        if (m != "post" && m != "put" && m != "patch") continue;
        if (!op.contains("requestBody")) continue;
        const json& content = op["requestBody"]["content"];
        if (!content.contains("application/json")) continue;
        ++json_routes;
        auto send = [&](const std::string& body) {
          const std::string what = m + " " + path + " body " + shorten(body);
          if (m == "post") expect_handled(c.Post(path, auth_, body, "application/json"), what);
          if (m == "put") expect_handled(c.Put(path, auth_, body, "application/json"), what);
          if (m == "patch") expect_handled(c.Patch(path, auth_, body, "application/json"), what);
        };
        for (const auto& b : malformed_bodies()) send(b);
        const json schema = content["application/json"].value("schema", json::object());
        const json sample = sample_of(schema);
        send(sample.dump());
        if (!sample.is_object()) continue;
        for (const auto& [key, ignored] : sample.items()) {
          for (const auto& v : wrong_values()) {
            json body = sample;
            body[key] = v;
            send(body.dump(-1, ' ', false, json::error_handler_t::replace));
          }
        }
        for (const auto& v : wrong_values()) {  // a field no route knows
          json body = sample;
          body["unexpected_field"] = v;
          send(body.dump(-1, ' ', false, json::error_handler_t::replace));
        }
      }
    }
  }
  EXPECT_GE(json_routes, 15) << "the spec should list the JSON-body routes";
  EXPECT_GT(requests_, 2000);
  ASSERT_TRUE(server_->alive()) << server_->log();
  r = c.Get("/api/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Get("/api/cases", auth_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << "the admin session still works";
  const std::string log = server_->log();
  EXPECT_EQ(log.find("internal error"), std::string::npos) << log.substr(0, 4000);
  std::printf("fuzz: %d requests, %d JSON-body route instances\n", requests_, json_routes);
  std::vector<std::pair<double, std::string>> slow;
  for (const auto& [route, ms] : per_route_ms_) slow.push_back({ms, route});
  std::sort(slow.rbegin(), slow.rend());
  for (std::size_t i = 0; i < slow.size() && i < 6; ++i)
    std::printf("fuzz: %8.0f ms  %s\n", slow[i].first, slow[i].second.c_str());
}
