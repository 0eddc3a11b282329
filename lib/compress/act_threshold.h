// Calibrating TEAL-style activation thresholds (Liu et al. 2024, "Training-Free Activation
// Sparsity in Large Language Models"): for each targeted linear input, the magnitude t_R such that
// a fraction R of the calibration entries have |x| <= t_R (the R-quantile of |x|). At inference
// Linear::forward zeroes |x| <= t (lib/model/linear.h), so about R of each input is dropped with no
// per-token sort.
//
// Quantiles come from a log-spaced histogram of |x| (kSubBins bins per power of two, linear
// interpolation inside a bin: relative error of t below 2^-kSubBinsLog2), so calibration keeps a
// fixed-size histogram per input instead of every activation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/arch.h"
#include "lib/model/observer.h"

namespace dsq::compress {

class AbsHistogram {
 public:
  static constexpr int kSubBinsLog2 = 8;
  static constexpr int64_t kSubBins = int64_t{1} << kSubBinsLog2;  // per octave
  static constexpr int kMinExp = -60, kMaxExp = 40;  // |x| in [2^kMinExp, 2^kMaxExp) is binned

  AbsHistogram();
  // Adds |x[i]| for i < n (parallel; integer counts, so the result is thread-count independent).
  void add(const float* x, int64_t n);
  int64_t count() const { return count_; }
  // The smallest t with (entries with |x| <= t) >= q * count, interpolated inside its bin.
  double quantile(double q) const;

 private:
  std::vector<int64_t> bins_;  // [0]: |x| < 2^kMinExp (incl. 0); last: >= 2^kMaxExp; NaN ignored
  int64_t count_ = 0;
};

// Which linear inputs get a threshold. Groups are the arch table's LinearGroups (Llama: "attn_in"
// = q/k/v, "attn_out" = o, "ffn_in" = gate/up, "ffn_out" = down); "attn" and "ffn" name all groups
// of a sub-block. Parses a comma list, throws UsageError listing the valid names.
std::vector<std::string> parse_sparsify_targets(const ArchInfo& arch, std::string_view list);

// Observer accumulating one histogram per (layer, targeted group), keyed on the group's first
// linear (the linears of a group share their input).
class ThresholdObserver : public model::Observer {
 public:
  ThresholdObserver(const ModelConfig& c, const std::vector<std::string>& groups);
  void on_linear_input(int64_t layer, std::string_view name, model::ActView x) override;
  // Threshold per canonical linear weight name ("blk.3.ffn_down.weight") for fraction `ratio`.
  std::map<std::string, double> thresholds(double ratio) const;

 private:
  struct Target {
    std::string_view key;                 // first linear of the group: receives the input
    std::vector<std::string_view> linears;
  };
  std::vector<Target> targets_;
  std::map<std::pair<int64_t, std::string_view>, AbsHistogram> hist_;
};

}  // namespace dsq::compress
