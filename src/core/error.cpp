#include "tumorlab/core/error.h"

namespace tumorlab {
namespace {
const ErrorInfo kTable[] = {
#define TL_ERROR(code, kind, http, exit_code, summary) \
  {ErrorCode::code, #code, ErrorKind::kind, http, exit_code, summary},
#include "tumorlab/core/error_table.def"
#undef TL_ERROR
};
}  // namespace

const ErrorInfo& error_info(ErrorCode code) { return kTable[static_cast<std::size_t>(code)]; }

const ErrorInfo* error_table(std::size_t* count) {
  *count = sizeof(kTable) / sizeof(kTable[0]);
  return kTable;
}

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Input: return "input";
    case ErrorKind::Environment: return "environment";
    case ErrorKind::Internal: return "internal";
  }
  return "internal";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

}  // namespace tumorlab
