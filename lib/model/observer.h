// Observer hooks of the reference forward pass. Calibration (Hessians X^T X, input channel norms,
// activation thresholds) and drift metrics attach here instead of writing a second forward pass.
//
// Every callback receives a read-only row-major activation [rows, cols] where rows = B*T (B
// sequences of T tokens, sequence-major: row b*T + t is token t of sequence b) and is valid only
// during the call. Callbacks run on the orchestrating thread, in forward order; for the Llama-like
// rows of the architecture table (block kinds kGqa + kDense) that is:
//   on_block_input(l)
//   attn_q, attn_k, attn_v        (input: attn_norm(h); the three share one input pointer)
//   attn_output                   (input: attention output, [rows, n_heads*head_dim])
//   ffn_gate, ffn_up              (input: ffn_norm(h); shared pointer)
//   ffn_down                      (input: silu(gate) * up, [rows, d_ff])
//   on_block_output(l)
// For each linear, on_linear_input comes before and on_linear_output after its matmul (output
// includes the bias). Skipped sub-blocks (0 heads or 0 d_ff after pruning) fire no linear hooks.
// Linears that share an input (arch.h LinearGroup) receive the same pointer, so an observer that
// only needs one statistic per group can key on LinearGroup::linears.front().
//
// DeepSeek blocks (kMla + kMoe): attn_q_a (or attn_q) and attn_kv_a_mqa share attn_norm(h);
// attn_q_b reads q_a_norm's output, attn_kv_b kv_a_norm's; attn_output the attention output
// [rows, n_heads*v_head_dim]. A MoE FFN calls ffn_gate_inp (the router, on ffn_norm(h)), then the
// shared expert's ffn_gate_shexp/ffn_up_shexp/ffn_down_shexp on every row, then for each routed
// expert e in ascending order, in chunks of at most a few thousand rows, "ffn_gate_exps.e",
// "ffn_up_exps.e" and "ffn_down_exps.e" on exactly the rows routed to it (in row order). Chunked
// linears fire their hooks once per chunk.
#pragma once

#include <cstdint>
#include <string_view>

namespace dsq::model {

struct ActView {
  const float* data = nullptr;  // row-major [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
  const float* row(int64_t r) const { return data + r * cols; }
};

class Observer {
 public:
  virtual ~Observer() = default;
  // `name` is the linear's short name in the architecture table ("attn_q", ..., "ffn_down"), and
  // "output" for the classifier (layer = -1).
  virtual void on_linear_input(int64_t layer, std::string_view name, ActView x) {
    (void)layer, (void)name, (void)x;
  }
  virtual void on_linear_output(int64_t layer, std::string_view name, ActView y) {
    (void)layer, (void)name, (void)y;
  }
  // Hidden state [rows, d_model] entering / leaving block `layer` (residual stream).
  virtual void on_block_input(int64_t layer, ActView h) { (void)layer, (void)h; }
  virtual void on_block_output(int64_t layer, ActView h) { (void)layer, (void)h; }
};

}  // namespace dsq::model
