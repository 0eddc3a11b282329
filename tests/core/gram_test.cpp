// gram_accumulate_f32 and cholesky_inverse_upper (added for GPTQ) against plain f64 loops.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <cblas.h>

#include "lib/core/linalg.h"

namespace dsq::linalg {
namespace {

std::vector<float> random_x(int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * n));
  for (auto& v : x) v = nd(rng);
  return x;
}

TEST(Gram, MatchesF64AndIsThreadIndependent) {
  const int64_t rows = 300, n = 600;  // several tiles, ragged edge
  const auto x = random_x(rows, n, 1);
  std::vector<double> h(static_cast<size_t>(n * n), 0.5), h1 = h;
  gram_accumulate_f32(x.data(), 200, n, 2.0, h.data());
  gram_accumulate_f32(x.data() + 200 * n, rows - 200, n, 2.0, h.data());
  for (int64_t i = 0; i < n; i += 7) {
    for (int64_t j = 0; j < n; j += 5) {
      double want = 0.5, mag = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const double p = static_cast<double>(x[r * n + i]) * x[r * n + j];
        want += 2.0 * p;
        mag += 2.0 * std::fabs(p);
      }
      // f32 products summed over at most 200 rows: |err| <= 200 u sum|p| (u = 2^-24).
      EXPECT_NEAR(h[i * n + j], want, 200 * std::ldexp(1.0, -24) * mag + 1e-12) << i << "," << j;
      EXPECT_EQ(h[i * n + j], h[j * n + i]);
    }
  }
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  gram_accumulate_f32(x.data(), 200, n, 2.0, h1.data());
  gram_accumulate_f32(x.data() + 200 * n, rows - 200, n, 2.0, h1.data());
  omp_set_num_threads(prev);
  EXPECT_EQ(std::memcmp(h.data(), h1.data(), h.size() * sizeof(double)), 0);
}

TEST(CholeskyInverseUpper, GivesUpperFactorOfInverse) {
  // 37: inside one tile of the in-place anti-transpose; 150 and 256: across tiles, odd and even
  // sizes, and the parallel path.
  for (const int64_t n : {int64_t{37}, int64_t{150}, int64_t{256}}) {
    const int64_t rows = 2 * n + 6;
    const auto x = random_x(rows, n, 2);
    std::vector<double> a(static_cast<size_t>(n * n), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          a[i * n + j] += static_cast<double>(x[r * n + i]) * x[r * n + j];
    std::vector<double> u = a;
    ASSERT_TRUE(cholesky_inverse_upper(u.data(), n));
    // U upper with positive diagonal and A (U^T U) = I.
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GT(u[i * n + i], 0.0);
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(u[i * n + j], 0.0) << n << ": " << i << "," << j;
    }
    std::vector<double> inv(static_cast<size_t>(n * n), 0.0);  // U^T U
    for (int64_t m = 0; m < n; ++m)
      for (int64_t k = m; k < n; ++k)
        for (int64_t j = m; j < n; ++j) inv[k * n + j] += u[m * n + k] * u[m * n + j];
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t k = 0; k < n; ++k) s += a[i * n + k] * inv[k * n + j];
        worst = std::max(worst, std::abs(s - (i == j ? 1.0 : 0.0)));
      }
    }
    EXPECT_LT(worst, 1e-9) << "n = " << n;
  }
  std::vector<double> bad = {1, 2, 2, 1};  // eigenvalues 3, -1
  EXPECT_FALSE(cholesky_inverse_upper(bad.data(), 2));
}

// Norms of the rows of a row-major rows x n matrix (for the bound of a dot product's rounding).
std::vector<double> row_norms(const std::vector<float>& a, int64_t rows, int64_t n) {
  std::vector<double> out(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) out[r] += static_cast<double>(a[r * n + i]) * a[r * n + i];
    out[r] = std::sqrt(out[r]);
  }
  return out;
}

// Two f32 evaluations of one k-long dot product x.w differ by at most 2 k u sum|x_i w_i| <=
// 2 k u |x| |w| (u = 2^-24), whatever order each sums in.
double dot_bound(int64_t k, double x_norm, double w_norm) {
  return 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24) * x_norm * w_norm;
}

// gemm_decoded splits the rows of x when a linear is a single weight tile (a small linear over a
// calibration chunk). The split is a function of the shapes only, so the bytes are the same for
// any thread count; every element is the BLAS dot product of its row and column, equal to what an
// unsplit call gives up to the order of the sum. (Bit for bit with OpenBLAS's SkylakeX and
// Sandybridge kernels; not with its Haswell/Zen kernels on a CPU with AVX-512, measured on an AMD
// EPYC with OpenBLAS 0.3.21, where the blocks' products differ from the whole one in the last
// bits.) Shapes from issue 19's runs.
TEST(GemmDecoded, RowBlocksAreThreadIndependentAndAgreeWithTheUnsplitProduct) {
  struct Shape { int64_t m, n_out, k; };
  for (const Shape sh : {Shape{4096, 256, 256}, Shape{4096, 64, 256}, Shape{4096, 32, 64},
                         Shape{1000, 172, 64}, Shape{300, 768, 256}}) {
    SCOPED_TRACE(testing::Message() << sh.m << "x" << sh.n_out << "x" << sh.k);
    const auto x = random_x(sh.m, sh.k, 3), w = random_x(sh.n_out, sh.k, 4);
    std::vector<float> want(static_cast<size_t>(sh.m * sh.n_out));
    {
      SerialBlasScope serial;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(sh.m),
                  static_cast<blasint>(sh.n_out), static_cast<blasint>(sh.k), 1.0f, x.data(),
                  static_cast<blasint>(sh.k), w.data(), static_cast<blasint>(sh.k), 0.0f,
                  want.data(), static_cast<blasint>(sh.n_out));
    }
    const auto decode = [&](int64_t r0, int64_t r1, float* out) {
      std::memcpy(out, w.data() + r0 * sh.k, static_cast<size_t>((r1 - r0) * sh.k) * sizeof(float));
    };
    const auto xn = row_norms(x, sh.m, sh.k), wn = row_norms(w, sh.n_out, sh.k);
    std::vector<float> one_thread;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> got(want.size(), -1.0f);
      gemm_decoded(sh.m, sh.n_out, sh.k, x.data(), got.data(), decode);
      if (threads == 1) {
        one_thread = got;
        for (int64_t i = 0; i < sh.m; ++i)
          for (int64_t j = 0; j < sh.n_out; ++j)
            ASSERT_NEAR(got[i * sh.n_out + j], want[i * sh.n_out + j],
                        dot_bound(sh.k, xn[i], wn[j]))
                << i << "," << j;
      } else {
        EXPECT_EQ(std::memcmp(got.data(), one_thread.data(), got.size() * sizeof(float)), 0)
            << threads;
      }
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

TEST(Gram, TilesAgreeWithTheWholeProduct) {
  // 64-wide tiles below 1024 inputs: each element is the dot product of two columns of x, as in a
  // whole-matrix call (the upper triangle of one X^T X BLAS product), up to the order of the sum
  // (bit for bit on the kernels named above GemmDecoded's test, not on all).
  const int64_t rows = 4096, n = 256;
  const auto x = random_x(rows, n, 5);
  std::vector<float> c(static_cast<size_t>(n * n));
  {
    SerialBlasScope serial;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(n),
                static_cast<blasint>(n), static_cast<blasint>(rows), 1.0f, x.data(),
                static_cast<blasint>(n), x.data(), static_cast<blasint>(n), 0.0f, c.data(),
                static_cast<blasint>(n));
  }
  std::vector<double> h(static_cast<size_t>(n * n), 0.0);
  gram_accumulate_f32(x.data(), rows, n, 1.0, h.data());
  std::vector<double> col(static_cast<size_t>(n), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) col[i] += static_cast<double>(x[r * n + i]) * x[r * n + i];
  for (auto& v : col) v = std::sqrt(v);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j)
      ASSERT_NEAR(h[i * n + j], static_cast<double>(c[i * n + j]), dot_bound(rows, col[i], col[j]))
          << i << "," << j;
}

}  // namespace
}  // namespace dsq::linalg
