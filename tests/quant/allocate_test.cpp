#include "lib/quant/allocate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace dsq::quant {
namespace {

// The exact optimum by enumeration (small instances only).
double brute_force(const std::vector<AllocItem>& items, int64_t max_bits) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> c(items.size(), 0);
  for (;;) {
    int64_t bits = 0;
    double cost = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      bits += items[i].options[c[i]].bits;
      cost += items[i].options[c[i]].cost;
    }
    if (bits <= max_bits) best = std::min(best, cost);
    size_t i = 0;
    while (i < items.size() && ++c[i] == items[i].options.size()) c[i++] = 0;
    if (i == items.size()) return best;
  }
}

TEST(Allocate, SpendsBitsWhereTheySaveMost) {
  // Two linears of 1000 weights: A is sensitive, B is not. Options: 3, 4 or 8 bits.
  const auto item = [](double c3, double c4, double c8) {
    return AllocItem{{{3000, c3}, {4000, c4}, {8000, c8}}};
  };
  const std::vector<AllocItem> items = {item(100, 40, 1), item(5, 3, 0.1)};
  EXPECT_EQ(min_allocation_bits(items), 6000);
  EXPECT_EQ(max_allocation_bits(items), 16000);
  EXPECT_FALSE(allocate_bits(items, 5999).has_value());
  const auto a7 = allocate_bits(items, 7000);
  ASSERT_TRUE(a7);
  EXPECT_EQ(a7->choice, (std::vector<size_t>{1, 0}));  // A to 4 bits, B stays at 3
  EXPECT_EQ(a7->bits, 7000);
  EXPECT_DOUBLE_EQ(a7->cost, 45.0);
  const auto a11 = allocate_bits(items, 11000);
  ASSERT_TRUE(a11);
  EXPECT_EQ(a11->choice, (std::vector<size_t>{2, 0}));  // A to 8 bits before B moves
  EXPECT_DOUBLE_EQ(a11->cost, 6.0);
  const auto all = allocate_bits(items, 16000);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->choice, (std::vector<size_t>{2, 2}));
}

TEST(Allocate, DominatedAndOffHullOptionsAreHandled) {
  // Option 1 costs more bits for more cost (dominated): never chosen. Option 2 is off the hull
  // between 0 and 3, but phase 2 takes it when exactly its bits are left.
  const std::vector<AllocItem> items = {
      {{{100, 10.0}, {150, 12.0}, {150, 9.5}, {200, 1.0}}}};
  const auto a = allocate_bits(items, 160);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->choice[0], 2u);
  EXPECT_EQ(allocate_bits(items, 200)->choice[0], 3u);
  EXPECT_EQ(allocate_bits(items, 149)->choice[0], 0u);
}

// Items like a model's linears: options at 2, 3, 4, 8 and 16 bits (some missing), costs falling
// about 4x per bit with a per-item sensitivity over e^-3 .. e^3, and a budget anywhere between
// the smallest and the largest allocation.
std::vector<AllocItem> random_items(std::mt19937_64& rng, size_t n) {
  std::vector<AllocItem> items(n);
  for (auto& it : items) {
    const int64_t params = 64 + static_cast<int64_t>(rng() % 512);
    const double sens = std::exp(std::uniform_real_distribution<>(-3, 3)(rng));
    for (int bits : {2, 3, 4, 8, 16}) {
      if (rng() % 4 == 0 && !it.options.empty()) continue;
      const double noise = std::uniform_real_distribution<>(0.7, 1.3)(rng);
      it.options.push_back({params * bits + static_cast<int64_t>(rng() % 40),
                            bits == 16 ? 0.0 : sens * noise * std::pow(4.0, -bits)});
    }
  }
  return items;
}

int64_t random_budget(std::mt19937_64& rng, const std::vector<AllocItem>& items) {
  const int64_t lo = min_allocation_bits(items), hi = max_allocation_bits(items);
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

void expect_consistent(const std::vector<AllocItem>& items, const Allocation& a, int64_t budget) {
  ASSERT_LE(a.bits, budget);
  int64_t bits = 0;
  double cost = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    bits += items[i].options[a.choice[i]].bits;
    cost += items[i].options[a.choice[i]].cost;
  }
  ASSERT_EQ(bits, a.bits);
  ASSERT_DOUBLE_EQ(cost, a.cost);
}

TEST(Allocate, OptimalOnSmallInstances) {
  std::mt19937_64 rng(7);
  for (int t = 0; t < 300; ++t) {
    const auto items = random_items(rng, 1 + rng() % 6);
    const int64_t budget = random_budget(rng, items);
    const auto a = allocate_bits(items, budget);
    ASSERT_TRUE(a);
    expect_consistent(items, *a, budget);
    // The spare bits are below kAllocDpUnits here, so the DP is exact.
    ASSERT_NEAR(a->cost, brute_force(items, budget), 1e-12 * (1 + a->cost)) << "trial " << t;
  }
}

TEST(Allocate, GreedyAloneIsCloseOnManyItemsAndCoarseUnitsStayWithinBudget) {
  std::mt19937_64 rng(11);
  double sum_ratio = 0, worst = 1;
  const int trials = 40;
  for (int t = 0; t < trials; ++t) {
    const auto items = random_items(rng, 200);
    const int64_t budget = random_budget(rng, items);
    const auto g = allocate_bits(items, budget, /*max_dp_work=*/0);
    const auto d = allocate_bits(items, budget);  // spare bits > kAllocDpUnits: coarse units
    ASSERT_TRUE(g && d);
    expect_consistent(items, *g, budget);
    expect_consistent(items, *d, budget);
    ASSERT_LE(d->cost, g->cost);  // the better of the two is returned
    const double r = d->cost > 0 ? g->cost / d->cost : 1.0;
    sum_ratio += r;
    worst = std::max(worst, r);
  }
  std::printf("greedy / best over 200 items: mean %.4f, worst %.4f\n", sum_ratio / trials, worst);
  EXPECT_LT(sum_ratio / trials, 1.02);
}

}  // namespace
}  // namespace dsq::quant
