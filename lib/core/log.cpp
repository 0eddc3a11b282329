#include "lib/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "lib/core/progress.h"

namespace dsq {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_quiet{false};
std::mutex g_mu;
void emit(const char* prefix, const std::string& msg) {
  std::lock_guard<std::mutex> lk(g_mu);
  progress_log_begin();  // a progress bar on screen: clear its line first, redraw it after
  std::fprintf(stderr, "%s%s\n", prefix, msg.c_str());
  progress_log_end();
}
}  // namespace

void set_log_level(LogLevel l) { g_level = static_cast<int>(l); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_quiet(bool q) {
  g_quiet = q;
  if (q && log_level() > LogLevel::kWarn) set_log_level(LogLevel::kWarn);
}
bool quiet() { return g_quiet; }

void log_warn(const std::string& msg) {
  if (g_level >= static_cast<int>(LogLevel::kWarn)) emit("warning: ", msg);
}
void log_info(const std::string& msg) {
  if (g_level >= static_cast<int>(LogLevel::kInfo)) emit("", msg);
}
void log_debug(const std::string& msg) {
  if (g_level >= static_cast<int>(LogLevel::kDebug)) emit("debug: ", msg);
}

}  // namespace dsq
