// Training throughput of lib/train (what `dsq distill` runs per step) next to the machine's GEMM
// rate.
//
// BM_train_block/L/V  one forward_backward (+ the distillation loss on top-64 teacher rows) over
//                     one 512-token window of a synthetic Llama with TinyLlama-1.1B block widths
//                     (d_model 2048, 32 heads, 4 kv heads of 64, d_ff 5632), L blocks, vocabulary
//                     V (a small V isolates the blocks). Counters: tokens/s, useful GFLOP/s
//                     (3x the forward's flops: forward, input gradients, weight gradients; the
//                     attention's recomputation is not counted) and that rate as a fraction of
//                     sgemm's rate on the FFN shape (the target: >= 0.4).
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include "lib/core/linalg.h"
#include "bench/bench_util.h"
#include "lib/core/synthetic.h"
#include "lib/train/loss.h"
#include "lib/train/train_model.h"

namespace {

using namespace dsq;

constexpr int64_t kCtx = 512, kTopK = 64;

void BM_train_block(benchmark::State& st) {
  SyntheticShape s = kLlama1BShape;
  s.n_layers = st.range(0);
  s.vocab = st.range(1);
  ModelConfig c = synthetic_config("llama", s);
  c.tied_embeddings = true;
  const WeightStore ws = make_synthetic_model(c, 1);
  auto m = train::TrainModel<float>::from_store(ws, "synthetic");
  std::vector<int32_t> ids(kCtx);
  for (int64_t i = 0; i < kCtx; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % c.vocab_size);
  // Teacher rows: the top 64 of random logits.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> tl(static_cast<size_t>(c.vocab_size));
  std::vector<int32_t> tid(static_cast<size_t>(kCtx * kTopK));
  std::vector<float> tlp(tid.size());
  std::vector<double> rest(kCtx);
  for (int64_t r = 0; r < kCtx; ++r) {
    for (auto& x : tl) x = nd(rng);
    train::teacher_topk(tl.data(), c.vocab_size, kTopK, 1.0, tid.data() + r * kTopK,
                        tlp.data() + r * kTopK, &rest[static_cast<size_t>(r)]);
  }
  const train::LossSpec spec;
  auto loss = [&](int64_t row0, int64_t n, const float* logits, float* dl) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = row0 + i;
      const train::TeacherRow t{tid.data() + r * kTopK, tlp.data() + r * kTopK, kTopK,
                                rest[static_cast<size_t>(r)]};
      sum += train::distill_row<float>(logits + i * c.vocab_size, c.vocab_size, t, spec,
                                       dl + i * c.vocab_size, 1.0 / kCtx);
    }
    return sum;
  };
  const double gemm = 2.0 * kCtx * 5632 * 2048 / bench::sgemm_seconds(kCtx, 5632, 2048, 3);
  double seconds = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    m.zero_grad();
    benchmark::DoNotOptimize(m.forward_backward(ids, 1, kCtx, loss));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double n = static_cast<double>(st.iterations());
  const double flops = 3.0 * bench::window_flops(c, kCtx);
  st.counters["tokens_per_s"] = kCtx * n / seconds;
  st.counters["GFLOPs"] = flops * n / seconds * 1e-9;
  st.counters["gemm_GFLOPs"] = gemm * 1e-9;
  st.counters["of_gemm"] = flops * n / seconds / gemm;
}
BENCHMARK(BM_train_block)
    ->Args({1, 256})
    ->Args({2, 256})
    ->Args({1, 32000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
