// Internal: the scalar reference row codecs, templated on the scheme (instantiated by the table in
// quant_types.cpp). Not a public header: use kQuantTraits.
#pragma once

#include <cstdint>
#include <cstring>

#include "lib/core/dtype.h"
#include "lib/quant/rtn.h"

namespace dsq::quant::detail {

// The row's QuantDesc: fitting depends on the row (bits, symmetry, the f16-min grid).
template <QuantScheme S>
const QuantDesc& desc_of() {
  static const QuantDesc d(S, 0);
  return d;
}

// The per-group codec of a grouped-integer row (QuantTraits::fit ... decode).
template <QuantScheme S>
GroupParams fit(const float* w, int64_t n, const float* importance, bool mse_clip) {
  return fit_group(w, n, desc_of<S>(), importance, mse_clip);
}
template <QuantScheme S>
GroupParams fit_range(float lo, float hi) {
  return params_for_range(lo, hi, desc_of<S>());
}
template <int Bits, bool Sym>
uint32_t encode(float w, GroupParams p) {
  return quantize_value(w, p, Bits);
}
inline float decode(uint32_t code, GroupParams p) { return dequantize_value(code, p); }
template <int Bits, bool Sym>
void encode_group(const float* w, int64_t n, float lo, float hi, GroupParams p, uint32_t* codes,
                  float* deq) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = w[i] < lo ? lo : (w[i] > hi ? hi : w[i]);
    const uint32_t q = quantize_value(x, p, Bits);
    if (codes) codes[i] = q;
    if (deq) deq[i] = dequantize_value(q, p);
  }
}

inline GroupParams load_params(QRowView q, int64_t g, int bits) {
  GroupParams p;
  p.scale = f16_to_f32(q.scales[g]);
  p.zero = q.zeros ? q.zeros[g] : static_cast<uint8_t>(1u << (bits - 1));
  return p;
}

// Pack n codes (each < 2^bits) starting at a byte boundary of dst. Writes ceil(n*bits/8) bytes;
// bits past the last code in the final byte are written as zero.
inline void pack_codes(const uint8_t* q, int64_t n, int bits, uint8_t* dst) {
  if (bits == 8) {
    std::memcpy(dst, q, static_cast<size_t>(n));
    return;
  }
  if (bits == 4) {  // the common width, in a loop that vectorizes
    for (int64_t i = 0; i + 1 < n; i += 2) *dst++ = static_cast<uint8_t>(q[i] | (q[i + 1] << 4));
    if (n % 2) *dst = q[n - 1];
    return;
  }
  uint64_t acc = 0;
  int nacc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc |= static_cast<uint64_t>(q[i]) << nacc;
    nacc += bits;
    while (nacc >= 8) {
      *dst++ = static_cast<uint8_t>(acc);
      acc >>= 8;
      nacc -= 8;
    }
  }
  if (nacc > 0) *dst = static_cast<uint8_t>(acc);
}

// Store one group's params and codes into a packed row. The fast byte path is used when the group
// starts on a byte boundary and either ends on one or is the row's last group.
inline void store_group(QRowRef out, int64_t g, int64_t c0, int64_t n, int64_t cols, int bits,
                        GroupParams p, const uint8_t* codes) {
  out.scales[g] = f32_to_f16(p.scale);
  if (out.zeros) out.zeros[g] = p.zero;
  const bool aligned = (c0 * bits) % 8 == 0 && ((n * bits) % 8 == 0 || c0 + n == cols);
  if (aligned) {
    pack_codes(codes, n, bits, out.codes + c0 * bits / 8);
  } else {
    for (int64_t i = 0; i < n; ++i) quant_code_set(out.codes, c0 + i, bits, codes[i]);
  }
}

template <QuantScheme S>
void quantize_row_impl(const float* w, const float* importance, bool mse_clip, int64_t cols,
                       int64_t group, QRowRef out) {
  constexpr int Bits = scheme_info(S).bits;
  uint8_t codes[256];
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    const GroupParams p = fit_group(w + c0, n, desc_of<S>(), importance ? importance + c0 : nullptr,
                                    mse_clip);
    // Chunks of 256 codes keep the buffer on the stack for per-channel groups (256*Bits % 8 == 0).
    for (int64_t k0 = 0; k0 < n; k0 += 256) {
      const int64_t k = n - k0 < 256 ? n - k0 : 256;
      for (int64_t i = 0; i < k; ++i)
        codes[i] = static_cast<uint8_t>(quantize_value(w[c0 + k0 + i], p, Bits));
      store_group(out, g, c0 + k0, k, cols, Bits, p, codes);
    }
  }
}

template <QuantScheme S>
void quantize_row_ref(const float* w, int64_t cols, int64_t group, QRowRef out) {
  quantize_row_impl<S>(w, nullptr, false, cols, group, out);
}

template <QuantScheme S>
void quantize_row_weighted(const float* w, const float* importance, int64_t cols, int64_t group,
                           QRowRef out) {
  quantize_row_impl<S>(w, importance, true, cols, group, out);
}

template <int Bits, bool Sym>
void dequantize_row_ref(QRowView q, int64_t cols, int64_t group, float* out) {
  for (int64_t c = 0; c < cols; ++c) {
    const GroupParams p = load_params(q, c / group, Bits);
    out[c] = dequantize_value(quant_code_at(q.codes, c, Bits), p);
  }
}

// f64 accumulation in column order: the accuracy reference for the optimised dot.
template <int Bits, bool Sym>
float dot_ref(QRowView q, int64_t cols, int64_t group, const float* x) {
  double acc = 0.0;
  for (int64_t c = 0; c < cols; ++c) {
    const GroupParams p = load_params(q, c / group, Bits);
    acc += static_cast<double>(dequantize_value(quant_code_at(q.codes, c, Bits), p)) * x[c];
  }
  return static_cast<float>(acc);
}

// Block-FP8 rows: w[c] = fp8(code[c]) * block_scales[c / group].
inline void dequantize_row_fp8(QRowView q, int64_t cols, int64_t group, float* out) {
  for (int64_t c0 = 0; c0 < cols; c0 += group) {
    const float s = q.block_scales[c0 / group];
    const int64_t c1 = c0 + group < cols ? c0 + group : cols;
    for (int64_t c = c0; c < c1; ++c) out[c] = fp8_e4m3_to_f32(q.codes[c]) * s;
  }
}
inline float dot_fp8(QRowView q, int64_t cols, int64_t group, const float* x) {
  float acc = 0.0f;
  for (int64_t c0 = 0; c0 < cols; c0 += group) {
    const int64_t c1 = c0 + group < cols ? c0 + group : cols;
    float part = 0.0f;
    for (int64_t c = c0; c < c1; ++c) part += fp8_e4m3_to_f32(q.codes[c]) * x[c];
    acc += part * q.block_scales[c0 / group];
  }
  return acc;
}

}  // namespace dsq::quant::detail
