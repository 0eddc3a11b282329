// Synthetic models for tests and benchmarks: a WeightStore with canonical names, filled with
// deterministic pseudo-random weights (uniform with variance 1/fan_in, norms near 1), so any
// architecture of the table at any width (realistic 1B/7B-class shapes, non-uniform pruned layers)
// can be built in memory without files. The tensors come from the architecture table: a new row
// gets synthetic models for free.
#pragma once

#include <cstdint>
#include <string_view>

#include "lib/core/weight_store.h"

namespace dsq {

// The widths of a synthetic model; the structure (biases, per-head norms, ...) is the row's.
struct SyntheticShape {
  int64_t n_layers = 2;
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 16;
  int64_t d_ff = 96;
  int64_t vocab = 128;
  int64_t max_ctx = 256;
  // Latent attention and experts: used by rows of AttnKind::kMla / FfnKind::kMoe only (head_dim is
  // then qk_nope_head_dim + qk_rope_head_dim and n_kv_heads n_heads).
  int64_t q_lora_rank = 24;
  int64_t kv_lora_rank = 32;
  int64_t qk_nope_head_dim = 16;
  int64_t qk_rope_head_dim = 8;
  int64_t v_head_dim = 12;
  int64_t n_experts = 6;
  int64_t n_experts_per_tok = 2;
  int64_t n_group = 3;
  int64_t topk_group = 2;
  int64_t n_shared_experts = 1;
  int64_t d_expert = 40;
  int64_t first_dense = 1;
};
// Named shapes: a small test model, and the layer widths of TinyLlama-1.1B and Llama-7B (with a
// caller-chosen number of layers).
inline constexpr SyntheticShape kTinyShape{};
inline constexpr SyntheticShape kLlama1BShape{22, 2048, 32, 4, 64, 5632, 32000, 2048};
inline constexpr SyntheticShape kLlama7BShape{32, 4096, 32, 32, 128, 11008, 32000, 4096};
// DeepSeek-V3 / R1 widths (61 layers: 3 dense + 58 MoE of 256 experts, 8 per token, in 8 groups of
// which 4 are kept).
inline constexpr SyntheticShape kDeepseekV3Shape{61,   7168, 128, 128, 192, 18432, 129280, 4096,
                                                 1536, 512,  128, 64,  128, 256,   8,      8,
                                                 4,    1,    2048, 3};

// A config of family `arch` (a row of arch_table()) with shape `s`: BOS 1, EOS 2, untied
// embeddings, the row's flags (qkv_bias) set; MLA rows get interleaved RoPE, MoE rows
// DeepSeek-V3's routing (normalised top-k, routed_scaling_factor 2.5). Throws ConfigError for an
// unknown family.
ModelConfig synthetic_config(std::string_view arch, const SyntheticShape& s = kTinyShape);
// synthetic_config("llama"): d_model 64, 2 layers, 4 heads / 2 kv heads of 16, d_ff 96, vocab 128.
ModelConfig tiny_llama_config();

// Weights for config `c` (validated) stored as `dtype` (f32, f16 or bf16): every required tensor
// of the row, in the row's order (embedding, blocks, then the head). The same seed gives the same
// bytes on every platform.
WeightStore make_synthetic_model(const ModelConfig& c, uint64_t seed, DType dtype = DType::kF32);

}  // namespace dsq
