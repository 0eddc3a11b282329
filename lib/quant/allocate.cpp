#include "lib/quant/allocate.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "lib/core/error.h"

namespace dsq::quant {
namespace {

// The cheapest option among those with the fewest bits.
size_t smallest_option(const AllocItem& it) {
  DSQ_ASSERT(!it.options.empty(), "allocation item without options");
  size_t best = 0;
  for (size_t k = 1; k < it.options.size(); ++k) {
    const AllocOption &o = it.options[k], &b = it.options[best];
    if (o.bits < b.bits || (o.bits == b.bits && o.cost < b.cost)) best = k;
  }
  return best;
}

// One move along an item's lower convex hull: from option `from` to `to`, saving `saved` cost for
// `extra` bits.
struct Step {
  size_t item = 0, order = 0;  // order: position along the item's hull
  size_t from = 0, to = 0;
  int64_t extra = 0;
  double saved = 0.0;
};

// The hull from the smallest option: each step takes the option of most cost saved per extra bit
// (ties: fewer bits, then lower index) among those that cost less.
void hull_steps(const AllocItem& it, size_t item, std::vector<Step>* out) {
  size_t cur = smallest_option(it);
  for (size_t order = 0;; ++order) {
    const AllocOption& c = it.options[cur];
    std::optional<size_t> next;
    double best_rate = 0.0;
    for (size_t k = 0; k < it.options.size(); ++k) {
      const AllocOption& o = it.options[k];
      if (o.bits <= c.bits || o.cost >= c.cost) continue;
      const double rate = (c.cost - o.cost) / static_cast<double>(o.bits - c.bits);
      if (!next || rate > best_rate ||
          (rate == best_rate && o.bits < it.options[*next].bits)) {
        next = k;
        best_rate = rate;
      }
    }
    if (!next) return;
    out->push_back({item, order, cur, *next, it.options[*next].bits - c.bits,
                    c.cost - it.options[*next].cost});
    cur = *next;
  }
}

}  // namespace

int64_t min_allocation_bits(const std::vector<AllocItem>& items) {
  int64_t bits = 0;
  for (const auto& it : items) bits += it.options[smallest_option(it)].bits;
  return bits;
}

int64_t max_allocation_bits(const std::vector<AllocItem>& items) {
  int64_t bits = 0;
  for (const auto& it : items) {
    DSQ_ASSERT(!it.options.empty(), "allocation item without options");
    int64_t m = it.options.front().bits;
    for (const auto& o : it.options) m = std::max(m, o.bits);
    bits += m;
  }
  return bits;
}

namespace {

Allocation greedy(const std::vector<AllocItem>& items, int64_t max_bits) {
  Allocation a;
  a.choice.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) a.choice[i] = smallest_option(items[i]);
  for (size_t i = 0; i < items.size(); ++i) a.bits += items[i].options[a.choice[i]].bits;

  // Phase 1: every item's hull steps, most cost saved per bit first. Within an item the rates do
  // not increase along its hull, so the sort keeps each item's steps in order (the order key
  // breaks equal rates). A step that does not fit ends its item's walk.
  std::vector<Step> steps;
  for (size_t i = 0; i < items.size(); ++i) hull_steps(items[i], i, &steps);
  std::sort(steps.begin(), steps.end(), [](const Step& x, const Step& y) {
    // rate_x > rate_y  <=>  saved_x * extra_y > saved_y * extra_x (extras are positive)
    const double lx = x.saved * static_cast<double>(y.extra);
    const double ly = y.saved * static_cast<double>(x.extra);
    if (lx != ly) return lx > ly;
    return std::tie(x.item, x.order) < std::tie(y.item, y.order);
  });
  std::vector<bool> stopped(items.size(), false);
  for (const Step& s : steps) {
    if (stopped[s.item] || a.choice[s.item] != s.from) continue;
    if (a.bits + s.extra > max_bits) {
      stopped[s.item] = true;
      continue;
    }
    a.choice[s.item] = s.to;
    a.bits += s.extra;
  }
  // Phase 2: the bits left, spent one move at a time on the largest saving that fits (any
  // option, hull or not).
  for (;;) {
    std::optional<std::pair<size_t, size_t>> best;
    double best_saved = 0.0;
    for (size_t i = 0; i < items.size(); ++i) {
      const AllocOption& c = items[i].options[a.choice[i]];
      for (size_t k = 0; k < items[i].options.size(); ++k) {
        const AllocOption& o = items[i].options[k];
        if (o.cost >= c.cost || a.bits - c.bits + o.bits > max_bits) continue;
        if (c.cost - o.cost > best_saved) {
          best_saved = c.cost - o.cost;
          best = {i, k};
        }
      }
    }
    if (!best) break;
    const auto [i, k] = *best;
    a.bits += items[i].options[k].bits - items[i].options[a.choice[i]].bits;
    a.choice[i] = k;
  }
  return a;
}

// The DP of the header; nullopt when it would exceed max_work cells x options.
std::optional<Allocation> dynamic_programming(const std::vector<AllocItem>& items,
                                              int64_t max_bits, int64_t max_work) {
  const size_t n = items.size();
  std::vector<int64_t> base(n);
  int64_t spare = max_bits, options = 0;
  for (size_t i = 0; i < n; ++i) {
    base[i] = items[i].options[smallest_option(items[i])].bits;
    spare -= base[i];
    options += static_cast<int64_t>(items[i].options.size());
  }
  const int64_t unit = std::max<int64_t>(1, (spare + kAllocDpUnits - 1) / kAllocDpUnits);
  const int64_t cells = spare / unit + 1;
  if (options * cells > max_work) return std::nullopt;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> best(static_cast<size_t>(cells), 0.0), next(static_cast<size_t>(cells));
  std::vector<uint32_t> pick(n * static_cast<size_t>(cells));  // option of item i at cell c
  for (size_t i = 0; i < n; ++i) {
    const auto& opts = items[i].options;
    std::vector<int64_t> w(opts.size());
    for (size_t k = 0; k < opts.size(); ++k) w[k] = (opts[k].bits - base[i] + unit - 1) / unit;
    for (int64_t c = 0; c < cells; ++c) {
      double v = kInf;
      uint32_t arg = 0;
      for (size_t k = 0; k < opts.size(); ++k) {
        if (w[k] < 0 || w[k] > c) continue;
        const double x = best[static_cast<size_t>(c - w[k])] + opts[k].cost;
        if (x < v) {
          v = x;
          arg = static_cast<uint32_t>(k);
        }
      }
      next[static_cast<size_t>(c)] = v;
      pick[i * static_cast<size_t>(cells) + static_cast<size_t>(c)] = arg;
    }
    std::swap(best, next);
  }
  Allocation a;
  a.choice.resize(n);
  int64_t c = cells - 1;
  for (size_t i = n; i-- > 0;) {
    const uint32_t k = pick[i * static_cast<size_t>(cells) + static_cast<size_t>(c)];
    a.choice[i] = k;
    c -= (items[i].options[k].bits - base[i] + unit - 1) / unit;
  }
  return a;
}

void total(const std::vector<AllocItem>& items, Allocation* a) {
  a->bits = 0;
  a->cost = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    a->bits += items[i].options[a->choice[i]].bits;
    a->cost += items[i].options[a->choice[i]].cost;
  }
}

}  // namespace

std::optional<Allocation> allocate_bits(const std::vector<AllocItem>& items, int64_t max_bits,
                                        int64_t max_dp_work) {
  if (min_allocation_bits(items) > max_bits) return std::nullopt;
  Allocation a = greedy(items, max_bits);
  total(items, &a);
  if (max_dp_work > 0) {
    if (std::optional<Allocation> d = dynamic_programming(items, max_bits, max_dp_work)) {
      total(items, &*d);
      DSQ_ASSERT(d->bits <= max_bits, "allocation DP exceeded its budget");
      if (d->cost < a.cost) a = std::move(*d);
    }
  }
  return a;
}

}  // namespace dsq::quant
