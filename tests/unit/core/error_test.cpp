#include "tumorlab/core/error.h"

#include <gtest/gtest.h>

#include <set>

using namespace tumorlab;

TEST(ErrorTable, KindsMapToDocumentedExitCodesAndStatuses) {
  std::size_t n = 0;
  const ErrorInfo* table = error_table(&n);
  ASSERT_GT(n, 5u);
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < n; ++i) {
    const ErrorInfo& e = table[i];
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
    EXPECT_EQ(&error_info(e.code), &table[i]);
    switch (e.kind) {
      case ErrorKind::Input:
        EXPECT_EQ(e.exit_code, kExitBadInput) << e.name;
        EXPECT_GE(e.http_status, 400) << e.name;
        EXPECT_LT(e.http_status, 500) << e.name;
        break;
      case ErrorKind::Environment:
        EXPECT_EQ(e.exit_code, kExitEnvironment) << e.name;
        EXPECT_GE(e.http_status, 500) << e.name;
        break;
      case ErrorKind::Internal:
        EXPECT_EQ(e.exit_code, kExitInternal) << e.name;
        EXPECT_EQ(e.http_status, 500) << e.name;
        break;
    }
  }
}

TEST(Error, CarriesCodeAndMessage) {
  const Error e(ErrorCode::TooLarge, "a.nii: too big");
  EXPECT_EQ(e.code(), ErrorCode::TooLarge);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_EQ(e.http_status(), 413);
  EXPECT_STREQ(e.what(), "a.nii: too big");
}
