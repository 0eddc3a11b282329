#include "lib/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "lib/core/error.h"
#include "lib/core/log.h"

namespace dsq {
namespace {
// The innermost bar (the one that draws); bars live on the orchestrating thread only.
Progress* g_current = nullptr;
}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      enabled_(!quiet() && ::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  if (!enabled_) return;
  outer_ = g_current;
  if (outer_ && outer_->drawn_) {  // keep the outer stage's line, continue below it
    std::fputc('\n', stderr);
    outer_->drawn_ = false;
  }
  g_current = this;
  rate_start_ = start_;
  draw(true);
}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) { set(done_ + n); }

void Progress::set(int64_t done) {
  done_ = done;
  draw(false);
}

void Progress::set_label(std::string label) {
  label_ = std::move(label);
  draw(true);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  draw(true);
  std::fputc('\n', stderr);
  drawn_ = false;
  if (g_current == this) g_current = outer_;
}

void progress_log_begin() {
  if (g_current && g_current->drawn_) {
    std::fputs("\r\033[K", stderr);
    g_current->drawn_ = false;
  }
}

void progress_log_end() {
  if (g_current) g_current->draw(true);
}

std::string Progress::format_duration(double s) {
  if (s < 0) s = 0;
  if (s < 60) return strprintf("%.1fs", s);
  const long long t = static_cast<long long>(s + 0.5);
  if (t < 3600) return strprintf("%lldm%02llds", t / 60, t % 60);
  return strprintf("%lldh%02lldm", t / 3600, (t % 3600) / 60);
}

void Progress::draw(bool force) {
  if (!enabled_ || finished_ || g_current != this) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_done_ < 0 && done_ > 0) {  // the rate is measured from the end of the first unit
    first_done_ = done_;
    rate_start_ = now;
  }
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double el = std::chrono::duration<double>(now - start_).count();
  const double measured = std::chrono::duration<double>(now - rate_start_).count();
  const double rate = first_done_ >= 0 && done_ > first_done_ && measured > 0
                          ? static_cast<double>(done_ - first_done_) / measured
                          : (el > 0 ? static_cast<double>(done_) / el : 0.0);
  const bool eta_ok = first_done_ >= 0 && done_ > first_done_ && measured >= 2.0;
  std::string line = "\r" + label_ + " ";
  if (total_ > 0) {
    const double f = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    const int width = 30, fill = static_cast<int>(f * width);
    line += "[" + std::string(fill, '#') + std::string(width - fill, '.') + "] ";
    line += strprintf("%lld/%lld", static_cast<long long>(done_), static_cast<long long>(total_));
    if (eta_ok && rate > 0 && done_ < total_)
      line += " eta " + format_duration(static_cast<double>(total_ - done_) / rate);
  } else {
    line += strprintf("%lld", static_cast<long long>(done_));
  }
  line += strprintf(" %.1f %s/s elapsed %s\033[K", rate, unit_.c_str(), format_duration(el).c_str());
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace dsq
