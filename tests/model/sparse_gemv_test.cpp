// The activation-sparsity kernels: thresholding, the transposed sparse GEMV (never reads the rows
// of W^T whose activation is zero; matches a dense f64 reference; identical for any thread count).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "lib/core/parallel.h"
#include "lib/model/sparse_gemv.h"

namespace dsq::model {
namespace {

// Deterministic pseudo-random values in [-1, 1).
float val(uint64_t i) {
  uint64_t z = i * 0x9e3779b97f4a7c15ULL + 12345;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  return static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0);
}

Tensor matrix(int64_t rows, int64_t cols, uint64_t salt) {
  Tensor t(DType::kF32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) t.mutable_data<float>()[i] = val(i + salt);
  return t;
}

TEST(SparseGemv, ThresholdKeepsOnlyEntriesAboveT) {
  const std::vector<float> x = {0.5f, -0.2f, 0.2f, -0.7f, 0.0f, 0.21f};
  std::vector<float> y(x.size());
  EXPECT_EQ(threshold_activations(x.data(), 6, 0.2f, y.data()), 3);
  EXPECT_EQ(y, (std::vector<float>{0.5f, 0.0f, 0.0f, -0.7f, 0.0f, 0.21f}));
  EXPECT_EQ(threshold_activations(x.data(), 6, 0.0f, y.data()), 5);  // exact zeros stay zero
}

TEST(SparseGemv, TransposeIsExact) {
  const Tensor w = matrix(37, 70, 1);
  const Tensor t = transpose_f32(w);
  ASSERT_EQ(t.shape(), (Shape{70, 37}));
  for (int64_t r = 0; r < 37; ++r)
    for (int64_t c = 0; c < 70; ++c)
      ASSERT_EQ(t.data<float>()[c * 37 + r], w.data<float>()[r * 70 + c]);
}

// Shapes with tails: n_out not a multiple of the SIMD width or tile, nnz not a multiple of 4.
class SparseGemvShapes : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(SparseGemvShapes, MatchesDenseAndNeverReadsSkippedRows) {
  const auto [n_out, n_in] = GetParam();
  const Tensor w = matrix(n_out, n_in, 7);
  Tensor wt = transpose_f32(w);
  std::vector<float> x(static_cast<size_t>(n_in));
  for (int64_t j = 0; j < n_in; ++j) x[static_cast<size_t>(j)] = val(99 + j);
  threshold_activations(x.data(), n_in, 0.5f, x.data());  // about half the entries
  // Poison the rows of W^T that must be skipped: reading any of them would give NaN.
  for (int64_t j = 0; j < n_in; ++j)
    if (x[static_cast<size_t>(j)] == 0.0f)
      for (int64_t i = 0; i < n_out; ++i)
        wt.mutable_data<float>()[j * n_out + i] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y(static_cast<size_t>(n_out)), d(static_cast<size_t>(n_out));
  sparse_gemv_t(wt.data<float>(), n_in, n_out, x.data(), y.data());
  dense_gemv(w.data<float>(), n_out, n_in, x.data(), d.data());
  for (int64_t i = 0; i < n_out; ++i) {
    double ref = 0.0, mag = 0.0;
    for (int64_t j = 0; j < n_in; ++j) {
      ref += static_cast<double>(w.data<float>()[i * n_in + j]) * x[static_cast<size_t>(j)];
      mag += std::fabs(static_cast<double>(w.data<float>()[i * n_in + j]) * x[static_cast<size_t>(j)]);
    }
    // f32 accumulation: error below n_in * eps * sum |w x| (a loose bound).
    const double tol = static_cast<double>(n_in) * FLT_EPSILON * mag + 1e-30;
    ASSERT_NEAR(y[static_cast<size_t>(i)], ref, tol) << "row " << i;
    ASSERT_NEAR(d[static_cast<size_t>(i)], ref, tol) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparseGemvShapes,
                         ::testing::Values(std::pair<int64_t, int64_t>{1, 1}, std::pair<int64_t, int64_t>{17, 9},
                                           std::pair<int64_t, int64_t>{300, 513},
                                           std::pair<int64_t, int64_t>{4099, 130}));

TEST(SparseGemv, IdenticalForAnyThreadCount) {
  const int64_t n_out = 3001, n_in = 700;
  const Tensor wt = transpose_f32(matrix(n_out, n_in, 3));
  std::vector<float> x(static_cast<size_t>(n_in));
  for (int64_t j = 0; j < n_in; ++j) x[static_cast<size_t>(j)] = val(5 + j);
  threshold_activations(x.data(), n_in, 0.4f, x.data());
  std::vector<float> y1(static_cast<size_t>(n_out)), y2(static_cast<size_t>(n_out));
  set_num_threads(1);
  sparse_gemv_t(wt.data<float>(), n_in, n_out, x.data(), y1.data());
  set_num_threads(2);
  sparse_gemv_t(wt.data<float>(), n_in, n_out, x.data(), y2.data());
  set_num_threads(0);
  EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
}

}  // namespace
}  // namespace dsq::model
