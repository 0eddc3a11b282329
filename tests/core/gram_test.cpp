// gram_accumulate_f32 and cholesky_inverse_upper (added for GPTQ) against plain f64 loops.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

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

}  // namespace
}  // namespace dsq::linalg
