#include "lib/model/act_sparsity.h"

#include <cmath>

namespace dsq::model {

SparsityMeter::SparsityMeter(const Model& m, Observer* next) : next_(next) {
  const int64_t n_layers = m.config().n_layers;
  index_.resize(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l)
    for (const auto& [name, lin] : m.block(l).linears) {
      if (lin.empty() || lin.act_threshold() <= 0.0f) continue;
      index_[static_cast<size_t>(l)].emplace_back(name, static_cast<int64_t>(entries_.size()));
      entries_.push_back(LinearSparsity{l, std::string(name), lin.act_threshold(), 0, 0});
    }
}

double SparsityMeter::overall() const {
  int64_t z = 0, n = 0;
  for (const auto& e : entries_) z += e.zeros, n += e.total;
  return n ? static_cast<double>(z) / static_cast<double>(n) : 0.0;
}

void SparsityMeter::on_linear_input(int64_t layer, std::string_view name, ActView x) {
  if (layer >= 0 && layer < static_cast<int64_t>(index_.size())) {
    for (const auto& [lname, k] : index_[static_cast<size_t>(layer)]) {
      if (lname != name) continue;
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
