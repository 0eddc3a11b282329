// Multi-head Latent Attention (AttnKind::kMla), as transformers' DeepseekV3Attention computes it.
// With H heads, d_n/d_r/d_v the nope/rope/value head dims, R = kv_lora_rank, n = attn_norm(h):
//
//   q      = attn_q_b(rmsnorm(attn_q_a(n), attn_q_a_norm))  or attn_q(n) without a q LoRA
//            per head [q_nope (d_n) | q_rope (d_r)]
//   ckv    = attn_kv_a_mqa(n) = [latent (R) | k_pe (d_r)]
//   c      = rmsnorm(latent, attn_kv_a_norm)   (both inner norms use eps 1e-6, as transformers)
//   kv     = attn_kv_b(c), per head [k_nope (d_n) | v (d_v)]
//   k_h    = [k_nope_h | rope(k_pe)]  (one rope key shared by every head)
//   score  = q_h . k_h * s,  s = (d_n + d_r)^-0.5 * mscale(factor, mscale_all_dim)^2 under YaRN
//   out    = attn_output(concat_h softmax(score) v_h)
// RoPE rotates only the rope dims, in the interleaved layout (ModelConfig::rope_interleave).
//
// Without a KV cache (prefill, evaluation, calibration) the heads are expanded as above. With one
// (incremental decoding), the weight-absorbed form runs: the cache holds per token only the normed
// latent c (R floats) and the rotated shared key (d_r floats), 576 floats per token and layer for
// DeepSeek-V3 instead of H*(d_n+d_r+d_v) = 49152. With W_UK[h], W_UV[h] the k_nope and v rows of
// attn_kv_b:  score = (W_UK[h]^T q_nope_h) . c_u + rope(q_rope_h) . kr_u, and
// o_h = W_UV[h] (sum_u p_u c_u). Both forms agree to f32 rounding (tests/model/mla_test.cpp).
#pragma once

#include <cstdint>

#include "lib/model/block.h"

namespace dsq::model {

// The eps of the q_a / kv_a norms (transformers builds them without the config's eps).
inline constexpr double kMlaInnerNormEps = 1e-6;

// The softmax scale s above.
double mla_softmax_scale(const ModelConfig& c);

// Attention of kind kMla on xn = attn_norm(h) [B*T, d_model], added into h. With `kv` (B == 1)
// the absorbed form runs over cached positions [0, pos0 + T).
void attention_mla(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h,
                   int64_t B, int64_t T, Observer* obs, LayerKV* kv, int64_t pos0);

// The KV-cache row widths of an MLA layer: k = kv_lora_rank, v = qk_rope_head_dim.
inline int64_t mla_cache_k_width(const ModelConfig& c) { return c.mla.kv_lora_rank; }
inline int64_t mla_cache_v_width(const ModelConfig& c) { return c.mla.qk_rope_head_dim; }

}  // namespace dsq::model
