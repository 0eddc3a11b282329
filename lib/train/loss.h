// Distillation losses on the teacher's soft labels, one token row at a time.
//
// The teacher is represented by its top-k tokens (ids and log-probabilities at temperature tau)
// and the probability of everything else, p_rest: k + 1 "buckets". The student's distribution at
// the same temperature, q = softmax(z / tau), is grouped the same way (q_rest = the sum of q over
// the tokens outside the top k). The loss is a divergence between the two bucket distributions,
// multiplied by tau^2 (so gradients keep their size across temperatures, as in Hinton et al.):
//
//   forward KL (default)   KL(p || q) = sum_b p_b log(p_b / q_b)                 mean-seeking
//   reverse KL             KL(q || p) = sum_b q_b log(q_b / p_b)                 mode-seeking
//   generalized JSD (GKD)  beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q
//
// With k = vocab (p_rest = 0) every loss is the exact full-vocabulary one. For a loss with
// dL/dq_b = a_b, the gradient through the softmax is dL/dz_j = q_j (a_{b(j)} - sum_b q_b a_b) / tau
// (times tau^2), b(j) the bucket of token j; distill_row computes it in f64.
#pragma once

#include <cstdint>
#include <string>

namespace dsq::train {

enum class LossKind { kForwardKl, kReverseKl, kJsd };

// "forward-kl", "reverse-kl", "jsd"; parse throws UsageError naming the accepted values.
LossKind parse_loss(const std::string& s);
const char* loss_name(LossKind k);

struct LossSpec {
  LossKind kind = LossKind::kForwardKl;
  double temperature = 1.0;
  double beta = 0.5;  // JSD only, in (0, 1)
};

// The teacher's side of one row: k ids (distinct, in [0, vocab)), their log-probabilities at the
// spec's temperature, and the remaining probability mass.
struct TeacherRow {
  const int32_t* ids = nullptr;
  const float* logp = nullptr;
  int64_t k = 0;
  double p_rest = 0.0;
};

// Loss of one row for student logits z[vocab]; when dz is non-null it receives
// grad_scale * dL/dz (overwritten). T is float (training) or double (gradient checks).
template <class T>
double distill_row(const T* z, int64_t vocab, const TeacherRow& t, const LossSpec& spec, T* dz,
                   double grad_scale);

// The teacher row of logits[vocab] at temperature tau: the k largest (ties to the lower id), in
// descending order, their log-probabilities and the rest's probability. k >= vocab keeps every id
// (the exact loss).
void teacher_topk(const float* logits, int64_t vocab, int64_t k, double temperature, int32_t* ids,
                  float* logp, double* p_rest);

}  // namespace dsq::train
