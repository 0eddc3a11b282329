// A progress bar with rate and ETA on stderr. Draws only when stderr is a TTY and not quiet();
// otherwise it is silent, so piped output and CI logs stay clean.
//
// One line per stage: bars stack. A bar started while another is on screen first ends that line
// (the outer stage's state stays visible above), and when it finishes the outer bar continues on a
// new line. Log lines (log.h) clear the current bar's line, print, and redraw it, so neither
// overwrites the other. The ETA appears once the rate is measured on real work: after the first
// unit (which often includes setup) and at least 2 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dsq {

class Progress {
 public:
  // `total` units of work (0 = unknown); `unit` is shown after the rate ("tok", "tensors").
  Progress(std::string label, int64_t total, std::string unit = "");
  ~Progress();  // finishes the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t n = 1);  // thread-safe enough for use from the orchestrating thread only
  void set(int64_t done);
  void set_label(std::string label);
  void finish();
  bool active() const { return enabled_; }
  // Formats seconds as "1h02m", "3m05s" or "12.3s".
  static std::string format_duration(double seconds);

 private:
  void draw(bool force);
  friend void progress_log_begin();
  friend void progress_log_end();
  Progress* outer_ = nullptr;  // the bar that was current when this one started
  bool drawn_ = false;         // this bar's line is on screen (not yet ended)
  int64_t first_done_ = -1;    // units done when the rate clock started (after the first unit)
  std::chrono::steady_clock::time_point rate_start_;
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Called by the logger around each line it prints: clear the current bar's line, then redraw it.
void progress_log_begin();
void progress_log_end();

}  // namespace dsq
