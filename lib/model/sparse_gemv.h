// Activation sparsity at inference (TEAL-style, Liu et al. 2024): entries of a linear's input with
// |x_j| <= t are zeroed by a fixed per-linear threshold t (no per-token sort), and single-token
// decoding skips the weight columns W[:, j] of the zeroed entries.
//
// Why a transposed copy: for y = W x with W [n_out, n_in] row-major, column W[:, j] is strided, so
// skipping it saves no memory traffic (every cache line of a row still holds live columns at 50%
// random sparsity). With W^T [n_in, n_out] row-major ("in-major") column j is one contiguous row,
// and y += x_j * W^T[j, :] over the nonzero j reads only (1 - sparsity) of the weight bytes. A
// decoding GEMV is memory bound, so the time falls with the bytes read.
#pragma once

#include <cstdint>

#include "lib/core/tensor.h"

namespace dsq::model {

// out[j] = |x[j]| > t ? x[j] : 0 for j < n (out may alias x). Returns the number of nonzeros kept.
int64_t threshold_activations(const float* x, int64_t n, float t, float* out);

// y[n_out] = W x for W given as wt = W^T [n_in, n_out] row-major; zero entries of x[n_in] are
// skipped (their rows of wt are never read). The sum over j runs in ascending j in a fixed
// grouping, so the result is identical for any thread count.
void sparse_gemv_t(const float* wt, int64_t n_in, int64_t n_out, const float* x, float* y);

// Reference dense GEMV for row-major W [n_out, n_in]: y = W x (vectorised dot per row).
void dense_gemv(const float* w, int64_t n_out, int64_t n_in, const float* x, float* y);

// W [rows, cols] f32 -> W^T [cols, rows] f32 (owned), blocked for cache reuse.
Tensor transpose_f32(const Tensor& w);

}  // namespace dsq::model
