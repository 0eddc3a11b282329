#include "lib/train/loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "lib/core/error.h"

namespace dsq::train {

LossKind parse_loss(const std::string& s) {
  if (s == "forward-kl") return LossKind::kForwardKl;
  if (s == "reverse-kl") return LossKind::kReverseKl;
  if (s == "jsd") return LossKind::kJsd;
  throw UsageError("unknown loss '" + s + "': use forward-kl, reverse-kl or jsd");
}

const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::kForwardKl: return "forward-kl";
    case LossKind::kReverseKl: return "reverse-kl";
    case LossKind::kJsd: return "jsd";
  }
  return "?";
}

namespace {

// x log(x / y) with 0 log 0 = 0.
double xlogxy(double x, double y) { return x > 0.0 ? x * std::log(x / y) : 0.0; }

constexpr double kTiny = 1e-300;

}  // namespace

template <class T>
double distill_row(const T* z, int64_t vocab, const TeacherRow& t, const LossSpec& spec, T* dz,
                   double grad_scale) {
  const double tau = spec.temperature;
  // Student softmax at tau, in f64.
  double mx = static_cast<double>(z[0]);
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, static_cast<double>(z[j]));
  // Vocabulary-sized scratch, per thread: this runs once per token row (a 152k vocabulary would
  // otherwise allocate and clear 1.4 MB per row). in_k is all zeros between calls.
  thread_local std::vector<double> q_scratch;
  thread_local std::vector<uint8_t> in_k_scratch;
  if (static_cast<int64_t>(q_scratch.size()) < vocab) q_scratch.resize(static_cast<size_t>(vocab));
  if (static_cast<int64_t>(in_k_scratch.size()) < vocab) in_k_scratch.resize(static_cast<size_t>(vocab), 0);
  double* q = q_scratch.data();
  uint8_t* in_k = in_k_scratch.data();
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) {
    q[j] = std::exp((static_cast<double>(z[j]) - mx) / tau);
    sum += q[j];
  }
  for (int64_t j = 0; j < vocab; ++j) q[j] /= sum;
  // Buckets: the teacher's k ids, then the rest. q_rest summed over the other ids (no
  // cancellation); in_k marks the top-k ids.
  const int64_t k = t.k;
  std::vector<double> qb(static_cast<size_t>(k + 1)), pb(static_cast<size_t>(k + 1));
  for (int64_t i = 0; i < k; ++i) {
    in_k[t.ids[i]] = 1;
    qb[static_cast<size_t>(i)] = q[t.ids[i]];
    pb[static_cast<size_t>(i)] = std::exp(static_cast<double>(t.logp[i]));
  }
  double q_rest = 0.0;
  for (int64_t j = 0; j < vocab; ++j)
    if (!in_k[j]) q_rest += q[j];
  qb[static_cast<size_t>(k)] = q_rest;
  pb[static_cast<size_t>(k)] = t.p_rest;
  // Loss and a_b = dL/dq_b.
  std::vector<double> a(static_cast<size_t>(k + 1));
  double loss = 0.0;
  for (int64_t b = 0; b <= k; ++b) {
    const double p = pb[static_cast<size_t>(b)], qq = std::max(qb[static_cast<size_t>(b)], kTiny);
    double ab = 0.0;
    switch (spec.kind) {
      case LossKind::kForwardKl:
        loss += xlogxy(p, qq);
        ab = -p / qq;
        break;
      case LossKind::kReverseKl:
        if (qb[static_cast<size_t>(b)] > 0.0) {
          loss += xlogxy(qq, std::max(p, kTiny));
          ab = std::log(qq / std::max(p, kTiny));  // + 1, which cancels through the softmax
        }
        break;
      case LossKind::kJsd: {
        const double beta = spec.beta, m = beta * p + (1.0 - beta) * qq;
        loss += beta * xlogxy(p, m) + (1.0 - beta) * xlogxy(qq, m);
        ab = (1.0 - beta) * std::log(qq / m);
        break;
      }
    }
    a[static_cast<size_t>(b)] = ab;
  }
  if (dz) {
    double abar = 0.0;
    for (int64_t b = 0; b <= k; ++b) abar += qb[static_cast<size_t>(b)] * a[static_cast<size_t>(b)];
    const double s = grad_scale * tau;  // tau^2 * (1 / tau)
    const double a_rest = a[static_cast<size_t>(k)];
    for (int64_t j = 0; j < vocab; ++j)
      if (!in_k[j]) dz[j] = static_cast<T>(s * q[j] * (a_rest - abar));
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = t.ids[i];
      dz[j] = static_cast<T>(s * q[j] * (a[static_cast<size_t>(i)] - abar));
    }
  }
  for (int64_t i = 0; i < k; ++i) in_k[t.ids[i]] = 0;  // the scratch's invariant
  return loss * tau * tau;
}

template double distill_row<float>(const float*, int64_t, const TeacherRow&, const LossSpec&,
                                   float*, double);
template double distill_row<double>(const double*, int64_t, const TeacherRow&, const LossSpec&,
                                    double*, double);

void teacher_topk(const float* logits, int64_t vocab, int64_t k, double temperature, int32_t* ids,
                  float* logp, double* p_rest) {
  k = std::min(k, vocab);
  double mx = logits[0];
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, static_cast<double>(logits[j]));
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp((logits[j] - mx) / temperature);
  const double lse = std::log(sum);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int32_t x, int32_t y) {
    return logits[x] > logits[y] || (logits[x] == logits[y] && x < y);
  };
  if (k < vocab) std::nth_element(order.begin(), order.begin() + k, order.end(), before);
  std::sort(order.begin(), order.begin() + k, before);
  double rest = 0.0;
  for (int64_t i = k; i < vocab; ++i)
    rest += std::exp((logits[order[static_cast<size_t>(i)]] - mx) / temperature);
  for (int64_t i = 0; i < k; ++i) {
    ids[i] = order[static_cast<size_t>(i)];
    logp[i] = static_cast<float>((logits[ids[i]] - mx) / temperature - lse);
  }
  *p_rest = rest / sum;
}

}  // namespace dsq::train
