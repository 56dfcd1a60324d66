#pragma once
// Minimal leveled logging to stderr. Never log patient identifiers: log case ids, file
// basenames chosen by tumorlab, counts and timings only.

#include <string>

namespace tumorlab {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug", "info", "warn", "error", "off"; throws Error(BadArgument) otherwise.
LogLevel parse_log_level(const std::string& name);
void log(LogLevel level, const std::string& message);

inline void log_debug(const std::string& m) { log(LogLevel::Debug, m); }
inline void log_info(const std::string& m) { log(LogLevel::Info, m); }
inline void log_warn(const std::string& m) { log(LogLevel::Warn, m); }
inline void log_error(const std::string& m) { log(LogLevel::Error, m); }

}  // namespace tumorlab
