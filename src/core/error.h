#pragma once
// One error type for all of tumorlab. Codes come from error_table.def, which also fixes each
// code's kind, HTTP status and CLI exit code, so the server and the command line agree.

#include <stdexcept>
#include <string>
#include <string_view>

namespace tumorlab {

enum class ErrorKind { Input, Environment, Internal };

enum class ErrorCode {
#define TL_ERROR(code, kind, http, exit_code, summary) code,
#include "tumorlab/core/error_table.def"
#undef TL_ERROR
};

struct ErrorInfo {
  ErrorCode code;
  std::string_view name;
  ErrorKind kind;
  int http_status;
  int exit_code;
  std::string_view summary;
};

const ErrorInfo& error_info(ErrorCode code);
// All rows of the table, in declaration order (for docs and the OpenAPI document).
const ErrorInfo* error_table(std::size_t* count);
std::string_view to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const { return code_; }
  const ErrorInfo& info() const { return error_info(code_); }
  int exit_code() const { return info().exit_code; }
  int http_status() const { return info().http_status; }

 private:
  ErrorCode code_;
};

// Exit codes of the command line.
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitEnvironment = 3;
inline constexpr int kExitInternal = 70;

}  // namespace tumorlab
