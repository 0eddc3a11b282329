// Mixed precision by budget: choose one option per item (a linear's scheme, or keeping it in
// float) so that the summed predicted cost is smallest while the summed stored bits stay within a
// budget: a multiple-choice knapsack. Two solvers, the better result wins:
//   - greedy: each item's lower convex hull of (bits, cost) walked in order of cost saved per bit
//     (the path of the Lagrangian relaxation as its multiplier falls), then the bits left filled
//     by the best single moves that still fit;
//   - dynamic programming over the bits above every item's smallest option, in units of
//     ceil(spare / kAllocDpUnits) bits with each option's bits rounded up (so its result always
//     fits; exact when the spare bits are at most kAllocDpUnits), when items x options x units
//     stays within max_dp_work.
// On small random instances the greedy alone is on average 5-9% above the optimum (a large gap
// where the budget falls between two hull points of an expensive item); the DP closes it. Models
// with tens of thousands of linears (DeepSeek-R1's experts) use the greedy, whose gap shrinks
// with the number of items. Deterministic: ties go to the lower item index and option.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace dsq::quant {

struct AllocOption {
  int64_t bits = 0;   // stored bits of the item under this option (codes + scales + zeros)
  double cost = 0.0;  // predicted cost (e.g. tr(E H E^T)), >= 0
};

struct AllocItem {
  std::vector<AllocOption> options;  // at least one
};

struct Allocation {
  std::vector<size_t> choice;  // per item: the index of its option
  int64_t bits = 0;            // summed bits of the chosen options
  double cost = 0.0;           // summed cost of the chosen options
};

// The fewest bits any allocation needs (every item at its smallest option).
int64_t min_allocation_bits(const std::vector<AllocItem>& items);
// The most bits any allocation takes (every item at its largest option).
int64_t max_allocation_bits(const std::vector<AllocItem>& items);

inline constexpr int64_t kAllocDpUnits = 1 << 15;

// The allocation of at most max_bits described above; nullopt when even the smallest options
// exceed max_bits. Items must have at least one option (asserted). max_dp_work = 0: greedy only.
std::optional<Allocation> allocate_bits(const std::vector<AllocItem>& items, int64_t max_bits,
                                        int64_t max_dp_work = int64_t{1} << 30);

}  // namespace dsq::quant
