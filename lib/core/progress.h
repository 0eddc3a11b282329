// A progress bar with rate and ETA on stderr. Draws only when stderr is a TTY and not quiet();
// otherwise it is silent, so piped output and CI logs stay clean.
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
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace dsq
