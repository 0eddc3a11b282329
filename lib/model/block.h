// One transformer block, as the architecture table declares it (lib/core/arch.h): a pre-norm
// attention sub-block of the row's AttnKind and a pre-norm FFN sub-block of its FfnKind, both added
// to the residual stream. The kinds implemented here:
//
//   kGqa:   h += attn_output( attention( rope(qn(attn_q(n))), rope(kn(attn_k(n))), attn_v(n) ) ),
//           n = rmsnorm(h); qn/kn are per-head RMSNorms when the row has attn_q_norm/attn_k_norm
//           (Qwen3), identity otherwise
//   kDense: h += ffn_down( silu(ffn_gate(n)) * ffn_up(n) ),                   n = rmsnorm(h)
//
// A block is loadable on its own (BlockWeights::load), so the layer-by-layer calibration pipeline
// can hold one block in memory and stream hidden states [B*T, d_model] through it.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/weight_store.h"
#include "lib/model/linear.h"
#include "lib/model/observer.h"

namespace dsq::model {

struct BlockWeights {
  int64_t layer = 0;
  LayerDims dims;  // effective widths: n_heads == 0 skips attention, d_ff == 0 skips the FFN
  const ArchInfo* arch = nullptr;
  // The block's linears (with their biases) and norms, keyed by the table's short names, in table
  // order; a pruned-away sub-block contributes none.
  std::vector<std::pair<std::string_view, Linear>> linears;
  std::vector<std::pair<std::string_view, Tensor>> norms;  // f32
  // When pruning removed a whole sub-block, its output bias alone is kept (f32 [d_model], added
  // to every row: pruning's bias compensation) and the sub-block is otherwise skipped.
  Tensor attn_bias_only, ffn_bias_only;

  bool has_attn() const { return dims.n_heads > 0; }
  bool has_ffn() const { return dims.d_ff > 0; }
  // The linear / norm of a short name ("attn_q", "ffn_norm"); nullptr when the block has none.
  Linear* linear(std::string_view short_name);
  const Linear* linear(std::string_view short_name) const;
  Tensor* norm(std::string_view short_name);
  const Tensor* norm(std::string_view short_name) const;
  // The linear of a short name the block's kind requires (asserts it is loaded).
  const Linear& lin(std::string_view short_name) const;
  // Loads block `layer` of ws (canonical names, see arch.h). Throws on missing tensors or shapes
  // that disagree with ws.config.
  static BlockWeights load(const WeightStore& ws, int64_t layer);
};

// Keys and values of one block for single-sequence incremental decoding.
struct LayerKV {
  std::vector<float> k, v;  // [capacity, n_kv_heads*head_dim] each, post-RoPE keys
};

// Incremental-decoding state: the KV cache of every block and the number of positions held.
struct KVCache {
  std::vector<LayerKV> layers;
  int64_t len = 0;       // positions already in the cache
  int64_t capacity = 0;  // maximum positions
};

// RMSNorm of rows x[rows, d] into y (may alias x): y = x / sqrt(mean(x^2) + eps) * w.
void rmsnorm(const float* x, const float* w, int64_t rows, int64_t d, double eps, float* y);

// Per-head RMSNorm in place: each of the rows*n_heads vectors of head_dim entries of
// x[rows, n_heads*head_dim] is normalised and multiplied by w[head_dim] (Qwen3's q_norm/k_norm).
void head_rmsnorm(float* x, const float* w, int64_t rows, int64_t n_heads, int64_t head_dim,
                  double eps);

// Applies RoPE in place to x[rows, n_heads*head_dim] (rotate_half pairing (i, i + head_dim/2)),
// row r at position pos0 + (r % T): rows are B sequences of T tokens.
void rope_inplace(float* x, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim, int64_t pos0,
                  double theta);

// Causal attention of one sequence: q[T, n_heads*hd] at positions pos0..pos0+T-1 against keys and
// values k, v[pos0+T, n_kv*hd] (row stride ld_kv elements) -> out[T, n_heads*hd]. q-head h reads
// kv-head h / (n_heads / n_kv). QK^T and PV run through sgemm per head and query chunk.
void causal_attention(const float* q, const float* k, const float* v, int64_t ld_kv, int64_t T,
                      int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                      float* out);

// Runs block `w` over hidden states h[B*T, d_model] in place. Without a cache every sequence
// starts at position 0. With `kv` (B must be 1) the T tokens sit at positions pos0.. and their
// keys/values are written to kv rows [pos0, pos0+T) (capacity must suffice); attention reads all
// pos0+T cached positions. `obs` may be null.
void block_forward(const BlockWeights& w, const ModelConfig& c, float* h, int64_t B, int64_t T,
                   Observer* obs = nullptr, LayerKV* kv = nullptr, int64_t pos0 = 0);

}  // namespace dsq::model
