#include "lib/core/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lib/core/error.h"
#include "lib/core/rng.h"

namespace dsq {

namespace {

// splitmix64 (lib/core/rng.h): portable, so synthetic weights are identical everywhere.
struct Rng {
  uint64_t s;
  double uniform() { return splitmix64_uniform(s); }  // [0, 1)
};

Tensor random_tensor(Shape shape, double center, double half_width, Rng& rng, DType dtype) {
  Tensor t(DType::kF32, shape);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>(center + half_width * (2.0 * rng.uniform() - 1.0));
  return t.to(dtype);
}

}  // namespace

ModelConfig synthetic_config(std::string_view arch, const SyntheticShape& s) {
  ModelConfig c;
  c.arch = std::string(require_arch(arch, "synthetic model").name);
  c.n_layers = s.n_layers;
  c.d_model = s.d_model;
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = s.head_dim;
  c.d_ff = s.d_ff;
  c.vocab_size = s.vocab;
  c.max_ctx = s.max_ctx;
  c.tied_embeddings = false;
  const ArchInfo& a = require_arch(arch, "synthetic model");
  c.qkv_bias = a.qkv_bias;
  c.bos_id = 1;
  c.eos_id = 2;
  if (a.attn == AttnKind::kMla) {
    c.mla = {s.q_lora_rank, s.kv_lora_rank, s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim};
    c.head_dim = s.qk_nope_head_dim + s.qk_rope_head_dim;
    c.n_kv_heads = c.n_heads;
    c.rope_interleave = true;
  }
  if (a.ffn == FfnKind::kMoe && s.n_experts > 0) {
    c.moe.n_experts = s.n_experts;
    c.moe.n_experts_per_tok = s.n_experts_per_tok;
    c.moe.n_group = s.n_group;
    c.moe.topk_group = s.topk_group;
    c.moe.n_shared_experts = s.n_shared_experts;
    c.moe.d_expert = s.d_expert;
    c.moe.first_dense = s.first_dense;
    c.moe.layer_freq = 1;
    c.moe.norm_topk_prob = true;
    c.moe.routed_scaling_factor = 2.5;
  }
  return c;
}

ModelConfig tiny_llama_config() { return synthetic_config("llama"); }

WeightStore make_synthetic_model(const ModelConfig& c, uint64_t seed, DType dtype) {
  validate_config(c, "synthetic model");
  const ArchInfo& arch = arch_of(c);
  WeightStore ws;
  ws.config = c;
  ws.has_config = true;
  ws.metadata["source_format"] = "synthetic";
  Rng rng{seed};
  const std::string src = "<synthetic>";
  // Uniform(-a, a) has variance a^2/3: a = sqrt(3/fan_in) gives unit-variance outputs.
  auto add = [&](const ArchTensor& row, int64_t layer, int64_t expert) {
    Shape shape = row_shape(row, c, layer);
    double center = 0.0, hw = 1.0;
    DType t = dtype;
    switch (row.role) {
      case TensorRole::kEmbedding: break;
      case TensorRole::kNorm: center = 1.0, hw = 0.2; break;
      case TensorRole::kBias: hw = 0.5; break;
      case TensorRole::kRouterBias: hw = 0.05, t = DType::kF32; break;  // f32, as released
      case TensorRole::kLinear:
      case TensorRole::kClassifier:
      case TensorRole::kRouter:
        hw = std::sqrt(3.0 / static_cast<double>(std::max<int64_t>(shape.back(), 1)));
        break;
    }
    ws.add_tensor(expand_name(row.canonical, layer, expert),
                  random_tensor(std::move(shape), center, hw, rng, t), src);
  };
  // Embedding first, then the blocks, then the head (the order the weights are drawn in).
  for (const auto& row : arch.tensors)
    if (row.role == TensorRole::kEmbedding) add(row, -1, -1);
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const auto& row : arch.tensors) {
      if (!row.per_layer() || !row_required(row, c) || !row_in_layer(row, c, l)) continue;
      for (int64_t e = 0; e < (row.per_expert() ? c.moe.n_experts : 1); ++e)
        add(row, l, row.per_expert() ? e : -1);
    }
  for (const auto& row : arch.tensors)
    if (!row.per_layer() && row.role != TensorRole::kEmbedding && row_required(row, c))
      add(row, -1, -1);
  return ws;
}

}  // namespace dsq
