#include "lib/compress/prune_stats.h"

#include <cmath>

#include "lib/core/error.h"

namespace dsq::compress {

void ChannelStats::add(model::ActView x) {
  if (sum.empty()) {
    sum.assign(static_cast<size_t>(x.cols), 0.0);
    sum_sq.assign(static_cast<size_t>(x.cols), 0.0);
  }
  DSQ_ASSERT(x.cols == channels(), "channel count changed from %lld to %lld",
             static_cast<long long>(channels()), static_cast<long long>(x.cols));
  // Parallel over channels: each channel sums its rows in order, so the result is thread-count
  // independent.
#pragma omp parallel for schedule(static) if (x.rows * x.cols > (1 << 16))
  for (int64_t j = 0; j < x.cols; ++j) {
    double s = 0.0, s2 = 0.0;
    for (int64_t r = 0; r < x.rows; ++r) {
      const double v = x.data[r * x.cols + j];
      s += v;
      s2 += v * v;
    }
    sum[static_cast<size_t>(j)] += s;
    sum_sq[static_cast<size_t>(j)] += s2;
  }
  rows += x.rows;
}

double ChannelStats::mean(int64_t j) const {
  return rows ? sum[static_cast<size_t>(j)] / static_cast<double>(rows) : 0.0;
}

double ChannelStats::l2(int64_t j) const { return std::sqrt(sum_sq[static_cast<size_t>(j)]); }

double ChannelStats::variance(int64_t j) const {
  if (rows < 2) return 0.0;
  const double m = mean(j);
  const double v = (sum_sq[static_cast<size_t>(j)] - static_cast<double>(rows) * m * m) /
                   static_cast<double>(rows - 1);
  return v > 0.0 ? v : 0.0;
}

double PruneStats::influence(int64_t l) const {
  const auto i = static_cast<size_t>(l);
  if (i >= cos_rows.size() || cos_rows[i] == 0) return 0.0;
  return 1.0 - cos_sum[i] / static_cast<double>(cos_rows[i]);
}

PruneStatsObserver::PruneStatsObserver(const ArchInfo& arch, int64_t n_layers) {
  // The linears whose inputs are the prunable channels (Llama: attn_output, ffn_down).
  const ArchTensor* heads = arch.consumer_of(Dim::kQ);
  const ArchTensor* ffn = arch.consumer_of(Dim::kFfn);
  if (heads) heads_consumer_ = heads->short_name();
  if (ffn) ffn_consumer_ = ffn->short_name();
  const auto n = static_cast<size_t>(n_layers);
  stats_.attn_out.resize(n);
  stats_.ffn_out.resize(n);
  stats_.cos_sum.assign(n, 0.0);
  stats_.cos_rows.assign(n, 0);
}

void PruneStatsObserver::on_linear_input(int64_t layer, std::string_view name, model::ActView x) {
  if (layer < 0) return;
  if (name == heads_consumer_) stats_.attn_out.at(static_cast<size_t>(layer)).add(x);
  if (name == ffn_consumer_) stats_.ffn_out.at(static_cast<size_t>(layer)).add(x);
}

void PruneStatsObserver::on_block_input(int64_t /*layer*/, model::ActView h) {
  block_in_.assign(h.data, h.data + h.rows * h.cols);
}

void PruneStatsObserver::on_block_output(int64_t layer, model::ActView h) {
  DSQ_ASSERT(static_cast<int64_t>(block_in_.size()) == h.rows * h.cols,
             "block output without a matching input");
  double s = 0.0;  // rows summed in order
  for (int64_t r = 0; r < h.rows; ++r) {
    const float* a = block_in_.data() + r * h.cols;
    const float* b = h.row(r);
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int64_t j = 0; j < h.cols; ++j) {
      ab += static_cast<double>(a[j]) * b[j];
      aa += static_cast<double>(a[j]) * a[j];
      bb += static_cast<double>(b[j]) * b[j];
    }
    s += aa > 0.0 && bb > 0.0 ? ab / std::sqrt(aa * bb) : 1.0;
  }
  stats_.cos_sum.at(static_cast<size_t>(layer)) += s;
  stats_.cos_rows.at(static_cast<size_t>(layer)) += h.rows;
}

}  // namespace dsq::compress
