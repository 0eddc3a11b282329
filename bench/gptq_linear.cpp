// GPTQ cost for one linear with 128 x 512 calibration tokens: the Hessian accumulation
// (gram_accumulate_f32 over 4096-row chunks), the solve (gptq_quantize, W4 g128, no report) and,
// for reference, the machine's sgemm rate. Counters: GFLOP/s (Hessian: tokens * n^2; solve:
// rows * cols^2 for the lazy updates + cols^3 for the inverse factor).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lib/core/linalg.h"
#include "lib/quant/gptq.h"

namespace {

constexpr int64_t kTokens = 128 * 512;
constexpr int64_t kChunk = 4096;

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

void BM_gptq_hessian(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto x = gaussian(kChunk * n, 1);  // one chunk reused kTokens / kChunk times
  std::vector<double> h(static_cast<size_t>(n * n));
  for (auto _ : state) {
    for (int64_t t = 0; t < kTokens; t += kChunk)
      dsq::linalg::gram_accumulate_f32(x.data(), kChunk, n, 1.0, h.data());
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(kTokens) * n * n * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_gptq_solve(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const auto w = gaussian(rows * cols, 2);
  // A realistic H: mean of x x^T over correlated inputs (a shared factor), computed once.
  auto x = gaussian(kChunk * cols, 3);
  const auto common = gaussian(kChunk, 4);
  for (int64_t t = 0; t < kChunk; ++t)
    for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(t * cols + j)] += 0.5f * common[static_cast<size_t>(t)];
  std::vector<double> h(static_cast<size_t>(cols * cols));
  dsq::linalg::gram_accumulate_f32(x.data(), kChunk, cols, 1.0 / kChunk, h.data());
  dsq::quant::GptqOptions o;
  o.report_rtn = false;
  for (auto _ : state) {
    dsq::Tensor q = dsq::quant::gptq_quantize(w.data(), rows, cols, h.data(),
                                              dsq::QuantDesc{4, 128, false}, o);
    benchmark::DoNotOptimize(q.bytes());
  }
  const double flops = static_cast<double>(rows) * cols * cols + static_cast<double>(cols) * cols * cols;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate,
                                                 benchmark::Counter::kIs1000);
}

void BM_gptq_sgemm_reference(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto a = gaussian(n * n, 5), b = gaussian(n * n, 6);
  std::vector<float> c(static_cast<size_t>(n * n));
  for (auto _ : state) {
    dsq::linalg::sgemm_tiled(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                             c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n * n * n * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate,
      benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(BM_gptq_hessian)->Arg(4096)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_gptq_solve)->Args({4096, 4096})->Args({11008, 4096})->Unit(benchmark::kSecond)
    ->UseRealTime()->Iterations(1);
BENCHMARK(BM_gptq_sgemm_reference)->Arg(4096)->Unit(benchmark::kSecond)->UseRealTime()
    ->Iterations(1);
BENCHMARK_MAIN();
