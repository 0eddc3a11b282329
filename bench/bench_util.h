// Helpers the throughput benchmarks share: the machine's sgemm time on a shape, and the useful
// flops of one window through a model.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/linalg.h"

namespace dsq::bench {

// Seconds per C[m, n] = A[m, k] B[n, k]^T through dsq::linalg (after one warm-up call).
inline double sgemm_seconds(int64_t m, int64_t n, int64_t k, int reps) {
  std::vector<float> a(static_cast<size_t>(m * k), 0.01f), b(static_cast<size_t>(n * k), 0.02f),
      c(static_cast<size_t>(m * n));
  linalg::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);  // warm
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i)
    linalg::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// Useful flops of one window of T tokens: 2 * T * (linear weights + classifier) + causal
// attention (QK^T and PV over the T(T+1)/2 visible pairs of every head).
inline double window_flops(const ModelConfig& c, int64_t T) {
  const double d = static_cast<double>(c.d_model), hd = static_cast<double>(c.head_dim);
  double per_token = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerDims w = c.layer(l);
    per_token += d * hd * (2.0 * w.n_heads + 2.0 * w.n_kv_heads) + 3.0 * d * w.d_ff;
  }
  per_token += d * static_cast<double>(c.vocab_size);
  double attn = 0;
  for (int64_t l = 0; l < c.n_layers; ++l)
    attn += 2.0 * 2.0 * static_cast<double>(c.layer(l).n_heads) * hd * (T * (T + 1) / 2.0);
  return 2.0 * per_token * static_cast<double>(T) + attn;
}

}  // namespace dsq::bench
