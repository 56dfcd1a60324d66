#pragma once
// What the HTTP integration tests share (server_test, server_monai_test, server_jobs_test,
// import_export_test): the seeded users' passwords, our JSON bodies read back, our error body
// checked, a bearer login, the scratch files left in a data folder, and the small 16 x 12 x 6
// "block" MR image that the server and MONAI tests seed into their data folders. Header-only.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"

namespace tumorlab::testing {

inline constexpr const char* kAdminPassword = "admin-password-123";
inline constexpr const char* kReviewerPassword = "reviewer-password-1";
inline constexpr const char* kAnnotatorPassword = "annotator-password-1";

// What is left in a data folder's scratch folder (DIR/tmp), by name: requests and jobs remove
// their scratch files and folders, so this is empty whenever none is running.
inline std::vector<std::string> scratch_entries(const std::filesystem::path& data_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(data_dir / "tmp", ec))
    names.push_back(e.path().filename().string());
  return names;
}

// The body as JSON; null when there is no answer or the body is not JSON.
inline nlohmann::json parse_body(const httplib::Result& r) {
  if (!r) return nlohmann::json();
  try {
    return nlohmann::json::parse(r->body);
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json();
  }
}

// An error answer: the given status and our JSON error body ({"error": {code, message, status}},
// docs/api.md), with the given code when one is named.
inline void expect_error(const httplib::Result& r, int status, const std::string& code = "") {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const nlohmann::json j = parse_body(r);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << "not a JSON error body: " << r->body.substr(0, 200);
  EXPECT_TRUE(j["error"]["message"].is_string()) << r->body;
  if (!code.empty()) {
    EXPECT_EQ(j["error"]["code"], code) << r->body;
  }
  EXPECT_EQ(j["error"]["status"], status) << r->body;
}

// POST /api/auth/login; the bearer header of the session (empty token when the login failed,
// which is also reported as a test failure).
inline httplib::Headers login_bearer(httplib::Client& c, const std::string& user, const std::string& password) {
  auto r = c.Post("/api/auth/login", nlohmann::json{{"username", user}, {"password", password}}.dump(),
                  "application/json");
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  return {{"Authorization", "Bearer " + parse_body(r).value("token", "")}};
}

// 16 x 12 x 6 voxels of 1 x 1 x 2 mm.
inline Geometry block_grid() {
  Geometry g;
  g.size = {16, 12, 6};
  g.spacing_mm = {1.0, 1.0, 2.0};
  g.origin_lps = {-8, -6, 10};
  return g;
}

// MR image on block_grid(): background 10, a bright block of 100 at i, j in [4, 8) and k in [1, 4)
// (48 voxels).
inline Volume block_image() {
  Volume v(block_grid(), PixelType::Int16);
  auto* d = v.data<int16_t>();
  for (int64_t n = 0; n < v.voxel_count(); ++n) d[n] = 10;
  for (int k = 1; k < 4; ++k)
    for (int j = 4; j < 8; ++j)
      for (int i = 4; i < 8; ++i) d[v.linear_index(i, j, k)] = 100;
  v.modality = "MR";
  return v;
}

// A label of 1 on i in [i0, i1), j in [4, 8), k in [1, 4) of `g` (block_label(g, 4, 8) is the block).
inline LabelMap block_label(const Geometry& g, int i0, int i1) {
  LabelMap l(g);
  for (int k = 1; k < 4; ++k)
    for (int j = 4; j < 8; ++j)
      for (int i = i0; i < i1; ++i) l.at(i, j, k) = 1;
  return l;
}

}  // namespace tumorlab::testing
