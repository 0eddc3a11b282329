#include "lib/model/metrics.h"

#include <algorithm>
#include <cmath>

#include "lib/core/error.h"

namespace dsq::model {

void log_softmax(const float* logits, int64_t n, double* out) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>(logits[i]) - lse;
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

std::vector<TokenScore> score_windows(const float* logits, const float* ref_logits,
                                      std::span<const int32_t> tokens, int64_t B, int64_t T,
                                      int64_t vocab, int64_t first) {
  DSQ_ASSERT(static_cast<int64_t>(tokens.size()) == B * T && T >= 2 && 0 <= first && first < T - 1,
             "score_windows: bad sizes");
  const int64_t per = T - 1 - first, n = B * per;
  std::vector<TokenScore> out(static_cast<size_t>(n));
  // Each row costs ~vocab exps in f64: fan out only when that adds up to milliseconds.
#pragma omp parallel if (n * vocab * (ref_logits ? 2 : 1) >= (int64_t{1} << 20))
  {
    std::vector<double> lp(static_cast<size_t>(vocab)), lr(static_cast<size_t>(vocab));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = i / per, t = first + i % per, row = b * T + t;
      const int32_t target = tokens[static_cast<size_t>(row + 1)];
      TokenScore& s = out[static_cast<size_t>(i)];
      const float* lg = logits + row * vocab;
      log_softmax(lg, vocab, lp.data());
      s.nll = -lp[static_cast<size_t>(target)];
      if (ref_logits) {
        const float* rg = ref_logits + row * vocab;
        log_softmax(rg, vocab, lr.data());
        s.ref_nll = -lr[static_cast<size_t>(target)];
        double kl = 0.0;
        for (int64_t j = 0; j < vocab; ++j) {
          const double a = lr[static_cast<size_t>(j)];
          kl += std::exp(a) * (a - lp[static_cast<size_t>(j)]);
        }
        s.kld = kl;
        s.top1_agree = argmax(lg, vocab) == argmax(rg, vocab);
      }
    }
  }
  return out;
}

DistStats dist_stats(std::vector<double> v) {
  DistStats s;
  if (v.empty()) return s;
  const double n = static_cast<double>(v.size());
  double sum = 0.0;
  for (double x : v) sum += x;
  s.mean = sum / n;
  double ss = 0.0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.stderr_ = v.size() > 1 ? std::sqrt(ss / (n - 1.0) / n) : 0.0;
  std::sort(v.begin(), v.end());
  const double pos = 0.99 * (n - 1.0);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  s.p99 = v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  s.max = v.back();
  return s;
}

void MetricsAccumulator::add(std::span<const TokenScore> scores) {
  for (const auto& s : scores) {
    nll_ += s.nll;
    ref_nll_ += s.ref_nll;
    agree_ += s.top1_agree ? 1 : 0;
    kld_.push_back(s.kld);
  }
  n_ += static_cast<int64_t>(scores.size());
}

double MetricsAccumulator::perplexity() const { return std::exp(mean_nll()); }

double MetricsAccumulator::ref_perplexity() const {
  return std::exp(n_ ? ref_nll_ / static_cast<double>(n_) : 0.0);
}

void BlockOutputRecorder::on_block_output(int64_t layer, ActView h) {
  if (static_cast<int64_t>(outputs_.size()) <= layer) outputs_.resize(static_cast<size_t>(layer + 1));
  outputs_[static_cast<size_t>(layer)].assign(h.data, h.data + h.rows * h.cols);
}

const std::vector<float>& BlockOutputRecorder::output(int64_t layer) const {
  static const std::vector<float> kEmpty;
  return layer < static_cast<int64_t>(outputs_.size()) ? outputs_[static_cast<size_t>(layer)]
                                                       : kEmpty;
}

void DriftMeter::on_block_output(int64_t layer, ActView h) {
  const auto& ref = ref_.output(layer);
  if (static_cast<int64_t>(ref.size()) != h.rows * h.cols) return;  // no matching reference
  std::vector<double> rel(static_cast<size_t>(h.rows)), cs(static_cast<size_t>(h.rows));
#pragma omp parallel for schedule(static) if (h.rows * h.cols > (1 << 18))
  for (int64_t r = 0; r < h.rows; ++r) {
    const float* a = h.row(r);
    const float* b = ref.data() + r * h.cols;
    double dd = 0.0, bb = 0.0, aa = 0.0, ab = 0.0;
    for (int64_t j = 0; j < h.cols; ++j) {
      const double x = a[j], y = b[j];
      dd += (x - y) * (x - y);
      aa += x * x;
      bb += y * y;
      ab += x * y;
    }
    rel[static_cast<size_t>(r)] = bb > 0 ? std::sqrt(dd / bb) : (dd > 0 ? HUGE_VAL : 0.0);
    cs[static_cast<size_t>(r)] =
        aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
  }
  if (static_cast<int64_t>(sums_.size()) <= layer) sums_.resize(static_cast<size_t>(layer + 1));
  Sums& s = sums_[static_cast<size_t>(layer)];
  for (int64_t r = 0; r < h.rows; ++r) {
    if (r % T_ == T_ - 1) continue;  // the last position of a window predicts nothing
    s.rel += rel[static_cast<size_t>(r)];
    s.cos += cs[static_cast<size_t>(r)];
    ++s.n;
  }
}

std::vector<LayerDrift> DriftMeter::result() const {
  std::vector<LayerDrift> out;
  for (size_t l = 0; l < sums_.size(); ++l) {
    const Sums& s = sums_[l];
    if (s.n == 0) continue;
    out.push_back({static_cast<int64_t>(l), s.rel / static_cast<double>(s.n),
                   s.cos / static_cast<double>(s.n)});
  }
  return out;
}

}  // namespace dsq::model
