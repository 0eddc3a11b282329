// GPTQ against independent computations: a closed-form 2-column case, a sequential
// optimal-brain-surgeon reference solved by plain Gaussian elimination (no Cholesky of the
// inverse, no lazy batches), and a brute-force search over all roundings of a tiny matrix.
#include "lib/quant/gptq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "lib/core/error.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"
#include "tests/quant/quant_test_util.h"

namespace dsq::quant {
namespace {

using testing::with_threads;
using Ld = long double;

// H = A^T A / m + small ridge for A [m, n] with correlated columns (a shared factor), the shape
// of real activation second moments: strong off-diagonal terms, varied diagonal.
std::vector<double> correlated_hessian(int64_t n, uint32_t seed, int64_t m = 64) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> a(static_cast<size_t>(m * n));
  for (int64_t t = 0; t < m; ++t) {
    const double common = nd(rng);
    for (int64_t j = 0; j < n; ++j)
      a[static_cast<size_t>(t * n + j)] = (0.3 + 0.2 * (j % 3)) * nd(rng) + 0.8 * common;
  }
  std::vector<double> h(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < m; ++t) s += a[static_cast<size_t>(t * n + i)] * a[static_cast<size_t>(t * n + j)];
      h[static_cast<size_t>(i * n + j)] = s / static_cast<double>(m);
    }
  return h;
}

std::vector<double> damped(std::vector<double> h, int64_t n, double damp) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[static_cast<size_t>(i * n + i)];
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i * n + i)] += damp * mean;
  return h;
}

// Solve S x = b (S SPD, small) by Gaussian elimination with partial pivoting in long double.
std::vector<Ld> solve(std::vector<Ld> s, std::vector<Ld> b) {
  const size_t n = b.size();
  for (size_t k = 0; k < n; ++k) {
    size_t p = k;
    for (size_t i = k + 1; i < n; ++i)
      if (std::fabs(s[i * n + k]) > std::fabs(s[p * n + k])) p = i;
    for (size_t j = 0; j < n; ++j) std::swap(s[k * n + j], s[p * n + j]);
    std::swap(b[k], b[p]);
    for (size_t i = k + 1; i < n; ++i) {
      const Ld f = s[i * n + k] / s[k * n + k];
      for (size_t j = k; j < n; ++j) s[i * n + j] -= f * s[k * n + j];
      b[i] -= f * b[k];
    }
  }
  std::vector<Ld> x(n);
  for (size_t i = n; i-- > 0;) {
    Ld v = b[i];
    for (size_t j = i + 1; j < n; ++j) v -= s[i * n + j] * x[j];
    x[i] = v / s[i * n + i];
  }
  return x;
}

struct RefResult {
  std::vector<uint32_t> codes;  // [rows, cols], original column order
  std::vector<GroupParams> params;  // [rows, n_groups]
};

// Sequential OBS: for each column in processing order, the not-yet-quantized columns take their
// least-squares optimum given the quantized ones, x_f = w_f + Hff^{-1} Hfq (w_q - q_q) (Hd the
// damped Hessian); the column is then rounded with its group's params. Group params are fitted
// on x at the group's first column (or on the original row when static).
RefResult reference_gptq(const std::vector<float>& w, int64_t rows, int64_t cols,
                         const std::vector<double>& hd, const QuantDesc& d, bool act_order) {
  const int64_t G = d.group == 0 ? cols : d.group, ng = (cols + G - 1) / G;
  std::vector<int64_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) {
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return hd[static_cast<size_t>(a * cols + a)] > hd[static_cast<size_t>(b * cols + b)];
    });
  }
  const bool stat = act_order || G >= cols;
  RefResult out{std::vector<uint32_t>(static_cast<size_t>(rows * cols)),
                std::vector<GroupParams>(static_cast<size_t>(rows * ng))};
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = &w[static_cast<size_t>(r * cols)];
    GroupParams* pr = &out.params[static_cast<size_t>(r * ng)];
    if (stat)
      for (int64_t g = 0; g < ng; ++g)
        pr[g] = fit_group(wr + g * G, std::min(G, cols - g * G), d, nullptr, false);
    std::vector<bool> done(static_cast<size_t>(cols), false);
    std::vector<Ld> q(static_cast<size_t>(cols), 0);
    for (int64_t step = 0; step < cols; ++step) {
      std::vector<int64_t> f;
      for (int64_t j = 0; j < cols; ++j)
        if (!done[static_cast<size_t>(j)]) f.push_back(j);
      std::vector<Ld> s, b;
      for (int64_t i : f) {
        Ld rhs = 0;
        for (int64_t j = 0; j < cols; ++j)
          if (done[static_cast<size_t>(j)])
            rhs += hd[static_cast<size_t>(i * cols + j)] * (wr[j] - q[static_cast<size_t>(j)]);
        b.push_back(rhs);
        for (int64_t j : f) s.push_back(hd[static_cast<size_t>(i * cols + j)]);
      }
      const std::vector<Ld> delta = solve(s, b);
      std::vector<float> x(static_cast<size_t>(cols));
      for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(j)] = wr[j];
      for (size_t k = 0; k < f.size(); ++k)
        x[static_cast<size_t>(f[k])] = static_cast<float>(wr[f[k]] + delta[k]);
      const int64_t c = order[static_cast<size_t>(step)];
      if (!stat && c % G == 0) pr[c / G] = fit_group(&x[static_cast<size_t>(c)], std::min(G, cols - c), d, nullptr, false);
      const uint32_t code = quantize_value(x[static_cast<size_t>(c)], pr[c / G], d.bits());
      out.codes[static_cast<size_t>(r * cols + c)] = code;
      q[static_cast<size_t>(c)] = dequantize_value(code, pr[c / G]);
      done[static_cast<size_t>(c)] = true;
    }
  }
  return out;
}

void expect_matches(const Tensor& t, const RefResult& ref, const std::string& what) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  Tensor copy = t.clone();
  QuantMatrix qm(copy);
  int64_t diff = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      diff += qm.code(r, c) != ref.codes[static_cast<size_t>(r * cols + c)];
    for (int64_t g = 0; g < qm.n_groups(); ++g)
      EXPECT_EQ(qm.params(r, g), ref.params[static_cast<size_t>(r * qm.n_groups() + g)])
          << what << " row " << r << " group " << g;
  }
  EXPECT_EQ(diff, 0) << what << ": codes differing from the sequential OBS reference";
}

// tr(E H E^T) with E = W - dequant(Q), computed directly in long double.
double output_error(const std::vector<float>& w, const Tensor& q, const std::vector<double>& h) {
  const int64_t rows = q.dim(0), cols = q.dim(1);
  std::vector<float> deq(static_cast<size_t>(rows * cols));
  dequantize_rows(q, 0, rows, deq.data());
  Ld total = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        total += static_cast<Ld>(w[static_cast<size_t>(r * cols + i)] - deq[static_cast<size_t>(r * cols + i)]) *
                 h[static_cast<size_t>(i * cols + j)] *
                 (w[static_cast<size_t>(r * cols + j)] - deq[static_cast<size_t>(r * cols + j)]);
  return static_cast<double>(total);
}

TEST(Gptq, TwoColumnsClosedForm) {
  // Column 0 rounds first; the exact optimum of column 1 given q0 is w1 + (w0 - q0) H01 / H11.
  const std::vector<double> h = {2.0, 1.2, 1.2, 1.0};
  const std::vector<float> w = {0.30f, -0.11f, -0.52f, 0.41f, 0.07f, 0.23f};
  for (const bool sym : {true, false}) {
    const QuantDesc d{3, 0, sym};
    GptqOptions o;
    o.damp = 0.0;
    const Tensor q = gptq_quantize(w.data(), 3, 2, h.data(), d, o);
    Tensor copy = q.clone();
    QuantMatrix qm(copy);
    for (int64_t r = 0; r < 3; ++r) {
      const float* wr = &w[static_cast<size_t>(2 * r)];
      const GroupParams p = fit_group(wr, 2, d, nullptr, false);
      EXPECT_EQ(qm.params(r, 0), p);
      const uint32_t c0 = quantize_value(wr[0], p, 3);
      const double w1 = wr[1] + (wr[0] - dequantize_value(c0, p)) * 1.2 / 1.0;
      EXPECT_EQ(qm.code(r, 0), c0) << "row " << r;
      EXPECT_EQ(qm.code(r, 1), quantize_value(static_cast<float>(w1), p, 3)) << "row " << r;
    }
  }
}

TEST(Gptq, MatchesSequentialObsReference) {
  struct Cfg { int64_t rows, cols; QuantDesc d; bool act_order; int64_t block; };
  const Cfg cfgs[] = {
      {4, 7, {4, 0, false}, false, 3},  {4, 7, {3, 0, true}, false, 128},
      {3, 9, {4, 4, false}, false, 2},  {3, 9, {3, 4, true}, false, 5},
      {3, 9, {4, 4, false}, true, 2},   {3, 10, {2, 3, false}, true, 4},
      {2, 8, {8, 0, false}, true, 3},
  };
  uint32_t seed = 1;
  for (const auto& c : cfgs) {
    const auto w = testing::gaussian(c.rows * c.cols, seed, 0.5f);
    const auto h = correlated_hessian(c.cols, seed + 100);
    ++seed;
    GptqOptions o;
    o.act_order = c.act_order;
    o.block = c.block;
    const Tensor q = gptq_quantize(w.data(), c.rows, c.cols, h.data(), c.d, o);
    expect_matches(q, reference_gptq(w, c.rows, c.cols, damped(h, c.cols, o.damp), c.d, c.act_order),
                   scheme_name(c.d) + (c.act_order ? " act-order" : "") + " block " + std::to_string(c.block));
  }
}

TEST(Gptq, NeverWorseThanBruteForceAndBeatsRtn) {
  // 1 x 6 at 2 bits per channel: 4^6 roundings under GPTQ's (static) params.
  const int64_t n = 6;
  const QuantDesc d{2, 0, false};
  double sum_gptq = 0, sum_rtn = 0, sum_opt = 0;
  for (uint32_t seed = 0; seed < 12; ++seed) {
    const auto w = testing::gaussian(n, 300 + seed, 0.5f);
    const auto h = correlated_hessian(n, 400 + seed);
    GptqOptions o;
    o.damp = 0.0;
    GptqStats st;
    const Tensor q = gptq_quantize(w.data(), 1, n, h.data(), d, o, &st);
    const GroupParams p = fit_group(w.data(), n, d, nullptr, false);
    double best = INFINITY;
    for (int code = 0; code < (1 << (2 * n)); ++code) {
      std::vector<double> e(n);
      for (int64_t j = 0; j < n; ++j)
        e[static_cast<size_t>(j)] = w[static_cast<size_t>(j)] - dequantize_value((code >> (2 * j)) & 3, p);
      double err = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) err += e[static_cast<size_t>(i)] * h[static_cast<size_t>(i * n + j)] * e[static_cast<size_t>(j)];
      best = std::min(best, err);
    }
    const double direct = output_error(w, q, h);
    EXPECT_NEAR(st.err_gptq, direct, 1e-5 * (direct + 1e-12)) << "seed " << seed;
    EXPECT_GE(st.err_gptq, best * (1 - 1e-6)) << "seed " << seed;
    sum_gptq += st.err_gptq;
    sum_rtn += st.err_rtn;
    sum_opt += best;
  }
  EXPECT_LT(sum_gptq, 0.8 * sum_rtn);
  EXPECT_GE(sum_gptq, sum_opt);
}

TEST(Gptq, DiagonalHessianIsRtn) {
  // No cross terms: no error propagation, so GPTQ must produce RTN's bytes exactly.
  const int64_t rows = 5, cols = 172;
  const auto w = testing::gaussian(rows * cols, 7);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) h[static_cast<size_t>(i * cols + i)] = 0.5 + (i % 7);
  for (const auto& k : testing::all_cases()) {
    const Tensor g = gptq_quantize(w.data(), rows, cols, h.data(), k.desc(), GptqOptions{});
    const Tensor r = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
    ASSERT_EQ(g.nbytes(), r.nbytes());
    EXPECT_EQ(std::memcmp(g.bytes(), r.bytes(), g.nbytes()), 0) << k.str();
  }
}

TEST(Gptq, ActOrderKeepsStaticGroupsInOriginalOrder) {
  // Static groups: the scales and zeros are RTN's (fitted on the original columns), only the
  // codes differ; g_idx stays c / G so the tensor dequantizes without a permutation.
  const int64_t rows = 8, cols = 96;
  const auto w = testing::gaussian(rows * cols, 21);
  const auto h = correlated_hessian(cols, 22, 256);
  const QuantDesc d{4, 32, false};
  GptqOptions o;
  o.act_order = true;
  GptqStats st;
  const Tensor g = gptq_quantize(w.data(), rows, cols, h.data(), d, o, &st);
  const Tensor r = quantize_matrix_rtn(w.data(), rows, cols, d);
  const QuantLayout L = quant_layout(d, rows, cols);
  EXPECT_EQ(std::memcmp(g.bytes() + L.scales_offset, r.bytes() + L.scales_offset,
                        L.total_bytes - L.scales_offset), 0);
  EXPECT_NE(std::memcmp(g.bytes(), r.bytes(), L.codes_bytes), 0);
  EXPECT_LT(st.err_gptq, st.err_rtn);
  EXPECT_NEAR(st.err_gptq, output_error(w, g, h), 1e-4 * st.err_gptq);
}

TEST(Gptq, DeadColumnsAndDampingRaise) {
  const int64_t rows = 4, cols = 12;
  const auto w = testing::gaussian(rows * cols, 31);
  auto h = correlated_hessian(cols, 32);
  for (int64_t j = 0; j < cols; ++j) h[static_cast<size_t>(3 * cols + j)] = h[static_cast<size_t>(j * cols + 3)] = 0.0;
  GptqStats st;
  const QuantDesc d{4, 0, false};
  const Tensor q = gptq_quantize(w.data(), rows, cols, h.data(), d, GptqOptions{}, &st);
  EXPECT_EQ(st.dead_cols, 1);
  EXPECT_EQ(st.damp_used, 0.01);
  Tensor copy = q.clone();
  QuantMatrix qm(copy);
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(qm.code(r, 3), qm.params(r, 0).zero);  // w = 0
  // An indefinite H (a negative eigenvalue) needs more damping: raised with a warning.
  auto bad = correlated_hessian(cols, 33);
  const double c01 = 1.5 * std::sqrt(bad[0] * bad[static_cast<size_t>(cols + 1)]);
  bad[1] = bad[static_cast<size_t>(cols)] = c01;  // |H01| > sqrt(H00 H11): indefinite
  GptqOptions o;
  o.damp = 0.0;
  gptq_quantize(w.data(), rows, cols, bad.data(), d, o, &st);
  EXPECT_GE(st.damp_used, 0.1);
}

TEST(Gptq, ThreadCountDoesNotChangeBytes) {
  const int64_t rows = 67, cols = 300;
  const auto w = testing::gaussian(rows * cols, 41);
  const auto h = correlated_hessian(cols, 42, 400);
  for (const bool act : {false, true}) {
    GptqOptions o;
    o.act_order = act;
    o.block = 64;
    const QuantDesc d{3, 32, false};
    const Tensor a = with_threads(1, [&] { return gptq_quantize(w.data(), rows, cols, h.data(), d, o); });
    const Tensor b = with_threads(2, [&] { return gptq_quantize(w.data(), rows, cols, h.data(), d, o); });
    EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << "act_order " << act;
  }
}

// The linears of a group share H: one factorization serves them all, with the same bytes as
// each computing its own (and any mismatch in width is caught).
TEST(Gptq, SharedFactorGivesTheSameBytes) {
  const int64_t cols = 160;
  const auto h = correlated_hessian(cols, 51, 300);
  for (const bool act : {false, true}) {
    GptqOptions o;
    o.act_order = act;
    o.block = 32;
    const GptqFactor f = gptq_factor(h.data(), cols, o);
    for (const int64_t rows : {int64_t{5}, int64_t{48}}) {  // gate and up: different weights
      const auto w = testing::gaussian(rows * cols, 52 + static_cast<uint32_t>(rows));
      const QuantDesc d{4, 32, false};
      GptqStats a, b;
      const Tensor own = gptq_quantize(w.data(), rows, cols, h.data(), d, o, &a);
      const Tensor shared = gptq_quantize(w.data(), rows, cols, h.data(), d, o, &b, &f);
      ASSERT_EQ(own.nbytes(), shared.nbytes());
      EXPECT_EQ(std::memcmp(own.bytes(), shared.bytes(), own.nbytes()), 0) << act << " " << rows;
      EXPECT_EQ(a.err_gptq, b.err_gptq);
      EXPECT_EQ(a.damp_used, b.damp_used);
    }
  }
  const auto w = testing::gaussian(4 * 16, 53);
  const auto h16 = correlated_hessian(16, 54);
  const GptqFactor wide = gptq_factor(h.data(), cols, GptqOptions{});
  EXPECT_DEATH_IF_SUPPORTED(
      gptq_quantize(w.data(), 4, 16, h16.data(), QuantDesc{4, 0, false}, GptqOptions{}, nullptr,
                    &wide),
      "GPTQ factor of 160 columns");
}

// Reported output errors of wide linears are measured on kOutputErrorRows evenly spaced rows:
// exactly those rows' sum scaled up, exact when the matrix has no more rows, and close to the
// full sum on realistic data.
TEST(Gptq, HessianQuadraticRowSample) {
  const int64_t rows = 2000, cols = 64;
  const auto a = testing::gaussian(rows * cols, 61);
  const auto hd = correlated_hessian(cols, 62, 200);
  const std::vector<float> h(hd.begin(), hd.end());
  const double exact = hessian_quadratic(a.data(), rows, cols, h.data());
  EXPECT_EQ(hessian_quadratic(a.data(), rows, cols, h.data(), rows), exact);
  EXPECT_EQ(hessian_quadratic(a.data(), rows, cols, h.data(), 0), exact);
  const int64_t m = 100;
  double manual = 0.0;
  for (int64_t k = 0; k < m; ++k) {
    const auto r = static_cast<int64_t>((static_cast<double>(k) + 0.5) * rows / m);
    manual += hessian_quadratic(a.data() + r * cols, 1, cols, h.data());
  }
  const double est = hessian_quadratic(a.data(), rows, cols, h.data(), m);
  EXPECT_NEAR(est, manual * rows / m, 1e-6 * est);  // f32 GEMM of 1 row vs 100
  EXPECT_NEAR(est, exact, 0.1 * exact);  // 100 of 2000 i.i.d. rows: a few percent
  EXPECT_NE(est, exact);
}

TEST(Gptq, RejectsNonFiniteInput) {
  std::vector<float> w(4, 0.1f);
  w[2] = NAN;
  const std::vector<double> h = {1, 0, 0, 1};
  GptqOptions o;
  o.name = "blk.0.attn_q.weight";
  try {
    gptq_quantize(w.data(), 2, 2, h.data(), QuantDesc{4, 0, false}, o);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0.attn_q.weight': non-finite weight"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsq::quant
