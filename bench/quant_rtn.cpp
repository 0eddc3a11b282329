// RTN quantization throughput (GB/s of f16 input) and quantized GEMV rate (GB/s of packed
// weights) on a synthetic 4096 x 11008 matrix, each next to the machine's memory-copy bandwidth;
// and the batched quantized GEMM (GFLOP/s) next to f32 sgemm.
//
//   bench_quant_rtn --benchmark_counters_tabular=true
//
// Counters: bytes_per_second is the rate; frac_of_memcpy divides it by BM_memcpy's copy rate
// (bytes copied per second, i.e. half the read+write traffic, measured once per process on a
// 512 MiB buffer, so it is out of cache).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "lib/core/dtype.h"
#include "lib/core/linalg.h"
#include "lib/core/parallel.h"
#include "lib/core/tensor.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"

namespace {

using dsq::DType;
using dsq::QuantDesc;
using dsq::Shape;
using dsq::Tensor;

constexpr int64_t kRows = 11008, kCols = 4096;  // [out, in] of an ffn_up of a 7B model
constexpr size_t kCopyBytes = size_t{512} << 20;

// Bytes copied per second by memcpy of kCopyBytes (best of 5 after a warm-up copy).
double memcpy_rate() {
  static const double rate = [] {
    std::vector<char> a(kCopyBytes, 1), b(kCopyBytes, 0);
    std::memcpy(b.data(), a.data(), kCopyBytes);
    double best = 0;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      std::memcpy(b.data(), a.data(), kCopyBytes);
      benchmark::DoNotOptimize(b.data());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, static_cast<double>(kCopyBytes) / s);
    }
    return best;
  }();
  return rate;
}

const Tensor& weights_f16() {
  static const Tensor t = [] {
    Tensor w(DType::kF16, Shape{kRows, kCols});
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    auto* p = w.mutable_data<uint16_t>();
    for (int64_t i = 0; i < kRows * kCols; ++i) p[i] = dsq::f32_to_f16(dist(rng));
    return w;
  }();
  return t;
}

void add_memcpy_fraction(benchmark::State& state, double bytes_per_iter) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iter * static_cast<double>(state.iterations())));
  state.counters["GBps"] = benchmark::Counter(bytes_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["memcpy_GBps"] = memcpy_rate() * 1e-9;
  state.counters["frac_of_memcpy"] =
      benchmark::Counter(bytes_per_iter / memcpy_rate(), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_memcpy(benchmark::State& state) {
  std::vector<char> a(kCopyBytes, 1), b(kCopyBytes, 0);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), kCopyBytes);
    benchmark::DoNotOptimize(b.data());
  }
  add_memcpy_fraction(state, static_cast<double>(kCopyBytes));
}
BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();

// args: bits, group, sym, mse_clip, threads
void BM_quant_rtn_f16(benchmark::State& state) {
  const QuantDesc d{static_cast<uint8_t>(state.range(0)), static_cast<uint32_t>(state.range(1)),
                    state.range(2) != 0};
  dsq::quant::RtnOptions o;
  o.mse_clip = state.range(3) != 0;
  dsq::set_num_threads(static_cast<int>(state.range(4)));
  const Tensor& w = weights_f16();
  for (auto _ : state) {
    Tensor q = dsq::quant::quantize_tensor_rtn(w, d, o);
    benchmark::DoNotOptimize(q.bytes());
  }
  add_memcpy_fraction(state, static_cast<double>(w.nbytes()));
  state.SetLabel(dsq::scheme_name(d) + (o.mse_clip ? " mse-clip" : ""));
}
BENCHMARK(BM_quant_rtn_f16)
    ->ArgNames({"bits", "group", "sym", "clip", "threads"})
    ->Args({4, 128, 0, 0, 1})
    ->Args({4, 128, 0, 0, 2})
    ->Args({8, 128, 1, 0, 2})
    ->Args({3, 128, 0, 0, 2})
    ->Args({4, 128, 0, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// args: bits, group, sym, threads. Rate = packed weight bytes (codes + scales + zeros) per second.
void BM_quant_gemv(benchmark::State& state) {
  const QuantDesc d{static_cast<uint8_t>(state.range(0)), static_cast<uint32_t>(state.range(1)),
                    state.range(2) != 0};
  dsq::set_num_threads(static_cast<int>(state.range(3)));
  const Tensor q = dsq::quant::quantize_tensor_rtn(weights_f16(), d);
  std::vector<float> x(kCols), y(kRows);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  for (auto _ : state) {
    dsq::quant::qmatmul(q, x.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  add_memcpy_fraction(state, static_cast<double>(q.nbytes()));
  state.SetLabel(dsq::scheme_name(d));
}
BENCHMARK(BM_quant_gemv)
    ->ArgNames({"bits", "group", "sym", "threads"})
    ->Args({4, 128, 0, 1})
    ->Args({4, 128, 0, 2})
    ->Args({8, 128, 1, 2})
    ->Args({8, 0, 1, 2})
    ->Args({3, 128, 0, 2})
    ->Args({2, 128, 0, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Unquantized baseline: f32 GEMV of the same matrix through BLAS (4 bytes per weight).
void BM_f32_gemv_blas(benchmark::State& state) {
  dsq::set_num_threads(static_cast<int>(state.range(0)));
  const Tensor w = weights_f16().to(DType::kF32);
  std::vector<float> x(kCols, 0.5f), y(kRows);
  for (auto _ : state) {
    dsq::linalg::sgemm(false, true, 1, kRows, kCols, 1.0f, x.data(), kCols, w.data<float>(), kCols,
                       0.0f, y.data(), kRows);
    benchmark::DoNotOptimize(y.data());
  }
  add_memcpy_fraction(state, static_cast<double>(w.nbytes()));
}
BENCHMARK(BM_f32_gemv_blas)->ArgNames({"threads"})->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Batched: y = x W^T for m rows of x, W4 g128 (qmatmul dequantizes tiles of W and calls sgemm)
// next to f32 sgemm of the same shapes. m = 4096 is the calibration pipeline's chunk. Counter
// GFLOPs = 2 m rows cols per second.
void BM_quant_gemm(benchmark::State& state) {
  const int64_t m = state.range(0);
  const bool quantized = state.range(1) != 0;
  dsq::set_num_threads(2);
  const Tensor q = dsq::quant::quantize_tensor_rtn(weights_f16(), QuantDesc{4, 128, false});
  const Tensor w = weights_f16().to(DType::kF32);
  std::vector<float> x(static_cast<size_t>(m * kCols)), y(static_cast<size_t>(m * kRows));
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  for (auto _ : state) {
    if (quantized)
      dsq::quant::qmatmul(q, x.data(), m, y.data());
    else
      dsq::linalg::sgemm(false, true, m, kRows, kCols, 1.0f, x.data(), kCols, w.data<float>(),
                         kCols, 0.0f, y.data(), kRows);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2e-9 * static_cast<double>(m * kRows * kCols),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(quantized ? "qmatmul int4_asym_g128" : "sgemm f32");
}
BENCHMARK(BM_quant_gemm)
    ->ArgNames({"m", "quant"})
    ->ArgsProduct({{64, 512, 4096}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
