// Single-token GEMV with activation sparsity (TEAL-style): dense row-major GEMV (own kernel and
// BLAS) against the sparse kernel that skips the weight rows of W^T for zeroed activations.
// Default layer: 4096 x 11008 in both orientations (down_proj [4096, 11008] reads the d_ff input;
// up/gate [11008, 4096] read d_model). Args: n_out, n_in, sparsity in percent, threads.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

#include "lib/core/linalg.h"
#include "lib/core/parallel.h"
#include "lib/core/tensor.h"
#include "lib/model/sparse_gemv.h"

namespace {

struct Layer {
  dsq::Tensor w, wt;
  std::vector<float> x, y;
};

// Weights and activations with a fixed seed; a fraction `sparsity` of x is zeroed at random
// positions (what a magnitude threshold does to a roughly symmetric activation).
Layer make_layer(int64_t n_out, int64_t n_in, double sparsity) {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  Layer L;
  L.w = dsq::Tensor(dsq::DType::kF32, {n_out, n_in});
  float* w = L.w.mutable_data<float>();
  for (int64_t i = 0; i < n_out * n_in; ++i) w[i] = nd(rng) * 0.02f;
  L.wt = dsq::model::transpose_f32(L.w);
  L.x.resize(static_cast<size_t>(n_in));
  for (auto& v : L.x) v = ud(rng) < sparsity ? 0.0f : nd(rng);
  L.y.resize(static_cast<size_t>(n_out));
  return L;
}

void set_items(benchmark::State& st, int64_t n_out, int64_t n_in, double read_fraction) {
  st.SetItemsProcessed(st.iterations());  // tokens
  st.SetBytesProcessed(static_cast<int64_t>(static_cast<double>(st.iterations()) * n_out * n_in *
                                            4 * read_fraction));
}

void BM_gemv_dense(benchmark::State& st) {
  const int64_t n_out = st.range(0), n_in = st.range(1);
  dsq::set_num_threads(static_cast<int>(st.range(3)));
  Layer L = make_layer(n_out, n_in, 0.0);
  for (auto _ : st) {
    dsq::model::dense_gemv(L.w.data<float>(), n_out, n_in, L.x.data(), L.y.data());
    benchmark::DoNotOptimize(L.y.data());
  }
  set_items(st, n_out, n_in, 1.0);
}

void BM_gemv_blas(benchmark::State& st) {
  const int64_t n_out = st.range(0), n_in = st.range(1);
  dsq::set_num_threads(static_cast<int>(st.range(3)));
  Layer L = make_layer(n_out, n_in, 0.0);
  for (auto _ : st) {
    dsq::linalg::sgemm(false, true, 1, n_out, n_in, 1.0f, L.x.data(), n_in, L.w.data<float>(),
                       n_in, 0.0f, L.y.data(), n_out);
    benchmark::DoNotOptimize(L.y.data());
  }
  set_items(st, n_out, n_in, 1.0);
}

void BM_gemv_sparse(benchmark::State& st) {
  const int64_t n_out = st.range(0), n_in = st.range(1);
  const double sparsity = static_cast<double>(st.range(2)) / 100.0;
  dsq::set_num_threads(static_cast<int>(st.range(3)));
  Layer L = make_layer(n_out, n_in, sparsity);
  int64_t nnz = 0;
  for (float v : L.x) nnz += v != 0.0f;
  for (auto _ : st) {
    dsq::model::sparse_gemv_t(L.wt.data<float>(), n_in, n_out, L.x.data(), L.y.data());
    benchmark::DoNotOptimize(L.y.data());
  }
  set_items(st, n_out, n_in, static_cast<double>(nnz) / static_cast<double>(n_in));
  st.counters["density"] = static_cast<double>(nnz) / static_cast<double>(n_in);
}

void shapes(benchmark::internal::Benchmark* b, bool sparse) {
  for (int threads : {1, 2})
    for (auto [o, i] : {std::pair<int64_t, int64_t>{4096, 11008}, {11008, 4096}}) {
      if (sparse)
        for (int s : {0, 25, 50, 75}) b->Args({o, i, s, threads});
      else
        b->Args({o, i, 0, threads});
    }
  b->ArgNames({"out", "in", "sparsity", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_gemv_dense)->Apply([](auto* b) { shapes(b, false); });
BENCHMARK(BM_gemv_blas)->Apply([](auto* b) { shapes(b, false); });
BENCHMARK(BM_gemv_sparse)->Apply([](auto* b) { shapes(b, true); });
BENCHMARK_MAIN();
