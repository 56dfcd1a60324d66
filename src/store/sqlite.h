#pragma once
// Internal to the store module: a thin RAII layer over the SQLite C API with error translation.
// Only src/store/*.cpp include this (it pulls in sqlite3.h).

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "tumorlab/core/error.h"

namespace tumorlab::store::detail {

// Throws the tumorlab::Error for a failed SQLite call: BUSY/LOCKED -> StoreBusy (retried by
// the transaction runner), CONSTRAINT -> Conflict, FULL/IOERR/CANTOPEN/READONLY/PERM ->
// IoFailure, CORRUPT/NOTADB -> CorruptFile, anything else -> Internal. `what` says what was
// being done; SQLite's own message is appended.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

class Stmt;

struct Connection {
  sqlite3* db = nullptr;
  std::string path;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache;

  Connection(const std::string& path, int flags, int busy_timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without results.
  void exec(const char* sql);
  // A cached prepared statement, reset and unbound.
  Stmt prepare(std::string_view sql);
  std::int64_t changes() const { return sqlite3_changes64(db); }
  std::int64_t last_id() const { return sqlite3_last_insert_rowid(db); }
};

// A prepared statement borrowed from the connection's cache; reset when it goes out of scope.
class Stmt {
 public:
  Stmt(Connection& c, sqlite3_stmt* s) : c_(&c), s_(s) {}
  Stmt(Stmt&& o) noexcept : c_(o.c_), s_(o.s_) { o.s_ = nullptr; }
  Stmt(const Stmt&) = delete;
  ~Stmt() {
    if (s_) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }

  // Binding: index is 1-based, as in SQLite. Chainable.
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_null(int i);
  template <class T>
  Stmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  // true while there is a row; false when done.
  bool step();
  // Steps to completion (for INSERT/UPDATE/DELETE).
  void run();

  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  double f64(int col) const { return sqlite3_column_double(s_, col); }
  std::string text(int col) const;
  std::optional<std::int64_t> opt_i64(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::int64_t>(i64(col));
  }
  std::optional<double> opt_f64(int col) const { return is_null(col) ? std::nullopt : std::optional<double>(f64(col)); }

 private:
  Connection* c_;
  sqlite3_stmt* s_;
};

}  // namespace tumorlab::store::detail
