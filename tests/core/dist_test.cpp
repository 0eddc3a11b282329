// lib/core/dist.h without a launcher: one rank, collectives are no-ops, and the work assignment
// is deterministic and balanced.
#include "lib/core/dist.h"

#include <gtest/gtest.h>

#include <numeric>

namespace dsq::dist {
namespace {

TEST(Dist, OneProcessWithoutALauncher) {
  EXPECT_EQ(rank(), 0);
  EXPECT_EQ(size(), 1);
  EXPECT_TRUE(is_root());
  std::string s = "unchanged";
  bcast(s, 0);
  EXPECT_EQ(s, "unchanged");
  barrier();
}

TEST(Dist, AssignIsDeterministicAndBalanced) {
  // Largest first to the least loaded rank, ties to the lower index and rank.
  EXPECT_EQ(assign({4, 3, 3, 2, 2}, 2), (std::vector<int>{0, 1, 1, 0, 0}));
  EXPECT_EQ(assign({1, 1, 1}, 1), (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(assign({5, 1}, 3), (std::vector<int>{0, 1}));
  // A block of Llama-7B-shaped linears (q, k, v, o: 4096^3; gate, up: 11008 x 4096^2; down:
  // 4096 x 11008^2) over 2 and 3 ranks: no rank carries more than the largest item above the mean.
  const double a = 4096.0 * 4096 * 4096, g = 11008.0 * 4096 * 4096, d = 4096.0 * 11008 * 11008;
  const std::vector<double> costs = {a, a, a, a, g, g, d};
  for (int n : {2, 3}) {
    const std::vector<int> owner = assign(costs, n);
    std::vector<double> load(static_cast<size_t>(n), 0);
    for (size_t i = 0; i < costs.size(); ++i) load[static_cast<size_t>(owner[i])] += costs[i];
    const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
    for (double l : load) EXPECT_LE(l, total / n + d);
    EXPECT_EQ(owner, assign(costs, n));
  }
}

}  // namespace
}  // namespace dsq::dist
