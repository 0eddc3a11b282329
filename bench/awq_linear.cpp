// AWQ's searches for one linear of 7B shape with W4 g128: the scale search (20 alphas, each a
// fake quantization plus tr(E H E^T), one GEMM of rows x cols^2) and the clip search (10 ratios per
// (row, group), scored by one GEMM per group: rows x 10 x 128^2). Counters: GFLOP/s (nominal:
// scales 2 x grid x rows x cols^2, clip 2 x 10 x rows x cols x 128) and, for reference, the
// machine's sgemm_tiled rate on 4096^3. Run with OPENBLAS_CORETYPE set (bench/RESULTS.md).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lib/core/linalg.h"
#include "lib/quant/awq.h"

namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

// H = mean x x^T of 2048 correlated tokens with a few outlier channels, and m = mean |x|.
void input_stats(int64_t n, std::vector<double>* h, std::vector<double>* m) {
  constexpr int64_t kTokens = 2048;
  auto x = gaussian(kTokens * n, 3, 1.0f);
  const auto common = gaussian(kTokens, 4, 1.0f);
  m->assign(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t j = 0; j < n; ++j) {
      float& v = x[static_cast<size_t>(t * n + j)];
      v = (j % 97 == 5 ? 20.0f : 1.0f) * (v + 0.5f * common[static_cast<size_t>(t)]);
      (*m)[static_cast<size_t>(j)] += std::abs(v) / kTokens;
    }
  h->assign(static_cast<size_t>(n * n), 0.0);
  dsq::linalg::gram_accumulate_f32(x.data(), kTokens, n, 1.0 / kTokens, h->data());
}

void BM_sgemm_4096(benchmark::State& state) {
  const int64_t n = 4096;
  const auto a = gaussian(n * n, 1, 1.0f), b = gaussian(n * n, 2, 1.0f);
  std::vector<float> c(static_cast<size_t>(n * n));
  for (auto _ : state)
    dsq::linalg::sgemm_tiled(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_awq_scales(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const auto w = gaussian(rows * cols, 5, 0.02f);
  std::vector<double> h, m;
  input_stats(cols, &h, &m);
  dsq::quant::AwqOptions o;
  for (auto _ : state) {
    auto r = dsq::quant::awq_search_scales({{w.data(), rows}}, cols, h.data(), m.data(),
                                           dsq::QuantDesc{4, 128, false}, o);
    benchmark::DoNotOptimize(r.scales.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * o.grid * rows * static_cast<double>(cols) * cols * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_awq_clip(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const auto w = gaussian(rows * cols, 6, 0.02f);
  std::vector<double> h, m;
  input_stats(cols, &h, &m);
  dsq::quant::AwqOptions o;
  for (auto _ : state) {
    auto r = dsq::quant::awq_search_clip(w.data(), rows, cols, h.data(),
                                         dsq::QuantDesc{4, 128, false}, o);
    benchmark::DoNotOptimize(r.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * 10 * rows * static_cast<double>(cols) * 128 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(BM_sgemm_4096)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_awq_scales)->Args({4096, 4096})->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(BM_awq_clip)->Args({4096, 4096})->Args({11008, 4096})->Args({4096, 11008})
    ->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK_MAIN();
