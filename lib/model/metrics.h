// Drift and quality metrics of one model against the data and against a reference model:
// per-token NLL, KL(ref || model) from full-vocabulary log-softmax in f64, top-1 agreement, and
// per-block hidden-state drift (relative L2 error and cosine similarity).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lib/model/observer.h"

namespace dsq::model {

// out[i] = logits[i] - logsumexp(logits), in f64 (fixed summation order).
void log_softmax(const float* logits, int64_t n, double* out);
// Index of the largest logit (the first one on ties).
int64_t argmax(const float* x, int64_t n);

struct TokenScore {
  double nll = 0.0;      // -log p_model(target)
  double ref_nll = 0.0;  // -log p_ref(target) (0 without a reference)
  double kld = 0.0;      // KL(ref || model) = sum_i p_ref_i (log p_ref_i - log p_model_i)
  bool top1_agree = true;  // argmax(model) == argmax(ref)
};

// Scores B windows of T tokens (tokens row-major [B, T], logits [B*T, vocab]): position t of a
// window predicts tokens[t+1], for t in [first, T-1), so each window yields T-1-first scores,
// window-major. `ref_logits` may be null (then ref_nll, kld and top1_agree keep their defaults).
// Deterministic for any thread count.
std::vector<TokenScore> score_windows(const float* logits, const float* ref_logits,
                                      std::span<const int32_t> tokens, int64_t B, int64_t T,
                                      int64_t vocab, int64_t first = 0);

struct DistStats {
  double mean = 0.0, stderr_ = 0.0, p99 = 0.0, max = 0.0;
};
// Mean, standard error of the mean (sample std / sqrt(n)), 99th percentile (linear interpolation
// between order statistics, like numpy's default) and maximum. Zeros for an empty input.
DistStats dist_stats(std::vector<double> v);

// Aggregates TokenScores in arrival order (deterministic sums).
class MetricsAccumulator {
 public:
  void add(std::span<const TokenScore> scores);
  int64_t count() const { return n_; }
  double mean_nll() const { return n_ ? nll_ / static_cast<double>(n_) : 0.0; }
  double perplexity() const;
  double ref_perplexity() const;
  double top1_agreement() const { return n_ ? static_cast<double>(agree_) / n_ : 0.0; }
  DistStats kld() const { return dist_stats(kld_); }

 private:
  int64_t n_ = 0, agree_ = 0;
  double nll_ = 0.0, ref_nll_ = 0.0;
  std::vector<double> kld_;
};

// Observer that keeps a copy of every block's output hidden state of the last forward pass.
class BlockOutputRecorder : public Observer {
 public:
  void on_block_output(int64_t layer, ActView h) override;
  // The recorded output of `layer` ([rows, d_model]); empty if none.
  const std::vector<float>& output(int64_t layer) const;
  void clear() { outputs_.clear(); }

 private:
  std::vector<std::vector<float>> outputs_;
};

struct LayerDrift {
  int64_t layer = 0;
  double rel_l2 = 0.0;  // mean over scored tokens of ||h - h_ref|| / ||h_ref||
  double cosine = 0.0;  // mean over scored tokens of cos(h, h_ref)
};

// Observer that compares every block output with a reference recorded on the same inputs
// (run the reference with `ref` first, then this model). Only rows of scored positions count:
// with windows of T tokens, rows r with r % T < T - 1.
class DriftMeter : public Observer {
 public:
  DriftMeter(const BlockOutputRecorder& ref, int64_t T) : ref_(ref), T_(T) {}
  void on_block_output(int64_t layer, ActView h) override;
  std::vector<LayerDrift> result() const;

 private:
  struct Sums {
    double rel = 0.0, cos = 0.0;
    int64_t n = 0;
  };
  const BlockOutputRecorder& ref_;
  int64_t T_;
  std::vector<Sums> sums_;
};

}  // namespace dsq::model
