// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", Algorithm 1): quantize W [rows, cols] column by column,
// spreading each column's rounding error onto the columns not yet quantized so that the layer
// output error ||W X - Q X||^2 = tr(E H E^T), E = W - Q, H = X^T X, stays small.
//
// Update equations (H = X^T X over the calibration inputs of this linear, [cols, cols]):
//   dead columns : H_ii == 0 (input channel never active) -> H_ii = 1, W[:, i] = 0
//   damping      : H += lambda I, lambda = damp * mean(diag H)   (raised x10 on Cholesky failure)
//   act-order    : optional permutation of the columns by decreasing H_ii (quantize the most
//                  active inputs first); group parameters are static (fitted on the original
//                  columns before any update), so codes stay in the original column order and a
//                  column's group is c / G: the output needs no reordering at load.
//   U            = upper Cholesky factor of H^{-1} (H^{-1} = U^T U)
//   for column i (in processing order):
//     q_i      = dequant(quant(w_i))                 with the params of (row, group of column i)
//     e_i      = (w_i - q_i) / U_ii                  [rows]
//     w_j     -= e_i * U_ij        for j > i         (OBS update, eq. 3 with the Cholesky rows)
//     loss    += (w_i - q_i)^2 / U_ii^2              (= the output-error increase, eq. 2)
//   Lazy batches (block B): the update is applied eagerly inside a block of B columns and, after
//   the block, to all later columns at once: W[:, i2:] -= E[:, i1:i2] U[i1:i2, i2:] (one GEMM).
//   Without act-order, group parameters are fitted when the first column of a group is reached,
//   on the weights updated by every column before it (the reference behaviour; B is rounded so
//   that a group never straddles a block boundary it would read stale columns across);
//   per-channel params are fitted once on the whole row.
// Rows are independent inside a block, so the column loop runs in parallel over rows, and the
// result is byte-identical for any thread count.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lib/core/tensor.h"

namespace dsq::quant {

struct GptqOptions {
  double damp = 0.01;      // lambda as a fraction of mean(diag H)
  int64_t block = 128;     // lazy-batch width B
  bool act_order = false;  // process columns by decreasing H_ii (static groups)
  bool mse_clip = false;   // clipping search when fitting group params (rtn.h fit_group)
  bool report_rtn = true;  // also measure RTN's error under the same H (for the report)
  std::string name;        // tensor name, for warnings
};

struct GptqStats {
  // Output errors tr(E H E^T) on the calibration inputs (with the undamped H), and the reference
  // tr(W H W^T) = ||W X||^2: relative errors are err / norm.
  double norm = 0.0;
  double err_gptq = 0.0;
  double err_rtn = 0.0;    // 0 unless report_rtn
  double damp_used = 0.0;  // the damping fraction finally used (>= options.damp)
  int64_t dead_cols = 0;
  double seconds = 0.0;
  double rel_gptq() const { return norm > 0 ? err_gptq / norm : 0.0; }
  double rel_rtn() const { return norm > 0 ? err_rtn / norm : 0.0; }
};

// What GPTQ's updates need from H: the processing order and the upper Cholesky factor U of
// (P H P^T + lambda I)^-1, in f32. It depends only on H and the options (damp, act_order), so the
// linears of one group (which share their input) share one factorization: the O(cols^3) step is
// the largest cost of GPTQ on wide inputs (a DeepSeek-V3 expert's gate and up: cols 7168).
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using FactorBuffer = std::unique_ptr<float[], FreeDeleter>;  // malloc'd: narrowed and shrunk in place
struct GptqFactor {
  int64_t cols = 0;
  std::vector<int64_t> perm;  // processing order (identity without act_order)
  FactorBuffer u;             // [cols, cols]
  double damp_used = 0.0;
};
// Throws ShapeError on a non-finite H and Error when H stays indefinite after damping was raised
// to 100 x mean(diag H).
GptqFactor gptq_factor(const double* h, int64_t cols, const GptqOptions& opts);

// w: [rows, cols] f32 row-major; h: [cols, cols] f64 symmetric (any positive multiple of X^T X;
// the mean over tokens is what calibration stores). Returns the kQInt tensor for d (layout of
// lib/core/quant_layout.h). Throws ShapeError on non-finite weights or H, ConfigError for an
// unsupported scheme, and Error when H stays indefinite after damping was raised to 100 x mean.
// `factor`, when given, is gptq_factor(h, cols, opts) computed earlier (for another linear of the
// same group); the result is the same bytes as without it. `h_f32`, when given, is h in f32 for
// the output errors of `stats` (saves a cols^2 copy).
Tensor gptq_quantize(const float* w, int64_t rows, int64_t cols, const double* h,
                     const QuantDesc& d, const GptqOptions& opts, GptqStats* stats = nullptr,
                     const GptqFactor* factor = nullptr, const float* h_f32 = nullptr);

// Rows the reported output errors are measured on (kOutputErrorRows below).
inline constexpr int64_t kOutputErrorRows = 512;

// tr(A H A^T) for A [rows, cols] f32 and H [cols, cols] f32, accumulated in f64 per row and then
// in row order (deterministic). The output error of a weight perturbation A on inputs with
// second moment H. With max_rows > 0 and rows > max_rows, only max_rows evenly spaced rows
// (row floor((k + 1/2) rows / max_rows)) are measured and the sum is scaled by rows / max_rows:
// an estimate at a fraction of the cost (rows x cols^2 multiply-adds exactly), used for the
// reported errors of wide linears; ratios of two estimates use the same rows.
double hessian_quadratic(const float* a, int64_t rows, int64_t cols, const float* h,
                         int64_t max_rows = 0);

}  // namespace dsq::quant
