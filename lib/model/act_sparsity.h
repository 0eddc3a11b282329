// Measuring the activation sparsity that thresholded linears (Linear::act_threshold) actually
// reach at inference: an observer counts, for every linear with a threshold t > 0, the input
// entries with |x| <= t (exactly the entries Linear::forward zeroes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/model/model.h"
#include "lib/model/observer.h"

namespace dsq::model {

struct LinearSparsity {
  int64_t layer = 0;
  std::string name;        // short name of the arch table: "attn_q", ..., "ffn_down"
  float threshold = 0.0f;  // |x| <= threshold is zeroed
  int64_t zeros = 0;       // input entries zeroed
  int64_t total = 0;       // input entries seen
  double sparsity() const { return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0; }
};

// Counts per thresholded linear of `m`; forwards every callback to `next` (may be null), so it can
// be chained in front of another observer (e.g. a drift meter).
class SparsityMeter : public Observer {
 public:
  explicit SparsityMeter(const Model& m, Observer* next = nullptr);
  bool active() const { return !entries_.empty(); }  // the model has thresholded linears
  // One row per thresholded linear, in (layer, forward) order.
  const std::vector<LinearSparsity>& result() const { return entries_; }
  // Zeroed entries over all entries of every thresholded linear's inputs.
  double overall() const;

  void on_linear_input(int64_t layer, std::string_view name, ActView x) override;
  void on_linear_output(int64_t layer, std::string_view name, ActView y) override;
  void on_block_input(int64_t layer, ActView h) override;
  void on_block_output(int64_t layer, ActView h) override;

 private:
  std::vector<LinearSparsity> entries_;
  // [layer] -> (short name, entry) of its thresholded linears
  std::vector<std::vector<std::pair<std::string_view, int64_t>>> index_;
  Observer* next_;
};

}  // namespace dsq::model
