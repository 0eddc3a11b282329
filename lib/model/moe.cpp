#include "lib/model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "lib/core/error.h"
#include "lib/core/memory.h"

namespace dsq::model {

namespace {
using Buf = ScratchFloats;  // lib/core/memory.h: pooled per thread
Buf alloc(int64_t n) { return Buf(n); }
}  // namespace

void route_row(const float* logits, const float* score_bias, const MoeConfig& m, int32_t* experts,
               float* weights) {
  const int64_t E = m.n_experts, K = m.n_experts_per_tok;
  // Stack buffers would do for DeepSeek's 256 experts; the vectors keep any E safe.
  thread_local std::vector<float> s, b;
  thread_local std::vector<int32_t> idx;
  s.resize(static_cast<size_t>(E));
  b.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    s[static_cast<size_t>(e)] = 1.0f / (1.0f + std::exp(-logits[e]));
    b[static_cast<size_t>(e)] = s[static_cast<size_t>(e)] + (score_bias ? score_bias[e] : 0.0f);
  }
  auto better = [](float va, int64_t ia, float vb, int64_t ib) {
    return va > vb || (va == vb && ia < ib);
  };
  if (m.n_group > 1 && m.topk_group < m.n_group) {
    const int64_t per = E / m.n_group;
    std::vector<float> gs(static_cast<size_t>(m.n_group));
    for (int64_t g = 0; g < m.n_group; ++g) {
      float t1 = -std::numeric_limits<float>::infinity(), t2 = t1;  // the two best of the group
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        const float v = b[static_cast<size_t>(e)];
        if (v > t1) {
          t2 = t1;
          t1 = v;
        } else if (v > t2) {
          t2 = v;
        }
      }
      gs[static_cast<size_t>(g)] = t1 + t2;
    }
    std::vector<int64_t> go(static_cast<size_t>(m.n_group));
    std::iota(go.begin(), go.end(), 0);
    std::partial_sort(go.begin(), go.begin() + m.topk_group, go.end(), [&](int64_t x, int64_t y) {
      return better(gs[static_cast<size_t>(x)], x, gs[static_cast<size_t>(y)], y);
    });
    std::vector<char> keep(static_cast<size_t>(m.n_group), 0);
    for (int64_t i = 0; i < m.topk_group; ++i) keep[static_cast<size_t>(go[static_cast<size_t>(i)])] = 1;
    for (int64_t e = 0; e < E; ++e)
      if (!keep[static_cast<size_t>(e / per)]) b[static_cast<size_t>(e)] = -std::numeric_limits<float>::infinity();
  }
  idx.resize(static_cast<size_t>(E));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), [&](int32_t x, int32_t y) {
    return better(b[static_cast<size_t>(x)], x, b[static_cast<size_t>(y)], y);
  });
  double sum = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    experts[k] = idx[static_cast<size_t>(k)];
    weights[k] = s[static_cast<size_t>(idx[static_cast<size_t>(k)])];
    sum += weights[k];
  }
  const float norm = m.norm_topk_prob ? static_cast<float>(sum) + 1e-20f : 1.0f;
  for (int64_t k = 0; k < K; ++k)
    weights[k] = weights[k] / norm * static_cast<float>(m.routed_scaling_factor);
}

Routing moe_route(const BlockWeights& w, const ModelConfig& c, const float* xn, int64_t rows,
                  Observer* obs) {
  DSQ_ASSERT(w.moe.has_value(), "moe_route on a dense block");
  const MoeConfig& m = c.moe;
  const int64_t E = m.n_experts, K = m.n_experts_per_tok;
  Buf logits = alloc(rows * E);
  run_linear(w.moe->router, xn, rows, logits.data(), obs, w.layer, names::kFfnGateInp);
  Routing r;
  r.rows = rows;
  r.experts.resize(static_cast<size_t>(rows * K));
  r.weights.resize(static_cast<size_t>(rows * K));
  const float* bias = w.moe->score_bias.empty() ? nullptr : w.moe->score_bias.data<float>();
#pragma omp parallel for schedule(static) if (rows * E > (1 << 16))
  for (int64_t i = 0; i < rows; ++i)
    route_row(logits.data() + i * E, bias, m, r.experts.data() + i * K, r.weights.data() + i * K);
  r.offsets.assign(static_cast<size_t>(E + 1), 0);
  for (const int32_t e : r.experts) ++r.offsets[static_cast<size_t>(e + 1)];
  for (int64_t e = 0; e < E; ++e) r.offsets[static_cast<size_t>(e + 1)] += r.offsets[static_cast<size_t>(e)];
  r.token.resize(static_cast<size_t>(rows * K));
  r.weight.resize(static_cast<size_t>(rows * K));
  std::vector<int64_t> fill(r.offsets.begin(), r.offsets.end() - 1);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const auto e = static_cast<size_t>(r.experts[static_cast<size_t>(i * K + k)]);
      const auto at = static_cast<size_t>(fill[e]++);
      r.token[at] = i;
      r.weight[at] = r.weights[static_cast<size_t>(i * K + k)];
    }
  return r;
}

void expert_apply(const ExpertWeights& x, int64_t e, const ModelConfig& c, const float* xn,
                  const int64_t* token, const float* weight, int64_t n, float* out, Observer* obs,
                  int64_t layer) {
  const int64_t d = c.d_model;
  const std::string gn = expert_name(names::kFfnGateExps, e), un = expert_name(names::kFfnUpExps, e),
                    dn = expert_name(names::kFfnDownExps, e);
  const int64_t chunk = std::min(n, kMoeChunkRows);
  Buf xg = alloc(chunk * d), y = alloc(chunk * d);
  for (int64_t i0 = 0; i0 < n; i0 += kMoeChunkRows) {
    const int64_t nc = std::min(kMoeChunkRows, n - i0);
#pragma omp parallel for schedule(static) if (nc * d > (1 << 18))
    for (int64_t i = 0; i < nc; ++i)
      std::memcpy(xg.data() + i * d, xn + token[i0 + i] * d, static_cast<size_t>(d) * 4);
    swiglu(x.gate, x.up, x.down, xg.data(), nc, y.data(), obs, layer, gn, un, dn);
    // Rows are distinct within an expert: the scatter is race-free.
#pragma omp parallel for schedule(static) if (nc * d > (1 << 18))
    for (int64_t i = 0; i < nc; ++i) {
      float* o = out + token[i0 + i] * d;
      const float* yi = y.data() + i * d;
      const float wi = weight[i0 + i];
      for (int64_t j = 0; j < d; ++j) o[j] += wi * yi[j];
    }
  }
}

void ffn_moe(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h, int64_t rows,
             Observer* obs) {
  namespace n = names;
  const int64_t d = c.d_model;
  const Routing r = moe_route(w, c, xn, rows, obs);
  Buf out = alloc(rows * d);
  if (c.moe.n_shared_experts > 0) {
    Buf y = alloc(std::min(rows, kMoeChunkRows) * d);
    for (int64_t r0 = 0; r0 < rows; r0 += kMoeChunkRows) {
      const int64_t nr = std::min(kMoeChunkRows, rows - r0);
      swiglu(w.lin(n::kFfnGateShexp), w.lin(n::kFfnUpShexp), w.lin(n::kFfnDownShexp), xn + r0 * d,
             nr, y.data(), obs, w.layer, n::kFfnGateShexp, n::kFfnUpShexp, n::kFfnDownShexp);
      std::memcpy(out.data() + r0 * d, y.data(), static_cast<size_t>(nr * d) * 4);
    }
  }
  for (int64_t e = 0; e < c.moe.n_experts; ++e) {
    const int64_t cnt = r.count(e);
    if (cnt == 0) continue;
    const ExpertHandle x = w.expert(e);
    const auto off = static_cast<size_t>(r.offsets[static_cast<size_t>(e)]);
    expert_apply(*x, e, c, xn, r.token.data() + off, r.weight.data() + off, cnt, out.data(), obs,
                 w.layer);
  }
  add_inplace(h, out.data(), rows * d);
}

}  // namespace dsq::model
