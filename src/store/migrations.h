#pragma once
// The schema migrations embedded in the binary (generated from src/store/migrations/*.sql).
// Internal to the store module.

#include <vector>

namespace tumorlab::store::detail {

struct Migration {
  int version;       // 1, 2, 3, ... from the NNNN prefix
  const char* name;  // file name without .sql, e.g. "0001_init"
  const char* sql;
};

// In version order.
const std::vector<Migration>& migrations();

}  // namespace tumorlab::store::detail
