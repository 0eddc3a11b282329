// Batched evaluation throughput of the reference engine next to the machine's sgemm rate.
//
// BM_sgemm/M/N/K        sgemm through dsq::linalg (OpenBLAS, all threads): the machine's GEMM rate
//                       on the shapes a 1B-class layer produces at ctx 512.
// BM_eval_forward/L     `dsq eval`'s inner loop (forward of one 512-token window + f64 scoring) on
//                       a synthetic Llama with 1B-class layer shapes: d_model 2048, 32 heads, 8 kv
//                       heads of 64, d_ff 5632, vocab 32000, L blocks. Counters: tokens/s, achieved
//                       GFLOP/s (useful flops: linears + classifier + causal attention) and that
//                       rate as a fraction of BM_sgemm's rate on the FFN shape (goal >= 0.5).
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "bench/bench_util.h"
#include "lib/core/linalg.h"
#include "lib/core/synthetic.h"
#include "lib/model/metrics.h"
#include "lib/model/model.h"

namespace {

using namespace dsq;
using bench::sgemm_seconds;
using bench::window_flops;

constexpr int64_t kCtx = 512;

// TinyLlama-1.1B layer widths with 8 kv heads and tied embeddings.
ModelConfig one_b_config(int64_t layers) {
  SyntheticShape s = kLlama1BShape;
  s.n_layers = layers;
  s.n_kv_heads = 8;
  ModelConfig c = synthetic_config("llama", s);
  c.tied_embeddings = true;
  return c;
}

void BM_sgemm(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  std::vector<float> a(static_cast<size_t>(m * k), 0.01f), b(static_cast<size_t>(n * k), 0.02f),
      c(static_cast<size_t>(m * n));
  for (auto _ : st) {
    linalg::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * m * n * k * 1e-9,
                                             benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_sgemm)
    ->Args({kCtx, 5632, 2048})
    ->Args({kCtx, 2048, 5632})
    ->Args({kCtx, 2048, 2048})
    ->Args({kCtx, 32000, 2048})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_eval_forward(benchmark::State& st) {
  const ModelConfig c = one_b_config(st.range(0));
  const WeightStore ws = make_synthetic_model(c, 1);
  const model::Model m = model::Model::load(ws);
  std::vector<int32_t> toks(kCtx);
  for (int64_t i = 0; i < kCtx; ++i) toks[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % c.vocab_size);
  std::vector<float> logits(static_cast<size_t>(kCtx * c.vocab_size));
  const double gemm_rate = 2.0 * kCtx * 5632 * 2048 / sgemm_seconds(kCtx, 5632, 2048, 3);
  double seconds = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(toks, 1, kCtx, logits.data());
    const auto scores = model::score_windows(logits.data(), nullptr, toks, 1, kCtx, c.vocab_size);
    benchmark::DoNotOptimize(scores.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double flops = window_flops(c, kCtx) * static_cast<double>(st.iterations());
  st.counters["tokens_per_s"] = static_cast<double>(kCtx * st.iterations()) / seconds;
  st.counters["GFLOPs"] = flops / seconds * 1e-9;
  st.counters["sgemm_GFLOPs"] = gemm_rate * 1e-9;
  st.counters["frac_of_sgemm"] = flops / seconds / gemm_rate;
}
BENCHMARK(BM_eval_forward)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
