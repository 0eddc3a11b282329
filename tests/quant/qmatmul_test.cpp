// Optimised kernels against the scalar reference, and qmatmul against dequantize + f64 matmul.
#include "lib/quant/qmatmul.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "tests/quant/quant_test_util.h"

namespace dsq::quant {
namespace {

using testing::all_cases;
using testing::gaussian;
using testing::kRaggedCols;

// |f32 sum of n products - exact| <= gamma_n * sum|a_i b_i|, gamma_n = n u / (1 - n u), u = 2^-24
// (Higham, Accuracy and Stability, eq. 3.5); the per-group scale multiply adds one more rounding.
double dot_tolerance(int64_t n, double abs_sum) {
  const double u = std::ldexp(1.0, -24), nu = static_cast<double>(n + 2) * u;
  return nu / (1.0 - nu) * abs_sum + 1e-30;
}

// Core's conversion (Tensor::to, which writers such as the GGUF sink use below lib/quant) is the
// same numbers as the kernels' dequantization.
TEST(QKernels, TensorToF32MatchesDequantizeRows) {
  for (const auto& k : all_cases()) {
    for (int64_t cols : kRaggedCols) {
      const int64_t rows = 5;
      const auto w = gaussian(rows * cols, 12);
      const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
      std::vector<float> want(static_cast<size_t>(rows * cols));
      dequantize_rows(q, 0, rows, want.data());
      const Tensor got = q.to(DType::kF32);
      ASSERT_EQ(std::memcmp(got.bytes(), want.data(), want.size() * 4), 0) << k.str() << " cols " << cols;
    }
  }
}

TEST(QKernels, DequantizeMatchesReferenceBitExactly) {
  for (const auto& k : all_cases()) {
    for (int64_t cols : kRaggedCols) {
      const int64_t rows = 5;
      const auto w = gaussian(rows * cols, 11);
      const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
      const int64_t G = quant_layout(k.desc(), rows, cols).group;
      std::vector<float> a(static_cast<size_t>(cols)), b(a.size());
      for (int64_t r = 0; r < rows; ++r) {
        k.tr->dequantize_row(qrow(q, r), cols, G, a.data());
        k.tr->dequantize_row_ref(qrow(q, r), cols, G, b.data());
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << k.str() << " cols " << cols;
      }
    }
  }
}

// The optimised row quantizer writes quantize_ref's bytes (codes, scales, zeros) for every scheme
// and group size, on weights with ties, zeros, huge and tiny groups, Inf and NaN.
TEST(QKernels, QuantizeRowMatchesReferenceByteForByte) {
  for (const auto& k : all_cases()) {
    for (int64_t cols : {172, 100, 256, 4096}) {
      const int64_t rows = 6;
      auto w = gaussian(rows * cols, 16);
      for (int64_t c = 0; c < cols; ++c) {
        w[cols + c] = 0.0f;                                               // a zero row: scale 0
        w[2 * cols + c] = static_cast<float>(c % 17 - 8) * 0.5f;          // exact ties
        w[3 * cols + c] *= 1e-36f;                                        // subnormal-sized scales
        w[4 * cols + c] *= 1e30f;                                         // beyond f16: saturates
      }
      w[5 * cols + 3] = INFINITY;
      w[5 * cols + 40] = -INFINITY;
      w[5 * cols + 77] = NAN;
      w[5 * cols + cols - 1] = NAN;
      Tensor a = make_quant_tensor(rows, cols, k.desc()), b = make_quant_tensor(rows, cols, k.desc());
      std::memset(a.mutable_bytes(), 0xA5, a.nbytes());
      std::memset(b.mutable_bytes(), 0xA5, b.nbytes());  // bytes neither writes stay equal
      QuantMatrix qa(a), qb(b);
      const int64_t G = qa.group();
      for (int64_t r = 0; r < rows; ++r) {
        k.tr->quantize_row(w.data() + r * cols, cols, G, qa.row(r));
        k.tr->quantize_ref(w.data() + r * cols, cols, G, qb.row(r));
      }
      ASSERT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << k.str() << " cols " << cols;
    }
  }
}

TEST(QKernels, DotMatchesReferenceWithinSummationBound) {
  for (const auto& k : all_cases()) {
    for (int64_t cols : {172, 100, 256, 1000}) {
      const int64_t rows = 4;
      const auto w = gaussian(rows * cols, 12);
      const auto x = gaussian(cols, 13, 1.0f);
      const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
      const int64_t G = quant_layout(k.desc(), rows, cols).group;
      std::vector<float> deq(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        k.tr->dequantize_row_ref(qrow(q, r), cols, G, deq.data());
        double exact = 0, abs_sum = 0;
        for (int64_t c = 0; c < cols; ++c) {
          exact += static_cast<double>(deq[c]) * x[c];
          abs_sum += std::fabs(static_cast<double>(deq[c]) * x[c]);
        }
        const double tol = dot_tolerance(cols, abs_sum);
        EXPECT_NEAR(k.tr->dot(qrow(q, r), cols, G, x.data()), exact, tol) << k.str();
        EXPECT_NEAR(k.tr->dot_ref(qrow(q, r), cols, G, x.data()), exact, tol) << k.str();
      }
    }
  }
}

TEST(QKernels, UnalignedLibraryGroupFallsBackToReference) {
  // A group of 5 4-bit codes does not start on byte boundaries: the kernels must still be right.
  const QuantDesc d{4, 5, false};
  const int64_t cols = 23;
  const auto w = gaussian(2 * cols, 14);
  const auto x = gaussian(cols, 15, 1.0f);
  const Tensor q = quantize_matrix_rtn(w.data(), 2, cols, d);
  const QuantTraits& tr = quant_traits(d);
  std::vector<float> a(cols), b(cols);
  tr.dequantize_row(qrow(q, 1), cols, 5, a.data());
  tr.dequantize_row_ref(qrow(q, 1), cols, 5, b.data());
  EXPECT_EQ(a, b);
  for (int64_t c = 0; c < cols; ++c) EXPECT_LE(std::fabs(a[c] - w[cols + c]), 0.02);
}

// y_ref = x * deq(W)^T in f64, plus its absolute-value sums for the tolerance.
void reference_matmul(const Tensor& w, const std::vector<float>& x, int64_t m,
                      std::vector<double>* y, std::vector<double>* abs) {
  const int64_t n_out = w.dim(0), n_in = w.dim(1);
  std::vector<float> deq(static_cast<size_t>(n_out * n_in));
  dequantize_rows(w, 0, n_out, deq.data());
  y->assign(static_cast<size_t>(m * n_out), 0.0);
  abs->assign(y->size(), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < n_out; ++r)
      for (int64_t c = 0; c < n_in; ++c) {
        const double p = static_cast<double>(x[i * n_in + c]) * deq[r * n_in + c];
        (*y)[i * n_out + r] += p;
        (*abs)[i * n_out + r] += std::fabs(p);
      }
}

TEST(QMatmul, MatchesDequantizedMatmulEveryScheme) {
  for (const auto& k : all_cases()) {
    for (int64_t m : {1, 3, 17}) {
      const int64_t n_out = 37, n_in = 172;
      const auto w = gaussian(n_out * n_in, 21);
      const auto x = gaussian(m * n_in, 22, 1.0f);
      const Tensor q = quantize_matrix_rtn(w.data(), n_out, n_in, k.desc());
      std::vector<float> y(static_cast<size_t>(m * n_out));
      qmatmul(q, x.data(), m, y.data());
      std::vector<double> ref, abs;
      reference_matmul(q, x, m, &ref, &abs);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], dot_tolerance(n_in, abs[i])) << k.str() << " m " << m;
    }
  }
}

TEST(QMatmul, ManyTilesAndThreadCountIndependent) {
  // n_out spans several dequantization tiles (tile = 2^18 / n_in rows, >= 16) with a ragged end.
  const int64_t n_out = 3000, n_in = 256;
  const QuantDesc d{4, 128, false};
  const auto w = gaussian(n_out * n_in, 31);
  const Tensor q = quantize_matrix_rtn(w.data(), n_out, n_in, d);
  for (int64_t m : {1, 9, 37}) {
    const auto x = gaussian(m * n_in, 32, 1.0f);
    auto run = [&] {
      std::vector<float> y(static_cast<size_t>(m * n_out));
      qmatmul(q, x.data(), m, y.data());
      return y;
    };
    const auto y1 = testing::with_threads(1, run);
    const auto y2 = testing::with_threads(2, run);
    const auto y4 = testing::with_threads(4, run);
    EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0) << "m " << m;
    EXPECT_EQ(std::memcmp(y1.data(), y4.data(), y1.size() * 4), 0) << "m " << m;
    std::vector<double> ref, abs;
    reference_matmul(q, x, m, &ref, &abs);
    for (size_t i = 0; i < y1.size(); ++i) ASSERT_NEAR(y1[i], ref[i], dot_tolerance(n_in, abs[i]));
  }
}

TEST(QMatmul, DequantizeRowsSubrange) {
  const QuantDesc d{3, 64, true};
  const int64_t n_out = 10, n_in = 100;
  const auto w = gaussian(n_out * n_in, 41);
  const Tensor q = quantize_matrix_rtn(w.data(), n_out, n_in, d);
  std::vector<float> all(static_cast<size_t>(n_out * n_in)), part(static_cast<size_t>(3 * n_in));
  dequantize_rows(q, 0, n_out, all.data());
  dequantize_rows(q, 4, 7, part.data());
  EXPECT_EQ(std::memcmp(part.data(), all.data() + 4 * n_in, part.size() * 4), 0);
}

}  // namespace
}  // namespace dsq::quant
