// Quantized execution: y = x * W^T for a grouped-integer weight W (DType::kQInt, logical shape
// [n_out, n_in], layout in lib/core/quant_layout.h) and f32 activations, without materialising
// a full-precision copy of W. The reference engine calls this for every kQInt linear.
#pragma once

#include <cstdint>

#include "lib/core/tensor.h"

namespace dsq::quant {

// x: [m, n_in] row-major f32; y: [m, n_out] row-major f32 (overwritten).
// Deterministic for any thread count. m == 1 takes the GEMV path.
void qmatmul(const Tensor& w, const float* x, int64_t m, float* y);

// Dequantise rows [r0, r1) of W into out[(r1-r0), n_in] f32.
void dequantize_rows(const Tensor& w, int64_t r0, int64_t r1, float* out);

}  // namespace dsq::quant
