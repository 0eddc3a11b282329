// Internal: optimised row kernels (quantize, dequantize, dot) over byte-aligned runs of codes.
// AVX2/FMA intrinsics behind __AVX2__, portable scalar code otherwise. They must match
// codec_ref.h: quantize and dequantize bit-exactly (the same IEEE operations per element), dot
// within the f32 summation bound (tests/quant/qmatmul_test.cpp, qkernels_scalar_test.cpp).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DSQ_QKERNELS_AVX2 1
#endif

#include "lib/quant/codec_ref.h"

namespace dsq::quant::detail {

// Code i of a run of packed codes that starts on a byte boundary.
template <int Bits>
inline int code_at(const uint8_t* codes, int64_t i) {
  if constexpr (Bits == 8) {
    return codes[i];
  } else {
    return static_cast<int>(quant_code_at(codes, i, Bits));
  }
}

#ifdef DSQ_QKERNELS_AVX2
// Codes i..i+7 (i a multiple of 8) as eight int32 lanes. 8 codes of Bits < 8 bits occupy exactly
// Bits bytes: they are assembled in a register (never reading past them; a partial memcpy into a
// stack word would stall on store forwarding), broadcast, and each lane shifted by its offset.
template <int Bits>
inline __m256i load8(const uint8_t* codes, int64_t i) {
  if constexpr (Bits == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i)));
  } else {
    const uint8_t* src = codes + i / 8 * Bits;
    if constexpr (Bits > 4) {  // 5..7 bytes: codes 0-3 in the low 4*Bits bits, 4-7 above them
      uint32_t lo;
      std::memcpy(&lo, src, 4);
      uint64_t v = lo;
      if constexpr (Bits >= 6) {
        uint16_t mid;
        std::memcpy(&mid, src + 4, 2);
        v |= static_cast<uint64_t>(mid) << 32;
      }
      if constexpr (Bits == 5 || Bits == 7) v |= static_cast<uint64_t>(src[Bits - 1]) << (8 * (Bits - 1));
      const auto lo4 = static_cast<int>(static_cast<uint32_t>(v));
      const auto hi4 = static_cast<int>(static_cast<uint32_t>(v >> (4 * Bits)));
      const __m256i w = _mm256_setr_epi32(lo4, lo4, lo4, lo4, hi4, hi4, hi4, hi4);
      const __m256i sh = _mm256_setr_epi32(0, Bits, 2 * Bits, 3 * Bits, 0, Bits, 2 * Bits, 3 * Bits);
      return _mm256_and_si256(_mm256_srlv_epi32(w, sh), _mm256_set1_epi32((1 << Bits) - 1));
    }
    uint32_t v;
    if constexpr (Bits == 4) {
      std::memcpy(&v, src, 4);
    } else {
      uint16_t lo;
      std::memcpy(&lo, src, 2);
      v = Bits == 3 ? lo | (static_cast<uint32_t>(src[2]) << 16) : lo;
    }
    const __m256i sh = _mm256_setr_epi32(0, Bits, 2 * Bits, 3 * Bits, 4 * Bits, 5 * Bits, 6 * Bits,
                                         7 * Bits);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(v)), sh),
                            _mm256_set1_epi32((1 << Bits) - 1));
  }
}

inline float hsum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
#endif

// sum_i (code[i] - zero) * x[i] over n packed codes starting on a byte boundary; f32 in a fixed
// order (16 lanes, then the tail), so the result does not depend on threads.
template <int Bits>
inline float dot_run(const uint8_t* codes, int64_t n, int zero, const float* x) {
  int64_t i = 0;
  float s = 0.0f;
#ifdef DSQ_QKERNELS_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i z = _mm256_set1_epi32(zero);
  for (; i + 16 <= n; i += 16) {
    const __m256 a0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(load8<Bits>(codes, i), z));
    const __m256 a1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(load8<Bits>(codes, i + 8), z));
    acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i + 8), acc1);
  }
  s = hsum(_mm256_add_ps(acc0, acc1));
#else
  float lane[8] = {};
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += static_cast<float>(code_at<Bits>(codes, i + k) - zero) * x[i + k];
  s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
#endif
  for (; i < n; ++i) s += static_cast<float>(code_at<Bits>(codes, i) - zero) * x[i];
  return s;
}

// out[i] = scale * (code[i] - zero): the arithmetic of dequantize_value (one exact int->float,
// one rounding multiply), so it is bit-identical to the reference.
template <int Bits>
inline void dequantize_run(const uint8_t* codes, int64_t n, GroupParams p, float* out) {
  int64_t i = 0;
#ifdef DSQ_QKERNELS_AVX2
  const __m256 sc = _mm256_set1_ps(p.scale);
  const __m256i z = _mm256_set1_epi32(p.zero);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(sc, _mm256_cvtepi32_ps(_mm256_sub_epi32(load8<Bits>(codes, i), z))));
#endif
  for (; i < n; ++i) out[i] = p.scale * static_cast<float>(code_at<Bits>(codes, i) - p.zero);
}

// Every group starts on a byte boundary (group*bits % 8 == 0: all CLI group sizes); otherwise the
// kernels fall back to the reference.
template <int Bits>
inline bool groups_byte_aligned(int64_t group) { return (group * Bits) % 8 == 0; }

template <int Bits, bool Sym>
float dot_fast(QRowView q, int64_t cols, int64_t group, const float* x) {
  if (!groups_byte_aligned<Bits>(group)) return dot_ref<Bits, Sym>(q, cols, group, x);
#if defined(DSQ_QKERNELS_AVX2) && defined(__F16C__)
  if (group % 16 == 0) {
    // The single-token (decode) path: each group's (code - zero) * x in 16 lanes, scaled into 16
    // running lanes by one FMA per 8 lanes, and one horizontal sum per row (a sum per group
    // cost more than the group's products at group 32). Only the last group can be ragged.
    __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
    float tail = 0.0f;
    for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
      const int64_t n = cols - c0 < group ? cols - c0 : group;
      const uint8_t* codes = q.codes + c0 * Bits / 8;
      const float* xg = x + c0;
      const int zero = q.zeros ? q.zeros[g] : 1 << (Bits - 1);
      const __m256i z = _mm256_set1_epi32(zero);
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8<Bits>(codes, i), z)),
                             _mm256_loadu_ps(xg + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8<Bits>(codes, i + 8), z)),
                             _mm256_loadu_ps(xg + i + 8), a1);
      }
      const float scale = _cvtsh_ss(q.scales[g]);  // exact, like f16_to_f32
      const __m256 sc = _mm256_set1_ps(scale);
      t0 = _mm256_fmadd_ps(a0, sc, t0);
      t1 = _mm256_fmadd_ps(a1, sc, t1);
      for (; i < n; ++i) tail += scale * (static_cast<float>(code_at<Bits>(codes, i) - zero) * xg[i]);
    }
    return hsum(_mm256_add_ps(t0, t1)) + tail;
  }
#endif
  float total = 0.0f;
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    const GroupParams p = load_params(q, g, Bits);
    total += p.scale * dot_run<Bits>(q.codes + c0 * Bits / 8, n, p.zero, x + c0);
  }
  return total;
}

template <int Bits, bool Sym>
void dequantize_row_fast(QRowView q, int64_t cols, int64_t group, float* out) {
  if (!groups_byte_aligned<Bits>(group)) return dequantize_row_ref<Bits, Sym>(q, cols, group, out);
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    dequantize_run<Bits>(q.codes + c0 * Bits / 8, n, load_params(q, g, Bits), out + c0);
  }
}

// The range of a group as fit_group finds it: min and max over w[0..n) and 0, NaNs skipped.
// _mm256_min_ps(v, acc) is `v < acc ? v : acc` (NaN or equal: acc), the reference's comparison,
// and min/max over a set do not depend on the order, so the result is bit-identical.
inline void group_range(const float* w, int64_t n, float* lo_out, float* hi_out) {
  float lo = 0.0f, hi = 0.0f;
  int64_t i = 0;
#ifdef DSQ_QKERNELS_AVX2
  __m256 lo8 = _mm256_setzero_ps(), hi8 = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(w + i);
    lo8 = _mm256_min_ps(v, lo8);
    hi8 = _mm256_max_ps(v, hi8);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, lo8);
  _mm256_store_ps(h, hi8);
  for (int k = 0; k < 8; ++k) {
    if (l[k] < lo) lo = l[k];
    if (h[k] > hi) hi = h[k];
  }
#endif
  for (; i < n; ++i) {
    if (w[i] < lo) lo = w[i];
    if (w[i] > hi) hi = w[i];
  }
  *lo_out = lo;
  *hi_out = hi;
}

// codes[i] = quantize_value(w[i], p, Bits) for i < n: the same IEEE division and round-to-nearest-
// even per element (NaN -> 0, clamped to [0, 2^Bits - 1]), so bit-identical to the reference.
template <int Bits>
inline void encode_run(const float* w, int64_t n, GroupParams p, uint8_t* codes) {
  int64_t i = 0;
#ifdef DSQ_QKERNELS_AVX2
  if (p.scale > 0.0f) {
    const __m256 sc = _mm256_set1_ps(p.scale), z = _mm256_set1_ps(static_cast<float>(p.zero));
    const __m256 maxq = _mm256_set1_ps(static_cast<float>((1 << Bits) - 1)), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      const __m256 r = _mm256_add_ps(
          _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(w + i), sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
      const __m256 ok = _mm256_cmp_ps(r, zero, _CMP_GE_OQ);  // false for NaN: code 0
      const __m256i q = _mm256_and_si256(_mm256_cvttps_epi32(_mm256_min_ps(r, maxq)), _mm256_castps_si256(ok));
      const __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), _mm_packus_epi16(q16, q16));
    }
  }
#endif
  for (; i < n; ++i) codes[i] = static_cast<uint8_t>(quantize_value(w[i], p, Bits));
}

// Plain round-to-nearest of one row (QuantTraits::quantize_row): quantize_row_ref's output, byte
// for byte, through group_range and encode_run.
template <QuantScheme S>
void quantize_row_fast(const float* w, int64_t cols, int64_t group, QRowRef out) {
  constexpr int Bits = scheme_info(S).bits;
  if (!groups_byte_aligned<Bits>(group)) return quantize_row_ref<S>(w, cols, group, out);
  uint8_t codes[256];
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    float lo, hi;
    group_range(w + c0, n, &lo, &hi);
    const GroupParams p = params_for_range(lo, hi, desc_of<S>());
    for (int64_t k0 = 0; k0 < n; k0 += 256) {
      const int64_t k = n - k0 < 256 ? n - k0 : 256;
      encode_run<Bits>(w + c0 + k0, k, p, codes);
      store_group(out, g, c0 + k0, k, cols, Bits, p, codes);
    }
  }
}

}  // namespace dsq::quant::detail
