#include "lib/compress/act_threshold.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lib/core/error.h"

namespace dsq::compress {

namespace {
constexpr int64_t kOctaves = AbsHistogram::kMaxExp - AbsHistogram::kMinExp;
constexpr int64_t kBins = kOctaves * AbsHistogram::kSubBins + 2;

// Bin of |v|: 0 below range, 1 + (octave, sub-bin) inside, kBins - 1 above.
int64_t bin_of(float v) {
  const float a = std::fabs(v);
  int e = 0;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  if (a == 0.0f || e - 1 < AbsHistogram::kMinExp) return 0;
  if (e - 1 >= AbsHistogram::kMaxExp) return kBins - 1;
  const auto sub = static_cast<int64_t>((m - 0.5f) * 2.0f * AbsHistogram::kSubBins);
  return 1 + (e - 1 - AbsHistogram::kMinExp) * AbsHistogram::kSubBins +
         std::min(sub, AbsHistogram::kSubBins - 1);
}

// Lower edge of bin b (1 <= b < kBins - 1).
double bin_low(int64_t b) {
  const int64_t k = b - 1;
  const int64_t oct = k / AbsHistogram::kSubBins, sub = k % AbsHistogram::kSubBins;
  return std::ldexp(1.0 + static_cast<double>(sub) / AbsHistogram::kSubBins,
                    static_cast<int>(oct + AbsHistogram::kMinExp));
}
}  // namespace

AbsHistogram::AbsHistogram() : bins_(static_cast<size_t>(kBins), 0) {}

void AbsHistogram::add(const float* x, int64_t n) {
  const int threads = n > (1 << 16) ? omp_get_max_threads() : 1;
  std::vector<std::vector<int64_t>> local(static_cast<size_t>(threads));
  int64_t nan = 0;
#pragma omp parallel num_threads(threads) reduction(+ : nan)
  {
    auto& h = local[static_cast<size_t>(omp_get_thread_num())];
    h.assign(static_cast<size_t>(kBins), 0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i])) {
        ++nan;
        continue;
      }
      ++h[static_cast<size_t>(bin_of(x[i]))];
    }
  }
  for (const auto& h : local)
    for (size_t b = 0; b < h.size(); ++b) bins_[b] += h[b];
  count_ += n - nan;
}

double AbsHistogram::quantile(double q) const {
  if (count_ == 0 || q <= 0.0) return 0.0;
  const double want = std::min(q, 1.0) * static_cast<double>(count_);
  double cum = 0.0;
  for (int64_t b = 0; b < kBins; ++b) {
    const double c = static_cast<double>(bins_[static_cast<size_t>(b)]);
    if (c > 0.0 && cum + c >= want) {
      if (b == 0) return 0.0;  // zeros and denormal-sized entries: nothing to interpolate
      if (b == kBins - 1) return std::ldexp(1.0, kMaxExp);
      const double lo = bin_low(b), hi = b + 1 < kBins - 1 ? bin_low(b + 1) : std::ldexp(1.0, kMaxExp);
      return lo + (hi - lo) * (want - cum) / c;
    }
    cum += c;
  }
  return std::ldexp(1.0, kMaxExp);
}

std::vector<std::string> parse_sparsify_targets(const ArchInfo& arch, std::string_view list) {
  // A group belongs to the sub-block of its linears; "attn"/"ffn" name all groups of one.
  auto part_of = [&](const LinearGroup& g) { return arch.find(g.linears.front())->part; };
  std::string valid = "attn, ffn";
  for (const auto& g : arch.linear_groups) valid += ", " + std::string(g.name);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string item(list.substr(pos, comma - pos));
    pos = comma + 1;
    std::vector<std::string> add;
    for (const auto& g : arch.linear_groups)
      if (g.name == item || (item == "attn" && part_of(g) == Part::kAttn) ||
          (item == "ffn" && part_of(g) == Part::kFfn))
        add.emplace_back(g.name);
    if (add.empty())
      throw UsageError("unknown sparsify target '" + item + "' (expected " + valid + ")");
    for (auto& g : add)
      if (std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
  }
  return out;
}

ThresholdObserver::ThresholdObserver(const ModelConfig& c, const std::vector<std::string>& groups) {
  for (const LinearGroup& g : require_arch(c.arch, "sparsify").linear_groups)
    if (std::find(groups.begin(), groups.end(), g.name) != groups.end())
      targets_.push_back(Target{g.linears.front(), g.linears});
}

void ThresholdObserver::on_linear_input(int64_t layer, std::string_view name, model::ActView x) {
  for (const Target& t : targets_)
    if (t.key == name) hist_[{layer, t.key}].add(x.data, x.rows * x.cols);
}

std::map<std::string, double> ThresholdObserver::thresholds(double ratio) const {
  std::map<std::string, double> out;
  for (const auto& [key, h] : hist_) {
    const double t = h.quantile(ratio);
    for (const Target& tg : targets_)
      if (tg.key == key.second)
        for (auto lin : tg.linears) out[linear_name(key.first, lin)] = t;
  }
  return out;
}

}  // namespace dsq::compress
