// Every training op's backward against central finite differences in float64: the scalar checked
// is L = sum(r * op(x)) for a fixed random r, so the analytic gradient is the op's backward of r.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "lib/train/loss.h"
#include "lib/train/ops.h"

namespace dsq::train {
namespace {

using Vec = std::vector<double>;

Vec random_vec(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Vec v(n);
  for (double& x : v) x = u(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Compares `analytic` with the central difference of loss() in every entry of x.
void expect_grad(Vec& x, const std::function<double()>& loss, const Vec& analytic, const char* what) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  constexpr double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double num = (lp - lm) / (2 * h);
    const double err = std::abs(num - analytic[i]) / std::max(1.0, std::abs(num));
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-7) << what << "[" << i << "]: finite difference " << num << ", backward "
                         << analytic[i];
  }
  EXPECT_GT(dot(analytic, analytic), 1e-6) << what << ": the gradient should not vanish";
  (void)worst;
}

TEST(TrainOps, LinearGradients) {
  const int64_t rows = 3, n_in = 5, n_out = 4;
  Vec x = random_vec(rows * n_in, 1), w = random_vec(n_out * n_in, 2), b = random_vec(n_out, 3);
  const Vec r = random_vec(rows * n_out, 4);
  auto loss = [&] {
    Vec y(rows * n_out);
    linear_forward(x.data(), w.data(), b.data(), rows, n_in, n_out, y.data());
    return dot(r, y);
  };
  Vec dx(x.size(), 0.0), dw(w.size(), 0.0), db(b.size(), 0.0);
  linear_backward(x.data(), w.data(), r.data(), rows, n_in, n_out, dx.data(), dw.data(), db.data());
  expect_grad(x, loss, dx, "dx");
  expect_grad(w, loss, dw, "dw");
  expect_grad(b, loss, db, "db");
}

TEST(TrainOps, RmsNormGradients) {
  const int64_t rows = 3, d = 6;
  Vec x = random_vec(rows * d, 5), w = random_vec(d, 6, 0.5, 1.5);
  const Vec r = random_vec(rows * d, 7);
  auto loss = [&] {
    Vec y(rows * d), inv(rows);
    rmsnorm_forward(x.data(), w.data(), rows, d, 1e-5, y.data(), inv.data());
    return dot(r, y);
  };
  Vec y(rows * d), inv(rows), dx(x.size(), 0.0), dw(d, 0.0);
  rmsnorm_forward(x.data(), w.data(), rows, d, 1e-5, y.data(), inv.data());
  rmsnorm_backward(x.data(), w.data(), inv.data(), r.data(), rows, d, dx.data(), dw.data());
  expect_grad(x, loss, dx, "dx");
  expect_grad(w, loss, dw, "dw");
}

TEST(TrainOps, RopeGradientIsTheInverseRotation) {
  const int64_t B = 2, T = 3, heads = 2, hd = 4, rows = B * T, ld = heads * hd;
  std::vector<float> cs(T * hd / 2), sn(T * hd / 2);
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < hd / 2; ++i) {
      cs[p * hd / 2 + i] = static_cast<float>(std::cos(0.3 * (p + 1) * (i + 1)));
      sn[p * hd / 2 + i] = static_cast<float>(std::sin(0.3 * (p + 1) * (i + 1)));
    }
  for (bool interleave : {false, true}) {
    Vec x = random_vec(rows * ld, 8);
    const Vec r = random_vec(rows * ld, 9);
    auto loss = [&] {
      Vec y = x;
      rope_rotate(y.data(), rows, T, ld, heads, hd, cs.data(), sn.data(), interleave, false);
      return dot(r, y);
    };
    Vec dx = r;
    rope_rotate(dx.data(), rows, T, ld, heads, hd, cs.data(), sn.data(), interleave, true);
    expect_grad(x, loss, dx, interleave ? "dx interleaved" : "dx rotate_half");
  }
}

TEST(TrainOps, CausalGqaAttentionGradients) {
  const AttnDims a{2, 5, 4, 2, 3, 0.7};
  const int64_t rows = a.B * a.T, wq = a.n_heads * a.hd, wkv = a.n_kv * a.hd;
  Vec q = random_vec(rows * wq, 10), k = random_vec(rows * wkv, 11), v = random_vec(rows * wkv, 12);
  const Vec r = random_vec(rows * wq, 13);
  auto loss = [&] {
    Vec o(rows * wq);
    attention_forward(q.data(), k.data(), v.data(), a, o.data());
    return dot(r, o);
  };
  Vec dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
  attention_backward(q.data(), k.data(), v.data(), r.data(), a, dq.data(), dk.data(), dv.data());
  expect_grad(q, loss, dq, "dq");
  expect_grad(k, loss, dk, "dk");
  expect_grad(v, loss, dv, "dv");
  // Causality: the first token's output depends on the first key only.
  Vec o1(rows * wq), o2(rows * wq);
  attention_forward(q.data(), k.data(), v.data(), a, o1.data());
  k[(a.T - 1) * wkv] += 1.0;
  attention_forward(q.data(), k.data(), v.data(), a, o2.data());
  for (int64_t j = 0; j < wq; ++j) EXPECT_EQ(o1[j], o2[j]);
}

TEST(TrainOps, SwigluGradients) {
  const int64_t n = 17;
  Vec g = random_vec(n, 14, -4, 4), u = random_vec(n, 15);
  const Vec r = random_vec(n, 16);
  auto loss = [&] {
    Vec a(n);
    swiglu_forward(g.data(), u.data(), n, a.data());
    return dot(r, a);
  };
  Vec dg(n, 0.0), du(n, 0.0);
  swiglu_backward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  expect_grad(g, loss, dg, "dg");
  expect_grad(u, loss, du, "du");
}

TEST(TrainOps, EmbeddingGradientSumsRepeatedIds) {
  const int64_t vocab = 7, d = 3;
  const std::vector<int32_t> ids = {4, 1, 4, 6, 4};
  Vec table = random_vec(vocab * d, 17);
  const Vec r = random_vec(ids.size() * d, 18);
  auto loss = [&] {
    Vec o(ids.size() * d);
    embedding_forward(table.data(), ids.data(), static_cast<int64_t>(ids.size()), d, o.data());
    return dot(r, o);
  };
  Vec dt(table.size(), 0.0);
  embedding_backward(ids.data(), r.data(), static_cast<int64_t>(ids.size()), d, dt.data());
  expect_grad(table, loss, dt, "dtable");
  for (int64_t j = 0; j < d; ++j) EXPECT_EQ(dt[0 * d + j], 0.0);  // id 0 unused
}

TEST(TrainLoss, EveryLossGradientAndTopKBuckets) {
  const int64_t vocab = 9;
  std::vector<float> teacher(vocab);
  const Vec tv = random_vec(vocab, 19, -3, 3);
  for (int64_t j = 0; j < vocab; ++j) teacher[j] = static_cast<float>(tv[j]);
  for (int64_t k : {int64_t{3}, vocab}) {
    for (double tau : {1.0, 2.0}) {
      std::vector<int32_t> ids(k);
      std::vector<float> logp(k);
      double p_rest = 0;
      teacher_topk(teacher.data(), vocab, k, tau, ids.data(), logp.data(), &p_rest);
      if (k == vocab) {
        EXPECT_NEAR(p_rest, 0.0, 1e-12);
      }
      double mass = p_rest;
      for (float lp : logp) mass += std::exp(static_cast<double>(lp));
      EXPECT_NEAR(mass, 1.0, 1e-6);
      for (int64_t i = 1; i < k; ++i) EXPECT_GE(logp[i - 1], logp[i]);
      const TeacherRow row{ids.data(), logp.data(), k, p_rest};
      for (LossKind kind : {LossKind::kForwardKl, LossKind::kReverseKl, LossKind::kJsd}) {
        const LossSpec spec{kind, tau, 0.3};
        Vec z = random_vec(vocab, 20, -2, 2);
        auto loss = [&] { return distill_row<double>(z.data(), vocab, row, spec, nullptr, 1.0); };
        Vec dz(vocab);
        const double l = distill_row<double>(z.data(), vocab, row, spec, dz.data(), 1.0);
        EXPECT_GT(l, 0.0) << loss_name(kind);
        expect_grad(z, loss, dz, loss_name(kind));
        // The teacher's own logits are a minimum: zero loss (the tail bucket matches too).
        Vec zt(teacher.begin(), teacher.end());
        EXPECT_NEAR(distill_row<double>(zt.data(), vocab, row, spec, nullptr, 1.0), 0.0, 1e-6)
            << loss_name(kind);
      }
    }
  }
}

}  // namespace
}  // namespace dsq::train
