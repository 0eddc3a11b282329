// AWQ's searches against independent computations: the scale formula, the clip search against a
// brute-force argmin of every (row, group), the scale search's objective against the output error
// measured on explicit inputs, and RTN equivalence of unit clip ratios.
#include "lib/quant/awq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lib/core/error.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"
#include "tests/quant/quant_test_util.h"

namespace dsq::quant {
namespace {

using testing::with_threads;
using Ld = long double;

// Inputs X [tokens, n] with a few outlier channels (x20), as LLM activations have.
std::vector<float> activations(int64_t tokens, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * n));
  for (int64_t t = 0; t < tokens; ++t) {
    const float common = nd(rng);
    for (int64_t j = 0; j < n; ++j) {
      const float gain = j % 11 == 3 ? 20.0f : 0.5f + 0.1f * static_cast<float>(j % 5);
      x[static_cast<size_t>(t * n + j)] = gain * (nd(rng) + 0.3f * common);
    }
  }
  return x;
}

// H = X^T X / N and m = mean |X| (f64).
void moments(const std::vector<float>& x, int64_t tokens, int64_t n, std::vector<double>* h,
             std::vector<double>* m) {
  h->assign(static_cast<size_t>(n * n), 0.0);
  m->assign(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < n; ++i) {
      const double xi = x[static_cast<size_t>(t * n + i)];
      (*m)[static_cast<size_t>(i)] += std::fabs(xi) / static_cast<double>(tokens);
      for (int64_t j = 0; j < n; ++j)
        (*h)[static_cast<size_t>(i * n + j)] += xi * x[static_cast<size_t>(t * n + j)] / static_cast<double>(tokens);
    }
}

TEST(Awq, ScalesFollowTheFormula) {
  const double m[] = {0.5, 2.0, 8.0, 0.0};
  for (float s : awq_scales(m, 4, 0.0)) EXPECT_EQ(s, 1.0f);  // alpha 0: plain RTN
  const std::vector<float> s = awq_scales(m, 4, 0.5);
  const double raw[] = {std::sqrt(0.5), std::sqrt(2.0), std::sqrt(8.0), 1e-4};  // clamped at 1e-4
  const double norm = std::sqrt(raw[2] * raw[3]);
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[static_cast<size_t>(j)], raw[j] / norm, 1e-6 * raw[j] / norm);
  // Tied channels share the scale of their slot's mean.
  const double m2[] = {1.0, 3.0, 5.0, 7.0};
  const int64_t tie[] = {0, 1, 0, 1};  // slot 0: mean 3, slot 1: mean 5
  const std::vector<float> t = awq_scales(m2, 4, 0.7, tie, 2);
  EXPECT_EQ(t[0], t[2]);
  EXPECT_EQ(t[1], t[3]);
  const double a = std::pow(3.0, 0.7), b = std::pow(5.0, 0.7), nt = std::sqrt(a * b);
  EXPECT_NEAR(t[0], a / nt, 1e-6);
  EXPECT_NEAR(t[1], b / nt, 1e-6);
}

TEST(Awq, UnitClipRatiosAreRtn) {
  const int64_t rows = 5, cols = testing::kRaggedCols[0];
  const auto w = testing::gaussian(rows * cols, 3);
  for (const auto& c : testing::all_cases()) {
    const QuantDesc d = c.desc();
    QuantErrorStats a, b;
    const Tensor rtn = quantize_matrix_rtn(w.data(), rows, cols, d, {}, &a);
    const Tensor clipped = quantize_clipped(w.data(), rows, cols, d, nullptr, &b);
    ASSERT_EQ(rtn.nbytes(), clipped.nbytes()) << c.str();
    EXPECT_EQ(std::memcmp(rtn.bytes(), clipped.bytes(), rtn.nbytes()), 0) << c.str();
    EXPECT_DOUBLE_EQ(a.err_sq, b.err_sq) << c.str();
    std::vector<float> fq(w.size()), deq(w.size());
    fake_quantize_rtn(w.data(), rows, cols, d, fq.data());
    dequantize_rows(rtn, 0, rows, deq.data());
    EXPECT_EQ(fq, deq) << c.str();
  }
}

TEST(Awq, ClipSearchIsTheBruteForceArgmin) {
  const int64_t rows = 6, cols = 40, tokens = 200;  // g16: groups of 16, 16 and a ragged 8
  const QuantDesc d{3, 16, false};
  // Heavy-tailed weights so that clipping pays off in some groups.
  std::mt19937 rng(9);
  std::student_t_distribution<float> td(2.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = 0.02f * td(rng);
  std::vector<double> h, m;
  moments(activations(tokens, cols, 4), tokens, cols, &h, &m);
  const AwqOptions o;
  const std::vector<float> got = awq_search_clip(w.data(), rows, cols, h.data(), d, o);
  ASSERT_EQ(got.size(), static_cast<size_t>(rows * 3));
  int clipped = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < 3; ++g) {
      const int64_t c0 = g * 16, len = std::min<int64_t>(16, cols - c0);
      const float* wg = w.data() + r * cols + c0;
      Ld best = INFINITY, at_got = -1;
      for (int i = 0; i < 10; ++i) {  // ratios 1, 0.95, ..., 0.55
        const float p = 1.0f - static_cast<float>(i) / 20.0f;
        float lo = 0, hi = 0;
        for (int64_t k = 0; k < len; ++k) lo = std::min(lo, wg[k]), hi = std::max(hi, wg[k]);
        const float a = p * std::max(-lo, hi);
        if (p < 1.0f) lo = std::max(lo, -a), hi = std::min(hi, a);
        const GroupParams gp = params_for_range(lo, hi, d);
        std::vector<Ld> dl(static_cast<size_t>(len));
        for (int64_t k = 0; k < len; ++k)
          dl[static_cast<size_t>(k)] = static_cast<Ld>(wg[k]) -
              dequantize_value(quantize_value(std::clamp(wg[k], lo, hi), gp, d.bits()), gp);
        Ld err = 0;
        for (int64_t a1 = 0; a1 < len; ++a1)
          for (int64_t k = 0; k < len; ++k)
            err += dl[static_cast<size_t>(a1)] * static_cast<Ld>(h[static_cast<size_t>((c0 + a1) * cols + c0 + k)]) * dl[static_cast<size_t>(k)];
        best = std::min(best, err);
        if (p == got[static_cast<size_t>(r * 3 + g)]) at_got = err;
      }
      ASSERT_GE(at_got, 0) << "ratio " << got[static_cast<size_t>(r * 3 + g)] << " is not a candidate";
      EXPECT_LE(at_got, best * (1 + 1e-5L)) << "row " << r << " group " << g;
      clipped += got[static_cast<size_t>(r * 3 + g)] < 1.0f;
    }
  }
  EXPECT_GT(clipped, 0) << "no group chose to clip: the test would not see a wrong argmin";
  // Thread-count independent.
  const auto one = with_threads(1, [&] { return awq_search_clip(w.data(), rows, cols, h.data(), d, o); });
  const auto two = with_threads(2, [&] { return awq_search_clip(w.data(), rows, cols, h.data(), d, o); });
  EXPECT_EQ(one, two);
}

TEST(Awq, ScaleSearchObjectiveIsTheOutputErrorOnTheInputs) {
  const int64_t n = 48, tokens = 256;
  const QuantDesc d{3, 16, false};
  const auto x = activations(tokens, n, 7);
  std::vector<double> h, m;
  moments(x, tokens, n, &h, &m);
  const auto w1 = testing::gaussian(24 * n, 1), w2 = testing::gaussian(16 * n, 2);
  AwqOptions o;
  o.grid = 10;
  const AwqScaleResult r = awq_search_scales({{w1.data(), 24}, {w2.data(), 16}}, n, h.data(),
                                             m.data(), d, o);
  ASSERT_EQ(r.errs.size(), 10u);
  EXPECT_EQ(r.errs[0], r.err_rtn);
  EXPECT_EQ(r.err, *std::min_element(r.errs.begin(), r.errs.end()));
  EXPECT_GT(r.alpha, 0.0) << "outlier channels should make scaling pay off";
  EXPECT_LT(r.err, 0.8 * r.err_rtn);
  // Independently: the squared output error on the explicit inputs, with the chosen scales.
  Ld err = 0, norm = 0;
  for (const auto& [w, rows] : {std::pair{&w1, int64_t{24}}, std::pair{&w2, int64_t{16}}}) {
    std::vector<float> ws(w->size());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) ws[static_cast<size_t>(i * n + j)] = (*w)[static_cast<size_t>(i * n + j)] * r.scales[static_cast<size_t>(j)];
    const Tensor q = quantize_matrix_rtn(ws.data(), rows, n, d);
    std::vector<float> deq(ws.size());
    dequantize_rows(q, 0, rows, deq.data());
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t i = 0; i < rows; ++i) {
        Ld y = 0, yq = 0;
        for (int64_t j = 0; j < n; ++j) {
          const Ld xv = x[static_cast<size_t>(t * n + j)];
          y += xv * (*w)[static_cast<size_t>(i * n + j)];
          yq += xv * deq[static_cast<size_t>(i * n + j)] / r.scales[static_cast<size_t>(j)];
        }
        err += (y - yq) * (y - yq) / tokens;
        norm += y * y / tokens;
      }
  }
  EXPECT_NEAR(r.err, static_cast<double>(err), 1e-4 * static_cast<double>(err));
  EXPECT_NEAR(r.norm, static_cast<double>(norm), 1e-4 * static_cast<double>(norm));
  const auto again = with_threads(1, [&] {
    return awq_search_scales({{w1.data(), 24}, {w2.data(), 16}}, n, h.data(), m.data(), d, o);
  });
  EXPECT_EQ(again.scales, r.scales);
  EXPECT_EQ(again.errs, r.errs);
}

TEST(Awq, RejectsNonFiniteStatistics) {
  const int64_t n = 8;
  std::vector<double> h(n * n, 0.0), m(n, 1.0);
  for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i * n + i)] = 1.0;
  const auto w = testing::gaussian(4 * n, 1);
  h[3] = NAN;
  EXPECT_THROW(awq_search_scales({{w.data(), 4}}, n, h.data(), m.data(), QuantDesc{4, 0, false}, {}),
               ShapeError);
  EXPECT_THROW(awq_search_clip(w.data(), 4, n, h.data(), QuantDesc{4, 0, false}, {}), ShapeError);
}

}  // namespace
}  // namespace dsq::quant
