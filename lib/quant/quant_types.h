// The codecs of the quantization scheme table (rows in lib/core/quant_schemes.def; the on-disk id,
// name and layout of each row are in lib/core/quant_scheme.h). Every consumer (the CLI's choices
// and help text, the quantizers, the kernels, the tests) asks a row through quant_traits(), so a new
// scheme is one new row plus its codec instantiation here.
//
// The grouped-integer rows quantize a [rows, cols] matrix in groups of G consecutive input columns
// per row (G = cols when QuantDesc::group == 0), in the packed layout of lib/core/quant_layout.h:
//   w[r][c] ~= scale[r][g] * (code[r][c] - zero[r][g]),  g = c / G,
// scale an f16, zero a u8 (fixed at 2^(bits-1) for symmetric schemes), code in [0, 2^bits).
// Solvers never code a value themselves: RTN, GPTQ and AWQ fit, encode and decode through the
// row's per-group codec (fit, fit_range, encode_group, encode, decode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/core/quant_layout.h"
#include "lib/core/quant_scheme.h"

namespace dsq::quant {

using QuantType = QuantScheme;  // the row id (lib/core/quant_scheme.h)

// Parameters of one group. `scale` is always exactly representable as an f16 (it is stored as
// one); `zero` is 2^(bits-1) for symmetric schemes.
struct GroupParams {
  float scale = 0.0f;
  uint8_t zero = 0;
  bool operator==(const GroupParams&) const = default;
};

// One packed row of a kQInt matrix: its code bit stream and its per-group scales / zeros.
struct QRowView {
  const uint8_t* codes = nullptr;    // ceil(cols*bits/8) bytes, LSB-first bit stream
  const uint16_t* scales = nullptr;  // [n_groups] f16
  const uint8_t* zeros = nullptr;    // [n_groups] u8; nullptr for symmetric schemes
  // Block-FP8 rows: codes are cols float8 bytes, and the row's block row of f32 scales
  // ([n_groups], one per column block) replaces scales/zeros.
  const float* block_scales = nullptr;
};
struct QRowRef {
  uint8_t* codes = nullptr;
  uint16_t* scales = nullptr;
  uint8_t* zeros = nullptr;  // nullptr for symmetric schemes
};

// Row codec signatures. `group` is the effective group size (>= 1; cols for per-channel).
// Plain min/max round-to-nearest of one row.
using QuantizeRowFn = void (*)(const float* w, int64_t cols, int64_t group, QRowRef out);
// Round-to-nearest with a per-group clipping search minimising sum_c importance[c]*(w-q)^2
// (importance: [cols] non-negative, e.g. a Hessian diagonal; nullptr = all ones). The unclipped
// range is one candidate, so the weighted error is never larger than quantize_ref's.
using QuantizeWeightedFn = void (*)(const float* w, const float* importance, int64_t cols,
                                    int64_t group, QRowRef out);
// out[c] = scale * (code - zero) for c in [0, cols).
using DequantizeRowFn = void (*)(QRowView q, int64_t cols, int64_t group, float* out);
// sum_c dequant(q)[c] * x[c].
using DotFn = float (*)(QRowView q, int64_t cols, int64_t group, const float* x);

struct QuantTraits {
  QuantType type;
  std::string_view name;  // "int4_asym"
  uint8_t bits;
  bool has_zero;          // asymmetric: stores a u8 zero point per group
  // Per-group codec. Null for storage-only rows (block FP8: SchemeInfo::quantize_target() is
  // false), which only decode: dequantize_row and dot.
  // Fit the parameters of a group of n weights: min/max range, or with mse_clip the range shrunk
  // to minimise sum importance[i]*(w - q)^2 (importance nullable = all ones); rtn.h details.
  GroupParams (*fit)(const float* w, int64_t n, const float* importance, bool mse_clip);
  // Parameters for an explicit range [lo, hi] (widened to contain 0), for clip searches.
  GroupParams (*fit_range)(float lo, float hi);
  // codes[i] = encode(clamp(w[i], lo, hi)) and deq[i] = decode(codes[i]) for i < n (either
  // output may be null; pass -inf/+inf for no clamping).
  void (*encode_group)(const float* w, int64_t n, float lo, float hi, GroupParams p,
                       uint32_t* codes, float* deq);
  uint32_t (*encode)(float w, GroupParams p);  // round to the nearest code (half to even)
  float (*decode)(uint32_t code, GroupParams p);
  // Row codec.
  QuantizeRowFn quantize_row;  // optimised (SIMD where available); the same bytes as quantize_ref
  QuantizeRowFn quantize_ref;
  QuantizeWeightedFn quantize_weighted;
  DequantizeRowFn dequantize_row;      // optimised (SIMD where available)
  DotFn dot;                           // optimised (SIMD where available)
  DequantizeRowFn dequantize_row_ref;  // scalar reference: the optimised ones must match it
  DotFn dot_ref;

  // Stored bytes per group of G weights (codes + f16 scale + u8 zero), G*bits a multiple of 8.
  constexpr double bytes_per_group(int64_t G) const {
    return static_cast<double>(G) * bits / 8.0 + 2.0 + (has_zero ? 1.0 : 0.0);
  }
  constexpr double bits_per_weight(int64_t G) const { return 8.0 * bytes_per_group(G) / G; }
  QuantDesc desc(uint32_t group) const { return QuantDesc(type, group); }
};

// Indexed by table row (which equals the enum value); defined in quant_types.cpp.
extern const QuantTraits kQuantTraits[];
extern const size_t kNumQuantTypes;

// The row of a descriptor or id.
const QuantTraits& quant_traits(const QuantDesc& d);
const QuantTraits& quant_traits(QuantType t);
std::optional<QuantType> quant_type_from_name(std::string_view name);  // "int4_asym"

}  // namespace dsq::quant
