// Synthetic models for tests and benchmarks: a WeightStore with canonical names, filled with
// deterministic pseudo-random weights (uniform with variance 1/fan_in, norms near 1), so any
// shape (realistic 1B-class widths, Qwen2 biases, non-uniform pruned layers) can be built in
// memory without files.
#pragma once

#include <cstdint>

#include "lib/core/weight_store.h"

namespace dsq::model {

// A small Llama config: d_model 64, 2 layers, 4 heads / 2 kv heads of 16, d_ff 96, vocab 128.
ModelConfig tiny_llama_config();

// Weights for config `c` (validated) stored as `dtype` (f32, f16 or bf16). The same seed gives the
// same bytes on every platform.
WeightStore make_synthetic_model(const ModelConfig& c, uint64_t seed, DType dtype = DType::kF32);

}  // namespace dsq::model
