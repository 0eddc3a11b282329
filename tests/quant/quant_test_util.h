// Shared helpers for lib/quant tests: deterministic matrices and scheme/group iteration.
#pragma once

#include <omp.h>

#include <cfloat>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lib/quant/quant_types.h"
#include "lib/quant/rtn.h"

namespace dsq::quant::testing {

// Gaussian weights with a fixed seed (N(0, 0.02^2), typical of LLM linears).
inline std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

inline constexpr int64_t kRaggedCols[] = {172, 100, 256};

// Every (quantize-target scheme row, group size) pair the CLI accepts (storage-only rows such as
// block FP8 are tested in fp8_test.cpp).
struct Case {
  const QuantTraits* tr;
  uint32_t group;
  QuantDesc desc() const { return tr->desc(group); }
  std::string str() const { return scheme_name(desc()); }
};
inline std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (size_t i = 0; i < kNumQuantTypes; ++i) {
    if (!scheme_info(kQuantTraits[i].type).quantize_target()) continue;
    for (uint32_t g : kQuantGroupSizes) out.push_back({&kQuantTraits[i], g});
  }
  return out;
}

// Runs f with `n` OpenMP threads, restoring the previous count afterwards.
template <class F>
auto with_threads(int n, F&& f) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(n);
  auto r = f();
  omp_set_num_threads(prev);
  return r;
}

}  // namespace dsq::quant::testing
