// Mixture-of-Experts FFN (FfnKind::kMoe), as transformers' DeepseekV3MoE computes it, for the
// tokens xn = ffn_norm(h) [rows, d_model] of a MoE layer:
//
//   logits = ffn_gate_inp(xn)                      router, f32
//   s      = sigmoid(logits);  b = s + exp_probs_b (the correction bias only selects)
//   groups : E experts in n_group groups; a group's score is the sum of its two best b; the
//            topk_group best groups are kept (the others' b become -inf)
//   top-K  : the n_experts_per_tok best b; weights w = s[idx], / (sum w + 1e-20) when
//            norm_topk_prob, * routed_scaling_factor
//   y      = sum_k w_k * expert_{idx_k}(xn) + shared(xn)     (SwiGLU experts)
// Ties are broken towards the lower index (group or expert), so routing is deterministic.
//
// Batched evaluation groups tokens by expert: for each expert in ascending order its routed rows
// are gathered (in chunks of kMoeChunkRows), run through one GEMM per linear and scattered back
// weighted; the sum for a row accumulates in expert order, independent of the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "lib/model/block.h"

namespace dsq::model {

inline constexpr int64_t kMoeChunkRows = 4096;

// Which rows each expert serves, in CSR form (rows ascending within an expert).
struct Routing {
  int64_t rows = 0;
  std::vector<int32_t> experts;  // [rows * k]: the selected experts of each row
  std::vector<float> weights;    // [rows * k]: their weights
  std::vector<int64_t> offsets;  // [n_experts + 1]
  std::vector<int64_t> token;    // [rows * k]: row indices, grouped by expert
  std::vector<float> weight;     // [rows * k]: the matching weights
  int64_t count(int64_t e) const { return offsets[static_cast<size_t>(e + 1)] - offsets[static_cast<size_t>(e)]; }
};

// Routes the rows of xn through the layer's router (the observer sees "ffn_gate_inp").
Routing moe_route(const BlockWeights& w, const ModelConfig& c, const float* xn, int64_t rows,
                  Observer* obs);

// The selection of one row from its router logits [n_experts]: experts[k], weights[k].
void route_row(const float* logits, const float* score_bias, const MoeConfig& m, int32_t* experts,
               float* weights);

// out[token[i]] += weight[i] * expert(xn[token[i]]) for the n rows token[0..n) of one expert, in
// chunks of kMoeChunkRows gathered rows; the observer sees the expert's linears under
// "ffn_gate_exps.e", "ffn_up_exps.e", "ffn_down_exps.e".
void expert_apply(const ExpertWeights& x, int64_t e, const ModelConfig& c, const float* xn,
                  const int64_t* token, const float* weight, int64_t n, float* out, Observer* obs,
                  int64_t layer);

// FFN of kind kMoe on xn, added into h.
void ffn_moe(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h, int64_t rows,
             Observer* obs);

}  // namespace dsq::model
