#include "lib/model/mla.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <omp.h>

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/core/memory.h"
#include "lib/model/rope.h"
#include "lib/quant/qmatmul.h"

namespace dsq::model {

namespace {
using Buf = ScratchFloats;  // lib/core/memory.h: pooled per thread
Buf alloc(int64_t n) { return Buf(n); }
}  // namespace

double mla_softmax_scale(const ModelConfig& c) {
  double s = 1.0 / std::sqrt(static_cast<double>(c.mla.qk_nope_head_dim + c.mla.qk_rope_head_dim));
  const RopeScaling& y = c.rope_scaling;
  if (y.type == "yarn" && y.mscale_all_dim != 0) {
    const double m = yarn_mscale(y.factor, y.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

void attention_mla(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h,
                   int64_t B, int64_t T, Observer* obs, LayerKV* kv, int64_t pos0) {
  namespace n = names;
  const MlaDims& m = c.mla;
  const int64_t rows = B * T, l = w.layer, H = w.dims.n_heads;
  const int64_t dn = m.qk_nope_head_dim, dr = m.qk_rope_head_dim, dv = m.v_head_dim;
  const int64_t R = m.kv_lora_rank, dqk = dn + dr, wq = H * dqk, wv = H * dv, wkvb = H * (dn + dv);

  // Queries.
  Buf q = alloc(rows * wq);
  if (m.q_lora_rank > 0) {
    Buf qa = alloc(rows * m.q_lora_rank);
    run_linear(w.lin(n::kAttnQA), xn, rows, qa.data(), obs, l, n::kAttnQA);
    rmsnorm(qa.data(), w.norm(n::kAttnQANorm)->data<float>(), rows, m.q_lora_rank,
            kMlaInnerNormEps, qa.data());
    run_linear(w.lin(n::kAttnQB), qa.data(), rows, q.data(), obs, l, n::kAttnQB);
  } else {
    run_linear(w.lin(n::kAttnQ), xn, rows, q.data(), obs, l, n::kAttnQ);
  }
  // The latent and the shared rope key.
  Buf ckv = alloc(rows * (R + dr));
  run_linear(w.lin(n::kAttnKvA), xn, rows, ckv.data(), obs, l, n::kAttnKvA);
  Buf lat = alloc(rows * R), kpe = alloc(rows * dr);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(lat.data() + r * R, ckv.data() + r * (R + dr), static_cast<size_t>(R) * 4);
    std::memcpy(kpe.data() + r * dr, ckv.data() + r * (R + dr) + R, static_cast<size_t>(dr) * 4);
  }
  ckv = {};
  rmsnorm(lat.data(), w.norm(n::kAttnKvANorm)->data<float>(), rows, R, kMlaInnerNormEps, lat.data());
  const RopeTable rt = make_rope_table(c, pos0, T);
  apply_rope(q.data(), rows, T, wq, H, dqk, dn, rt, c.rope_interleave);
  apply_rope(kpe.data(), rows, T, dr, 1, dr, 0, rt, c.rope_interleave);
  const float scale = static_cast<float>(mla_softmax_scale(c));

  Buf att = alloc(rows * wv);
  const Linear& kvb = w.lin(n::kAttnKvB);
  if (!kv) {
    // Expanded heads: K = [k_nope | k_pe] and V per head.
    Buf kvo = alloc(rows * wkvb);
    run_linear(kvb, lat.data(), rows, kvo.data(), obs, l, n::kAttnKvB);
    Buf k = alloc(rows * wq), v = alloc(rows * wv);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t hh = 0; hh < H; ++hh) {
        const float* src = kvo.data() + r * wkvb + hh * (dn + dv);
        float* kd = k.data() + r * wq + hh * dqk;
        std::memcpy(kd, src, static_cast<size_t>(dn) * 4);
        std::memcpy(kd + dn, kpe.data() + r * dr, static_cast<size_t>(dr) * 4);
        std::memcpy(v.data() + r * wv + hh * dv, src + dn, static_cast<size_t>(dv) * 4);
      }
    const AttnShape as{H, H, dqk, dv, wq, wq, wv, wv, scale};
    for (int64_t b = 0; b < B; ++b)
      causal_attention(q.data() + b * T * wq, k.data() + b * T * wq, v.data() + b * T * wv, T, 0,
                       as, att.data() + b * T * wv);
  } else {
    // Weight-absorbed decoding over the latent cache.
    DSQ_ASSERT(static_cast<int64_t>(kv->k.size()) >= (pos0 + T) * R &&
                   static_cast<int64_t>(kv->v.size()) >= (pos0 + T) * dr,
               "MLA KV cache too small");
    std::copy(lat.begin(), lat.end(), kv->k.begin() + pos0 * R);
    std::copy(kpe.begin(), kpe.end(), kv->v.begin() + pos0 * dr);
    Buf wdeq;
    const float* W = nullptr;  // kv_b [H*(dn+dv), R] as f32
    if (kvb.weight().dtype() != DType::kF32) {
      wdeq = alloc(wkvb * R);
      kvb.rows_f32(0, wkvb, wdeq.data());
      W = wdeq.data();
    } else {
      W = kvb.weight().data<float>();
    }
    const float* C = kv->k.data();
    const float* Kr = kv->v.data();
    constexpr int64_t kChunk = 128;
    const int64_t tmax = std::min(kChunk, T), nkeys = pos0 + T;
    const int n_threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), H));
    std::vector<Buf> scratch(static_cast<size_t>(n_threads));
    for (auto& s : scratch) s = alloc(tmax * (2 * R + nkeys));
    linalg::SerialBlasScope serial;
    const bool par = H * T * nkeys * R >= (int64_t{1} << 22);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (par)
    for (int64_t hh = 0; hh < H; ++hh) {
      float* qt = scratch[static_cast<size_t>(omp_get_thread_num())].data();  // [tc, R]
      float* ob = qt + tmax * R;                                             // [tc, R]
      float* sc = ob + tmax * R;                                             // [tc, nk]
      const float* wuk = W + hh * (dn + dv) * R;  // [dn, R]
      const float* wuv = wuk + dn * R;            // [dv, R]
      for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
        const int64_t tc = std::min(kChunk, T - t0), nk = pos0 + t0 + tc;
        const float* qh = q.data() + t0 * wq + hh * dqk;
        linalg::sgemm(false, false, tc, R, dn, 1.0f, qh, wq, wuk, R, 0.0f, qt, R);
        linalg::sgemm(false, true, tc, nk, R, scale, qt, R, C, R, 0.0f, sc, nk);
        linalg::sgemm(false, true, tc, nk, dr, scale, qh + dn, wq, Kr, dr, 1.0f, sc, nk);
        softmax_causal_rows(sc, tc, nk, pos0 + t0);
        linalg::sgemm(false, false, tc, R, nk, 1.0f, sc, nk, C, R, 0.0f, ob, R);
        linalg::sgemm(false, true, tc, dv, R, 1.0f, ob, R, wuv, R, 0.0f,
                      att.data() + t0 * wv + hh * dv, wv);
      }
    }
  }
  add_residual_linear(w, c, names::kAttnOutput, att.data(), h, rows, obs);
}

}  // namespace dsq::model
