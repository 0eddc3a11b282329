// One transformer block, as the architecture table declares it (lib/core/arch.h): a pre-norm
// attention sub-block of the row's AttnKind and a pre-norm FFN sub-block of its FfnKind, both added
// to the residual stream. The kinds implemented here:
//
//   kGqa:   h += attn_output( attention( rope(qn(attn_q(n))), rope(kn(attn_k(n))), attn_v(n) ) ),
//           n = rmsnorm(h); qn/kn are per-head RMSNorms when the row has attn_q_norm/attn_k_norm
//           (Qwen3), identity otherwise
//   kDense: h += ffn_down( silu(ffn_gate(n)) * ffn_up(n) ),                   n = rmsnorm(h)
//   kMla:   DeepSeek's Multi-head Latent Attention (lib/model/mla.h)
//   kMoe:   routed + shared SwiGLU experts in the MoE layers (lib/model/moe.h), kDense in the
//           others
//
// A block is loadable on its own (BlockWeights::load), so the layer-by-layer calibration pipeline
// can hold one block in memory and stream hidden states [B*T, d_model] through it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/weight_store.h"
#include "lib/model/linear.h"
#include "lib/model/observer.h"

namespace dsq::model {

// One routed expert's SwiGLU linears.
struct ExpertWeights {
  Linear gate, up, down;
};

// A MoE layer's router and experts. Experts are resident (loaded with the block, or set by the
// calibration pipeline once quantized) or, when `store` is set, loaded from it for one use and
// dropped: the calibration pipeline streams a layer's experts one at a time.
struct MoeWeights {
  Linear router;     // [n_experts, d_model], f32
  Tensor score_bias;  // f32 [n_experts]: selection-only correction bias
  std::vector<std::optional<ExpertWeights>> experts;  // resident experts
  const WeightStore* store = nullptr;
  bool f32 = false;  // streamed experts are dequantized/converted to f32 (for solvers)
};

// A handle on one expert: the resident one, or one loaded for this use.
class ExpertHandle {
 public:
  explicit ExpertHandle(const ExpertWeights* p) : p_(p) {}
  explicit ExpertHandle(std::unique_ptr<ExpertWeights> owned) : p_(owned.get()), owned_(std::move(owned)) {}
  ExpertHandle(ExpertHandle&&) = default;
  // A streamed expert's mapped source pages (f32 weights used in place) leave the RSS with it.
  ~ExpertHandle();
  const ExpertWeights& operator*() const { return *p_; }
  const ExpertWeights* operator->() const { return p_; }

 private:
  const ExpertWeights* p_;
  std::unique_ptr<ExpertWeights> owned_;
};

// How BlockWeights::load holds the weights.
struct BlockLoad {
  // Linears as f32 (FP8 and other kQInt sources dequantized): what solvers need.
  bool f32 = false;
  // Routed experts stay in the store and are loaded one at a time when the block runs.
  bool stream_experts = false;
};

struct BlockWeights {
  int64_t layer = 0;
  LayerDims dims;  // effective widths: n_heads == 0 skips attention, d_ff == 0 skips the FFN
  const ArchInfo* arch = nullptr;
  // The block's linears (with their biases) and norms, keyed by the table's short names, in table
  // order; a pruned-away sub-block contributes none. Routed experts are in `moe`.
  std::vector<std::pair<std::string_view, Linear>> linears;
  std::vector<std::pair<std::string_view, Tensor>> norms;  // f32
  std::optional<MoeWeights> moe;  // MoE layers
  // When pruning removed a whole sub-block, its output bias alone is kept (f32 [d_model], added
  // to every row: pruning's bias compensation) and the sub-block is otherwise skipped.
  Tensor attn_bias_only, ffn_bias_only;

  bool has_attn() const { return dims.n_heads > 0; }
  bool has_ffn() const { return dims.d_ff > 0; }
  bool is_moe() const { return moe.has_value(); }
  // The linear / norm of a short name ("attn_q", "ffn_norm", a resident expert's
  // "ffn_gate_exps.3"); nullptr when the block has none.
  Linear* linear(std::string_view short_name);
  const Linear* linear(std::string_view short_name) const;
  Tensor* norm(std::string_view short_name);
  const Tensor* norm(std::string_view short_name) const;
  // The linear of a short name the block's kind requires (asserts it is loaded).
  const Linear& lin(std::string_view short_name) const;
  // Expert e of a MoE layer: resident, or loaded from the store for this use.
  ExpertHandle expert(int64_t e) const;
  // Makes expert e resident with these weights (the pipeline's quantized experts).
  void set_expert(int64_t e, ExpertWeights w);
  // Loads block `layer` of ws (canonical names, see arch.h). Throws on missing tensors or shapes
  // that disagree with ws.config.
  static BlockWeights load(const WeightStore& ws, int64_t layer, const BlockLoad& how = {});
};

// Keys and values of one block for single-sequence incremental decoding.
struct LayerKV {
  // kGqa: [capacity, n_kv_heads*head_dim] each, post-RoPE keys. kMla (weight-absorbed decoding):
  // k holds [capacity, kv_lora_rank] normed latents, v [capacity, qk_rope_head_dim] post-RoPE
  // shared keys.
  std::vector<float> k, v;
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

// Causal attention of one sequence, scores scaled by `scale`: q[T, n_heads*d_qk] (row stride ldq)
// at positions pos0..pos0+T-1 against keys k[pos0+T, n_kv*d_qk] (row stride ldk) and values
// v[pos0+T, n_kv*d_v] (row stride ldv) -> out[T, n_heads*d_v] (row stride ldo). q-head h reads
// kv-head h / (n_heads / n_kv). QK^T and PV run through sgemm per head and query chunk.
struct AttnShape {
  int64_t n_heads = 0, n_kv_heads = 0, d_qk = 0, d_v = 0;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  float scale = 1.0f;
};
void causal_attention(const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                      const AttnShape& s, float* out);
// Causal softmax in place over score rows sc[rows, nk]: row i sees keys [0, first_seen + i]; the
// later entries become 0.
void softmax_causal_rows(float* sc, int64_t rows, int64_t nk, int64_t first_seen);

// Which sub-blocks block_forward runs: the calibration pipeline runs a MoE layer's attention in
// chunks of sequences and its FFN over all tokens at once (each expert is loaded once per pass).
enum class BlockPart { kAll, kAttn, kFfn };

// Runs block `w` over hidden states h[B*T, d_model] in place. Without a cache every sequence
// starts at position 0. With `kv` (B must be 1) the T tokens sit at positions pos0.. and their
// keys/values are written to kv rows [pos0, pos0+T) (capacity must suffice); attention reads all
// pos0+T cached positions. `obs` may be null.
void block_forward(const BlockWeights& w, const ModelConfig& c, float* h, int64_t B, int64_t T,
                   Observer* obs = nullptr, LayerKV* kv = nullptr, int64_t pos0 = 0,
                   BlockPart part = BlockPart::kAll);

// Runs a linear with its observer hooks (shared by the block kinds).
void run_linear(const Linear& lin, const float* x, int64_t rows, float* y, Observer* obs,
                int64_t layer, std::string_view name);
// h[i] += x[i] for i < n.
void add_inplace(float* h, const float* x, int64_t n);
// h[rows, d_model] += linear(x[rows, n_in]) for the block's linear `name` that writes the residual
// stream: the tail of every attention kind (attn_output) and of the dense FFN (ffn_down, whose
// swiglu computes the same product). The calibration pipeline calls it on the inputs it kept from
// the pass that collected them, and so adds the same numbers as block_forward without running the
// sub-block again.
void add_residual_linear(const BlockWeights& w, const ModelConfig& c, std::string_view name,
                         const float* x, float* h, int64_t rows, Observer* obs);
// SwiGLU: out[rows, d] = down(silu(gate(x)) * up(x)); the observer sees the three linears under
// the given names.
void swiglu(const Linear& gate, const Linear& up, const Linear& down, const float* x, int64_t rows,
            float* out, Observer* obs, int64_t layer, std::string_view gate_name,
            std::string_view up_name, std::string_view down_name);

}  // namespace dsq::model
