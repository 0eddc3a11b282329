// Logging to stderr with levels; --quiet lowers the level, --verbose raises it.
#pragma once

#include <string>

namespace dsq {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_log_level(LogLevel l);
LogLevel log_level();
// Set once by the CLI: true when progress bars and info lines should stay silent.
void set_quiet(bool q);
bool quiet();

void log_warn(const std::string& msg);   // "warning: <msg>"
void log_info(const std::string& msg);
void log_debug(const std::string& msg);

}  // namespace dsq
