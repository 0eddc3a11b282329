// The quantization scheme table (rows in quant_types.def). Every consumer (the CLI's --bits/--sym
// choices and help text, the format writer, the kernels, the tests) iterates kQuantTraits, so a
// new scheme is one new row plus its codec instantiation.
//
// A scheme quantizes a [rows, cols] matrix in groups of G consecutive input columns per row
// (G = cols when QuantDesc::group == 0), in the packed layout of lib/core/quant_layout.h:
//   w[r][c] ~= scale[r][g] * (code[r][c] - zero[r][g]),  g = c / G,
// scale an f16, zero a u8 (fixed at 2^(bits-1) for symmetric schemes), code in [0, 2^bits).
// Per-group parameter fitting and single-value coding (for GPTQ/AWQ) are in rtn.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/core/quant_layout.h"

namespace dsq::quant {

// On-disk enum: explicit values, never reused.
enum class QuantType : uint16_t {
#define DSQ_QUANT_TYPE(e, value, name, bits, sym) e = value,
#include "lib/quant/quant_types.def"
#undef DSQ_QUANT_TYPE
};

// One packed row of a kQInt matrix: its code bit stream and its per-group scales / zeros.
struct QRowView {
  const uint8_t* codes = nullptr;    // ceil(cols*bits/8) bytes, LSB-first bit stream
  const uint16_t* scales = nullptr;  // [n_groups] f16
  const uint8_t* zeros = nullptr;    // [n_groups] u8; nullptr for symmetric schemes
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
  QuantDesc desc(uint32_t group) const { return QuantDesc{bits, group, !has_zero}; }
};

// Indexed by table row (which equals the enum value); defined in quant_types.cpp.
extern const QuantTraits kQuantTraits[];
extern const size_t kNumQuantTypes;

// The scheme for a descriptor (bits + sym); throws ConfigError for an unsupported bit width.
const QuantTraits& quant_traits(const QuantDesc& d);
const QuantTraits& quant_traits(QuantType t);
std::optional<QuantType> quant_type_from_name(std::string_view name);
QuantType quant_type_of(const QuantDesc& d);  // throws ConfigError like quant_traits
// "2, 3, 4, 8": the bit widths in the table, for CLI help and choices.
std::string supported_bits_list();
// Group sizes the CLI accepts (0 = per output channel).
inline constexpr uint32_t kQuantGroupSizes[] = {32, 64, 128, 256, 0};
// True when bits is in the table and group is one of kQuantGroupSizes (the CLI's contract; the
// library itself accepts any group >= 1). Callers throw their own error kind.
bool desc_supported(const QuantDesc& d);
// "int4_asym g128" / "int8_sym per-channel".
std::string desc_str(const QuantDesc& d);

}  // namespace dsq::quant
