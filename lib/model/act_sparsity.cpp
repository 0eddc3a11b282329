#include "lib/model/act_sparsity.h"

#include <cmath>

namespace dsq::model {

namespace {

constexpr const char* kNames[] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                  "ffn_gate", "ffn_up", "ffn_down"};

const Linear& linear_of(const BlockWeights& b, int i) {
  const Linear* all[] = {&b.attn_q,   &b.attn_k, &b.attn_v,   &b.attn_output,
                         &b.ffn_gate, &b.ffn_up, &b.ffn_down};
  return *all[i];
}

int linear_index(std::string_view name) {
  for (int i = 0; i < 7; ++i)
    if (name == kNames[i]) return i;
  return -1;
}

}  // namespace

SparsityMeter::SparsityMeter(const Model& m, Observer* next) : next_(next) {
  const int64_t n_layers = m.config().n_layers;
  index_.assign(static_cast<size_t>(n_layers), std::vector<int64_t>(7, -1));
  for (int64_t l = 0; l < n_layers; ++l)
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_of(m.block(l), i);
      if (lin.empty() || lin.act_threshold() <= 0.0f) continue;
      index_[static_cast<size_t>(l)][static_cast<size_t>(i)] = static_cast<int64_t>(entries_.size());
      entries_.push_back(LinearSparsity{l, kNames[i], lin.act_threshold(), 0, 0});
    }
}

double SparsityMeter::overall() const {
  int64_t z = 0, n = 0;
  for (const auto& e : entries_) z += e.zeros, n += e.total;
  return n ? static_cast<double>(z) / static_cast<double>(n) : 0.0;
}

void SparsityMeter::on_linear_input(int64_t layer, std::string_view name, ActView x) {
  const int i = linear_index(name);
  if (layer >= 0 && layer < static_cast<int64_t>(index_.size()) && i >= 0) {
    if (const int64_t k = index_[static_cast<size_t>(layer)][static_cast<size_t>(i)]; k >= 0) {
      LinearSparsity& e = entries_[static_cast<size_t>(k)];
      const int64_t n = x.rows * x.cols;
      int64_t zeros = 0;
#pragma omp parallel for schedule(static) reduction(+ : zeros) if (n > (1 << 16))
      for (int64_t j = 0; j < n; ++j) zeros += !(std::fabs(x.data[j]) > e.threshold);
      e.zeros += zeros;
      e.total += n;
    }
  }
  if (next_) next_->on_linear_input(layer, name, x);
}

void SparsityMeter::on_linear_output(int64_t layer, std::string_view name, ActView y) {
  if (next_) next_->on_linear_output(layer, name, y);
}
void SparsityMeter::on_block_input(int64_t layer, ActView h) {
  if (next_) next_->on_block_input(layer, h);
}
void SparsityMeter::on_block_output(int64_t layer, ActView h) {
  if (next_) next_->on_block_output(layer, h);
}

}  // namespace dsq::model
