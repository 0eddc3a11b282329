// Round-to-nearest (RTN) group quantization: per-group parameter fitting, single-value coding, and
// whole-matrix quantization into the packed kQInt layout (lib/core/quant_layout.h).
//
// Parameter fitting (fit_group), for a group's weights w[0..n):
//   symmetric : zero = 2^(bits-1), scale = absmax / (2^(bits-1) - 1)
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0) (the range always contains 0, as in GPTQ's
//               quantizer, so zero fits in [0, 2^bits) and 0.0 is exactly representable),
//               scale = (hi - lo) / (2^bits - 1), zero = clamp(round(-lo / scale), 0, 2^bits - 1)
// The scale is rounded UP to the next f16 (never down; for f16_min rows such as int4_asymf, on up
// to the first f16 whose product with the group's zero is an exact f16: ggml's Q4_1 min, at most
// 16 f16 steps), and codes are computed with that stored
// scale, so every weight inside the fitted range satisfies |w - dequant(code)| <= scale / 2.
// An all-zero group gives scale 0 (codes = zero, dequantizes to exact 0); nothing yields NaN/Inf
// for finite input (scales saturate at the largest f16).
//
// Clipping search (mse_clip): the range is shrunk by p in {1, 0.99, ..., 0.5} (kClipGrid steps) and
// the p minimising sum_c importance[c] * (w[c] - dequant(quant(w[c])))^2 (accumulated in f64, ties
// keep the larger range) is kept, as GPTQ's Quantizer(mse=True) and llama.cpp's fitted scales do.
// p = 1 is a candidate, so the clipped error never exceeds the plain min/max error.
#pragma once

#include <cstdint>

#include "lib/core/tensor.h"
#include "lib/quant/quant_types.h"

namespace dsq::quant {

// Shrink factors tried by the clipping search: 1 - i/100 for i in [0, kClipGrid).
inline constexpr int kClipGrid = 51;  // down to 0.5

// The grouped-integer rows' codec (quant_types.cpp instantiates the rows' fit / fit_range /
// encode / decode from these; solvers ask the row, quant_traits(d), instead of calling them).
// Fit the parameters of one group of n weights (see the header comment). importance: [n] weights
// of the clipping search's error (nullptr = all ones); ignored unless mse_clip.
GroupParams fit_group(const float* w, int64_t n, const QuantDesc& d, const float* importance,
                      bool mse_clip);
// Parameters for an explicit range [lo, hi] (lo <= 0 <= hi is enforced by widening). For
// symmetric schemes only max(|lo|, |hi|) matters. Used by clip searches (AWQ) that pick the range.
GroupParams params_for_range(float lo, float hi, const QuantDesc& d);

// code = clamp(round(w / scale) + zero, 0, 2^bits - 1) (round half to even); scale 0 gives
// code = zero; NaN gives 0 (callers reject non-finite weights before quantizing).
inline uint32_t quantize_value(float w, GroupParams p, int bits) {
  const int maxq = (1 << bits) - 1;
  int q = p.zero;
  if (p.scale > 0.0f) {
    const float r = __builtin_nearbyintf(w / p.scale) + static_cast<float>(p.zero);
    // Written so that NaN maps to 0 without an undefined float->int conversion.
    q = !(r >= 0.0f) ? 0 : (r >= static_cast<float>(maxq) ? maxq : static_cast<int>(r));
  }
  return static_cast<uint32_t>(q);
}
inline float dequantize_value(uint32_t code, GroupParams p) {
  return p.scale * static_cast<float>(static_cast<int>(code) - static_cast<int>(p.zero));
}
// f64 sum of importance[c] * (w[c] - dequant(quant(w[c])))^2 over the group (importance nullable).
double group_sq_error(const float* w, int64_t n, GroupParams p, int bits, const float* importance);

// Mutable accessor over a kQInt tensor, for solvers that fill it one column (GPTQ) or one group
// at a time. Does not own the tensor; the tensor must outlive it.
class QuantMatrix {
 public:
  explicit QuantMatrix(Tensor& t);  // asserts t is an owned 2-D kQInt tensor

  const QuantLayout& layout() const { return L_; }
  const QuantDesc& desc() const { return d_; }
  int64_t rows() const { return L_.rows; }
  int64_t cols() const { return L_.cols; }
  int64_t group() const { return L_.group; }       // effective group size
  int64_t n_groups() const { return L_.n_groups; }
  int64_t group_of(int64_t col) const { return col / L_.group; }
  const QuantTraits& row() const { return *row_; }  // the scheme's codec

  void set_params(int64_t r, int64_t g, GroupParams p);  // p.scale must be f16-exact
  GroupParams params(int64_t r, int64_t g) const;
  void set_code(int64_t r, int64_t c, uint32_t code) { quant_code_set(codes_ + r * L_.row_code_bytes, c, d_.bits(), code); }
  uint32_t code(int64_t r, int64_t c) const { return quant_code_at(codes_ + r * L_.row_code_bytes, c, d_.bits()); }
  // Quantize w with the params of (r, group_of(c)), store the code and return the dequantized
  // value (GPTQ's q in its error update).
  float quantize_store(int64_t r, int64_t c, float w);

  QRowRef row(int64_t r);
  QRowView row(int64_t r) const;

 private:
  QuantDesc d_;
  const QuantTraits* row_;
  QuantLayout L_;
  uint8_t* codes_;
  uint16_t* scales_;
  uint8_t* zeros_;  // nullptr when symmetric
};

// Read-only row view of a kQInt tensor.
QRowView qrow(const Tensor& t, int64_t r);

// A zero-filled kQInt tensor [rows, cols] for d.
Tensor make_quant_tensor(int64_t rows, int64_t cols, const QuantDesc& d);

struct RtnOptions {
  bool mse_clip = false;
  const float* importance = nullptr;  // [cols] per input column (e.g. Hessian diagonal); nullable
};

// Error statistics of one quantized matrix (f64, summed per row then in row order: deterministic
// for any thread count).
struct QuantErrorStats {
  double err_sq = 0.0;   // ||W - Q||^2
  double norm_sq = 0.0;  // ||W||^2
  double rel() const { return norm_sq > 0 ? err_sq / norm_sq : 0.0; }  // relative squared error
  double sqnr_db() const;  // 10 log10(norm_sq / err_sq); +inf when exact
};

// One row's share of QuantErrorStats: *err = sum (w - deq)^2 and *nrm = sum w^2 over cols, in f64,
// in 8 lanes (column c in lane c % 8) added in a fixed order, so the sums vectorize and every
// quantizer that reports errors gets the same numbers.
void row_sq_errors(const float* w, const float* deq, int64_t cols, double* err, double* nrm);

// Quantize w [rows, cols] (row-major f32) with RTN. Parallel over rows; byte-identical for any
// thread count. stats (nullable) receives the reconstruction error.
Tensor quantize_matrix_rtn(const float* w, int64_t rows, int64_t cols, const QuantDesc& d,
                           const RtnOptions& opts = {}, QuantErrorStats* stats = nullptr);
// Same for a 2-D float tensor of any float dtype (f32/f16/bf16/f64), converted in row tiles so no
// full f32 copy is made. Throws ShapeError when w is not 2-D.
Tensor quantize_tensor_rtn(const Tensor& w, const QuantDesc& d, const RtnOptions& opts = {},
                           QuantErrorStats* stats = nullptr);

// Error of an existing quantized matrix q against its float source w (any float dtype).
QuantErrorStats quant_error(const Tensor& w, const Tensor& q);

}  // namespace dsq::quant
