// AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-aware Weight Quantization for
// LLM Compression and Acceleration"): the two searches, on plain float arrays. Folding the scales
// into a model is lib/model/fold.h; running the searches block by block is calibration/pipeline.
//
// Scale search, for a group of linears W_k [rows_k, n] that read the same input x [n]:
//   m_j        = mean_t |x_tj|                                  (the input's abs-mean, per channel)
//   s(alpha)_j = max(m_j, 1e-4)^alpha, normalised by sqrt(max_j s_j * min_j s_j)
//   Q_k(s)     = RTN(W_k diag(s)) diag(s)^-1                    (min/max group parameters)
//   err(alpha) = sum_k tr((W_k - Q_k(s)) H (W_k - Q_k(s))^T)     H = mean_t x_t x_t^T
//   alpha*     = argmin over alpha in {0, 1/grid, ..., (grid-1)/grid} (ties keep the smaller)
// err is the squared output error of the group's linears on the calibration inputs; alpha = 0
// (s = 1) is plain RTN, so the chosen scales never do worse than RTN on this objective. The
// reference measures the error at the output of the attention/MLP module instead; the Hessian form
// needs no extra forward passes and costs rows * n^2 per candidate (one GEMM).
// Channels may be tied (GQA: one value channel feeds several heads' output channels, so the scale
// folded into it must be shared): `tie` maps each input channel to a scale slot; m is averaged over
// a slot's channels and every channel of a slot gets the slot's scale.
//
// Clip search, for one linear W' [rows, cols] (already scaled) and its input's H' [cols, cols]:
// per output row r and group g, with a = max |W'_rg| and candidate ratios p in {1, 1 - 1/clip_grid,
// ..., > 1 - max_shrink}, the weights are clamped to [max(min W'_rg, -p a), min(max W'_rg, p a)],
// min/max-quantized, and the p minimising d^T H'_gg d (d = W'_rg - Q_rg, H'_gg the group's diagonal
// block of H': the group's share of the output error) is kept. p = 1 is plain RTN.
#pragma once

#include <cstdint>
#include <vector>

#include "lib/core/tensor.h"
#include "lib/quant/rtn.h"

namespace dsq::quant {

struct AwqOptions {
  int grid = 20;            // alpha candidates: i / grid, i in [0, grid)
  int clip_grid = 20;       // clip ratios 1 - i / clip_grid ...
  double max_shrink = 0.5;  // ... for i < max_shrink * clip_grid (the reference's 20 and 0.5)
};

// One linear of a group: w [rows, n] f32 row-major (n = the group's input width).
struct AwqLinear {
  const float* w = nullptr;
  int64_t rows = 0;
};

// s(alpha) for the abs-means m [n] (see the header comment); tie (nullable, [n]) maps channels to
// slots in [0, n_slots); the result is per channel [n].
std::vector<float> awq_scales(const double* m, int64_t n, double alpha, const int64_t* tie = nullptr,
                              int64_t n_slots = 0);

struct AwqScaleResult {
  double alpha = 0.0;
  std::vector<float> scales;  // [n] per input channel (tied channels share a value)
  double err = 0.0;           // sum_k tr(E_k H E_k^T) at alpha
  double err_rtn = 0.0;       // the same at alpha = 0 (plain RTN)
  double norm = 0.0;          // sum_k tr(W_k H W_k^T) = ||W X||^2: relative errors are err / norm
  std::vector<double> errs;   // err of every candidate, in grid order
};

// h: [n, n] f64 (mean x x^T), m: [n]. Deterministic for any thread count. Throws ShapeError on
// non-finite inputs.
AwqScaleResult awq_search_scales(const std::vector<AwqLinear>& linears, int64_t n, const double* h,
                                 const double* m, const QuantDesc& d, const AwqOptions& o,
                                 const int64_t* tie = nullptr, int64_t n_slots = 0);

// Per (row, group) clip ratios [rows, n_groups] (n_groups of the quant layout, ragged last group
// included) minimising the group's output error under h [cols, cols] f64.
std::vector<float> awq_search_clip(const float* w, int64_t rows, int64_t cols, const double* h,
                                   const QuantDesc& d, const AwqOptions& o);

// Quantize w [rows, cols] with the given clip ratios ([rows, n_groups]; nullptr = all 1, which is
// exactly quantize_matrix_rtn without clipping). stats (nullable) gets ||W - Q||^2 and ||W||^2.
Tensor quantize_clipped(const float* w, int64_t rows, int64_t cols, const QuantDesc& d,
                        const float* ratios, QuantErrorStats* stats = nullptr);

// Fake quantization: out[rows, cols] = dequant(quant(w)) with min/max group parameters (no
// clipping). The scale search's inner step.
void fake_quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantDesc& d, float* out);

}  // namespace dsq::quant
