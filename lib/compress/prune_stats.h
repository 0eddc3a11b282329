// Calibration statistics for structured pruning, gathered through the engine's observer hooks in
// one forward pass over the calibration windows:
//   - per layer, per input channel of the linears that consume the prunable channels (the arch
//     table's consumer_of(Dim::kQ) and consumer_of(Dim::kFfn); Llama: attn_output
//     [n_heads*head_dim], the attention output, and ffn_down [d_ff], silu(gate)*up): sum x and sum x^2 over calibration tokens, for Wanda/FLAP
//     importance (||X_j||_2, variance) and FLAP's bias compensation (mean);
//   - per block, its influence 1 - mean_t cos(h_in[t], h_out[t]) on the residual stream
//     (ShortGPT, Men et al. 2024, eq. 2): blocks that barely change the hidden state go first.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "lib/core/arch.h"
#include "lib/model/observer.h"

namespace dsq::compress {

// Running per-channel sums of one linear's input over calibration rows (f64 accumulators; rows
// are added in arrival order, so the sums do not depend on the thread count).
struct ChannelStats {
  std::vector<double> sum;     // [channels] sum_t x_tj
  std::vector<double> sum_sq;  // [channels] sum_t x_tj^2
  int64_t rows = 0;

  void add(model::ActView x);
  int64_t channels() const { return static_cast<int64_t>(sum.size()); }
  double mean(int64_t j) const;
  double l2(int64_t j) const;        // ||X_j||_2 = sqrt(sum_sq)
  double variance(int64_t j) const;  // sample variance (rows - 1 in the denominator)
};

struct PruneStats {
  std::vector<ChannelStats> attn_out;  // [n_layers] input of the q-head channels' consumer
  std::vector<ChannelStats> ffn_out;   // [n_layers] input of the FFN channels' consumer
  std::vector<double> cos_sum;         // [n_layers] sum over rows of cos(h_in, h_out)
  std::vector<int64_t> cos_rows;       // [n_layers]
  // 1 - mean cosine similarity of block l's input and output (0 when not measured).
  double influence(int64_t l) const;
  bool empty() const { return cos_rows.empty(); }
};

// Observer filling PruneStats; attach to every forward pass of the calibration windows.
class PruneStatsObserver : public model::Observer {
 public:
  PruneStatsObserver(const ArchInfo& arch, int64_t n_layers);
  void on_linear_input(int64_t layer, std::string_view name, model::ActView x) override;
  void on_block_input(int64_t layer, model::ActView h) override;
  void on_block_output(int64_t layer, model::ActView h) override;
  const PruneStats& stats() const { return stats_; }
  PruneStats take() { return std::move(stats_); }

 private:
  PruneStats stats_;
  std::vector<float> block_in_;  // copy of the current block's input
  std::string_view heads_consumer_, ffn_consumer_;  // short names (arch table)
};

}  // namespace dsq::compress
