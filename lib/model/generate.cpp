#include "lib/model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "lib/core/error.h"
#include "lib/model/metrics.h"

namespace dsq::model {

int32_t sample_token(const float* logits, int64_t vocab, double temperature, int64_t top_k,
                     std::mt19937_64& rng) {
  if (temperature <= 0.0) return static_cast<int32_t>(argmax(logits, vocab));
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t k = top_k > 0 ? std::min(top_k, vocab) : vocab;
  // Largest logits first; ties by id so the order never depends on the sort implementation.
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
  std::vector<double> p(static_cast<size_t>(k));
  const double mx = logits[idx[0]];
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    p[static_cast<size_t>(i)] = std::exp((logits[idx[static_cast<size_t>(i)]] - mx) / temperature);
    sum += p[static_cast<size_t>(i)];
  }
  // Inverse-CDF draw from a uniform double: reproducible across standard libraries, unlike
  // std::discrete_distribution.
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng) * sum;
  double acc = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    acc += p[static_cast<size_t>(i)];
    if (u < acc) return idx[static_cast<size_t>(i)];
  }
  return idx[static_cast<size_t>(k - 1)];
}

std::vector<int32_t> generate(const Model& m, std::span<const int32_t> prompt,
                              const SampleOptions& opts, GenerateTiming* timing) {
  if (prompt.empty()) throw UsageError("generate: the prompt has no tokens");
  const int64_t need = static_cast<int64_t>(prompt.size()) + opts.n_new;
  const int64_t cap = std::min<int64_t>(need, std::max<int64_t>(m.config().max_ctx, 1));
  if (static_cast<int64_t>(prompt.size()) > cap)
    throw UsageError(strprintf("the prompt has %zu tokens, the model's context is %lld",
                               prompt.size(), static_cast<long long>(cap)));
  std::mt19937_64 rng(opts.seed);
  using Clock = std::chrono::steady_clock;
  GenerateTiming t;
  KVCache cache = m.new_cache(cap);
  auto t0 = Clock::now();
  std::vector<float> logits = m.decode(prompt, cache);
  t.prompt_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  std::vector<int32_t> out;
  for (int64_t i = 0; i < opts.n_new; ++i) {
    const int32_t next = sample_token(logits.data(), m.vocab(), opts.temperature, opts.top_k, rng);
    out.push_back(next);
    // No pass after the last id: its logits would not be used.
    if (next == opts.stop_id || cache.len >= cap || i + 1 == opts.n_new) break;
    logits = m.decode(std::span<const int32_t>(&next, 1), cache);
    ++t.decode_steps;
  }
  t.decode_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (timing) *timing = t;
  return out;
}

}  // namespace dsq::model
