#include "lib/core/linalg.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lib/core/progress.h"

namespace dsq {
namespace {

TEST(Linalg, SgemmMatchesNaiveProduct) {
  const int64_t m = 7, n = 5, k = 9;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(m * k), b(n * k), c(m * n, 0.0f);
  for (auto& x : a) x = u(rng);
  for (auto& x : b) x = u(rng);
  linalg::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        ref += static_cast<double>(a[i * k + p]) * b[j * k + p];
        mag += std::fabs(static_cast<double>(a[i * k + p]) * b[j * k + p]);
      }
      EXPECT_NEAR(c[i * n + j], ref, mag * k * 1.2e-7);
    }
}

TEST(Linalg, CholeskyAndInverseOfSpdMatrix) {
  const int64_t n = 6, rows = 20;
  std::mt19937 rng(2);
  std::normal_distribution<float> g;
  std::vector<float> x(rows * n);
  for (auto& v : x) v = g(rng);
  std::vector<double> h(n * n, 0.0);
  linalg::syrk_accumulate(x.data(), rows, n, 1.0, h.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0;
      for (int64_t r = 0; r < rows; ++r) ref += static_cast<double>(x[r * n + i]) * x[r * n + j];
      EXPECT_NEAR(h[i * n + j], ref, 1e-9 * (1 + std::fabs(ref)));
    }
  std::vector<double> u = h;
  ASSERT_TRUE(linalg::cholesky_upper(u.data(), n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < n; ++p) s += u[p * n + i] * u[p * n + j];  // U^T U
      EXPECT_NEAR(s, h[i * n + j], 1e-9 * (1 + std::fabs(h[i * n + j])));
      if (i > j) {
        EXPECT_EQ(u[i * n + j], 0.0);
      }
    }
  std::vector<double> inv = h;
  ASSERT_TRUE(linalg::spd_inverse(inv.data(), n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < n; ++p) s += h[i * n + p] * inv[p * n + j];
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-9);
    }
  std::vector<double> not_spd = {1, 2, 2, 1};
  EXPECT_FALSE(linalg::cholesky_upper(not_spd.data(), 2));
}

TEST(Progress, DurationsAreHumanReadable) {
  EXPECT_EQ(Progress::format_duration(12.34), "12.3s");
  EXPECT_EQ(Progress::format_duration(185), "3m05s");
  EXPECT_EQ(Progress::format_duration(3720), "1h02m");
}

}  // namespace
}  // namespace dsq
