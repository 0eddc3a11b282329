// GPTQ cost for one linear with 128 x 512 = 65536 calibration tokens, against the machine's sgemm
// rate measured in the same process:
//   BM_gptq_hessian/n       H += X^T X over 65536 tokens of width n (gram_accumulate_f32 over
//                           4096-row chunks, as the pipeline feeds it); flops = tokens * n^2
//                           (the upper triangle's multiply-adds, 2 flops each).
//   BM_gptq_solve/rows/cols gptq_quantize of W [rows, cols] = [out, in], W4 g128 asym, block 128,
//                           no RTN report; flops = rows * cols^2 (lazy updates) + cols^3 (the
//                           inverse factor), the usual nominal count.
//   BM_gptq_sgemm_reference sgemm_tiled 4096^3 (the tiled GEMM every heavy path uses).
// Shapes: 4096x4096 (q/o_proj of a 7B), 11008x4096 (gate/up_proj: 11008 rows, 4096 inputs) and
// 4096x11008 (down_proj: 11008 inputs; the solve's cost grows with cols^2 and cols^3, so this is
// the expensive one). Each case reports GFLOP/s, the reference sgemm GFLOP/s (best of 3 runs of
// 4096^3, measured once per process before the first case) and frac_sgemm = their ratio.
//
//   OPENBLAS_CORETYPE=SkylakeX build/bin/bench_gptq_linear --benchmark_counters_tabular=true
// (OpenBLAS 0.3.21 misdetects some CPUs and falls back to SSE3 kernels; dsq sets the variable
// itself, bench programs do not: use SkylakeX on AVX-512 machines, Haswell on AVX2.)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "lib/core/linalg.h"
#include "lib/quant/gptq.h"

namespace {

constexpr int64_t kTokens = 128 * 512;
constexpr int64_t kChunk = 4096;
using Clock = std::chrono::steady_clock;

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

double seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds of one sgemm_tiled n x n x n.
double time_sgemm(int64_t n, const float* a, const float* b, float* c) {
  const auto t0 = Clock::now();
  dsq::linalg::sgemm_tiled(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  benchmark::DoNotOptimize(c);
  return seconds(t0);
}

// The machine's sgemm rate (GFLOP/s): best of 3 runs of sgemm_tiled 4096^3 after a warm-up,
// measured once per process.
double sgemm_rate() {
  static const double rate = [] {
    constexpr int64_t n = 4096;
    const auto a = gaussian(n * n, 5), b = gaussian(n * n, 6);
    std::vector<float> c(static_cast<size_t>(n * n));
    time_sgemm(n, a.data(), b.data(), c.data());
    double best = 1e30;
    for (int i = 0; i < 3; ++i) best = std::min(best, time_sgemm(n, a.data(), b.data(), c.data()));
    return 2.0 * n * n * n / best * 1e-9;
  }();
  return rate;
}

void set_rate_counters(benchmark::State& state, double flops, double secs) {
  const double gflops = flops / secs * 1e-9, ref = sgemm_rate();
  state.counters["GFLOP/s"] = gflops;
  state.counters["sgemm_GFLOP/s"] = ref;
  state.counters["frac_sgemm"] = gflops / ref;
}

void BM_gptq_hessian(benchmark::State& state) {
  const int64_t n = state.range(0);
  sgemm_rate();  // outside the timed region
  const auto x = gaussian(kChunk * n, 1);  // one chunk reused kTokens / kChunk times
  std::vector<double> h(static_cast<size_t>(n * n));
  double secs = 0.0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (int64_t t = 0; t < kTokens; t += kChunk)
      dsq::linalg::gram_accumulate_f32(x.data(), kChunk, n, 1.0, h.data());
    benchmark::DoNotOptimize(h.data());
    secs += seconds(t0);
  }
  set_rate_counters(state,
                    static_cast<double>(kTokens) * n * n * static_cast<double>(state.iterations()),
                    secs);
}

void BM_gptq_solve(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  sgemm_rate();
  const auto w = gaussian(rows * cols, 2);
  // A realistic H: mean of x x^T over correlated inputs (a shared factor), computed once.
  auto x = gaussian(kChunk * cols, 3);
  const auto common = gaussian(kChunk, 4);
  for (int64_t t = 0; t < kChunk; ++t)
    for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(t * cols + j)] += 0.5f * common[static_cast<size_t>(t)];
  std::vector<double> h(static_cast<size_t>(cols * cols));
  dsq::linalg::gram_accumulate_f32(x.data(), kChunk, cols, 1.0 / kChunk, h.data());
  x = {};
  dsq::quant::GptqOptions o;
  o.report_rtn = false;
  double secs = 0.0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    dsq::Tensor q = dsq::quant::gptq_quantize(w.data(), rows, cols, h.data(),
                                              dsq::QuantDesc{4, 128, false}, o);
    benchmark::DoNotOptimize(q.bytes());
    secs += seconds(t0);
  }
  const double flops = static_cast<double>(rows) * cols * cols + static_cast<double>(cols) * cols * cols;
  set_rate_counters(state, flops * static_cast<double>(state.iterations()), secs);
}

void BM_gptq_sgemm_reference(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto a = gaussian(n * n, 5), b = gaussian(n * n, 6);
  std::vector<float> c(static_cast<size_t>(n * n));
  double secs = 0.0;
  for (auto _ : state) secs += time_sgemm(n, a.data(), b.data(), c.data());
  set_rate_counters(state, 2.0 * n * n * n * static_cast<double>(state.iterations()), secs);
}

}  // namespace

BENCHMARK(BM_gptq_sgemm_reference)->Arg(4096)->Unit(benchmark::kSecond)->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_gptq_hessian)->Arg(4096)->Arg(11008)->Unit(benchmark::kSecond)->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_gptq_solve)->Args({4096, 4096})->Args({11008, 4096})->Args({4096, 11008})
    ->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK_MAIN();
