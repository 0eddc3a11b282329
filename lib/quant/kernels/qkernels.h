// Internal: optimised row kernels (decode a byte-aligned run of codes, dequantize, dot). AVX2/FMA
// intrinsics behind __AVX2__, portable scalar code otherwise. They must match codec_ref.h:
// dequantize bit-exactly (same single multiply per element), dot within the f32 summation bound.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DSQ_QKERNELS_AVX2 1
#endif

#include "lib/quant/codec_ref.h"

namespace dsq::quant::detail {

// Decode n codes starting at a byte boundary of src into one byte each (n <= kChunk).
template <int Bits>
inline void decode_codes(const uint8_t* src, int64_t n, uint8_t* dst) {
  int64_t i = 0;
  if constexpr (Bits == 8) {
    for (; i < n; ++i) dst[i] = src[i];
  } else if constexpr (Bits == 4) {
#ifdef DSQ_QKERNELS_AVX2
    const __m128i m = _mm_set1_epi8(0x0F);
    for (; i + 32 <= n; i += 32) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i / 2));
      const __m128i lo = _mm_and_si128(b, m);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_unpacklo_epi8(lo, hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm_unpackhi_epi8(lo, hi));
    }
#endif
    for (; i + 2 <= n; i += 2) {
      const uint8_t b = src[i / 2];
      dst[i] = b & 0x0F;
      dst[i + 1] = b >> 4;
    }
    if (i < n) dst[i] = src[i / 2] & 0x0F;
  } else if constexpr (Bits == 2) {
    for (; i + 4 <= n; i += 4) {
      const uint8_t b = src[i / 4];
      dst[i] = b & 3;
      dst[i + 1] = (b >> 2) & 3;
      dst[i + 2] = (b >> 4) & 3;
      dst[i + 3] = b >> 6;
    }
    for (; i < n; ++i) dst[i] = static_cast<uint8_t>(quant_code_at(src, i, 2));
  } else {
    static_assert(Bits == 3, "unsupported width");
    for (; i + 8 <= n; i += 8) {  // 8 codes in 3 bytes
      const uint8_t* s = src + i / 8 * 3;
      const uint32_t v = s[0] | (static_cast<uint32_t>(s[1]) << 8) | (static_cast<uint32_t>(s[2]) << 16);
      for (int k = 0; k < 8; ++k) dst[i + k] = static_cast<uint8_t>((v >> (3 * k)) & 7);
    }
    for (; i < n; ++i) dst[i] = static_cast<uint8_t>(quant_code_at(src, i, 3));
  }
}

inline constexpr int64_t kChunk = 256;  // codes decoded at once; 256*bits is a multiple of 8

#ifdef DSQ_QKERNELS_AVX2
inline float hsum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}
#endif

// sum_i (code[i] - zero) * x[i] over n decoded codes, f32 with 8 lanes (fixed order).
inline float dot_codes(const uint8_t* q, int64_t n, int zero, const float* x) {
  int64_t i = 0;
  float s = 0.0f;
#ifdef DSQ_QKERNELS_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i z = _mm256_set1_epi32(zero);
  for (; i + 16 <= n; i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
    const __m256 a0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(b), z));
    const __m256 a1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), z));
    acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i + 8), acc1);
  }
  s = hsum(_mm256_add_ps(acc0, acc1));
#else
  float lane[8] = {};
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += static_cast<float>(q[i + k] - zero) * x[i + k];
  s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
#endif
  for (; i < n; ++i) s += static_cast<float>(q[i] - zero) * x[i];
  return s;
}

#ifdef DSQ_QKERNELS_AVX2
// 8 codes of Bits (2, 3 or 4) bits that start on a byte boundary occupy exactly Bits bytes:
// broadcast them and shift each lane by its code's bit offset.
template <int Bits>
inline __m256i unpack8(const uint8_t* src) {
  // Assemble exactly Bits bytes in registers (never reads past the 8 codes; a partial memcpy into
  // a stack word would stall on store forwarding).
  uint32_t v;
  if constexpr (Bits == 4) {
    std::memcpy(&v, src, 4);
  } else if constexpr (Bits == 3) {
    uint16_t lo;
    std::memcpy(&lo, src, 2);
    v = lo | (static_cast<uint32_t>(src[2]) << 16);
  } else {
    uint16_t lo;
    std::memcpy(&lo, src, 2);
    v = lo;
  }
  const __m256i sh = _mm256_setr_epi32(0, Bits, 2 * Bits, 3 * Bits, 4 * Bits, 5 * Bits, 6 * Bits, 7 * Bits);
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(v)), sh),
                          _mm256_set1_epi32((1 << Bits) - 1));
}

#endif

// sum_i (code[c0 + i] - zero) * x[i] for n packed codes whose first one starts on a byte boundary
// of src (Bits 2, 3, 4): decodes in registers, no intermediate buffer.
template <int Bits>
inline float dot_packed(const uint8_t* src, int64_t n, int zero, const float* x) {
  int64_t i = 0;
  float s = 0.0f;
#ifdef DSQ_QKERNELS_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const __m256i z = _mm256_set1_epi32(zero);
  for (; i + 16 <= n; i += 16) {
    const __m256 a0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(unpack8<Bits>(src + i / 8 * Bits), z));
    const __m256 a1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(unpack8<Bits>(src + i / 8 * Bits + Bits), z));
    acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i + 8), acc1);
  }
  s = hsum(_mm256_add_ps(acc0, acc1));
#endif
  for (; i < n; ++i) s += static_cast<float>(static_cast<int>(quant_code_at(src, i, Bits)) - zero) * x[i];
  return s;
}

// True when every group starts on a byte boundary, so groups can be decoded in byte-aligned runs.
template <int Bits>
inline bool groups_byte_aligned(int64_t group) { return (group * Bits) % 8 == 0; }

template <int Bits, bool Sym>
float dot_fast(QRowView q, int64_t cols, int64_t group, const float* x) {
  if (!groups_byte_aligned<Bits>(group)) return dot_ref<Bits, Sym>(q, cols, group, x);
  float total = 0.0f;
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    const GroupParams p = load_params(q, g, Bits);
    float gs;
    if constexpr (Bits == 8) {
      gs = dot_codes(q.codes + c0, n, p.zero, x + c0);
    } else {
      gs = dot_packed<Bits>(q.codes + c0 * Bits / 8, n, p.zero, x + c0);
    }
    total += p.scale * gs;
  }
  return total;
}

template <int Bits, bool Sym>
void dequantize_row_fast(QRowView q, int64_t cols, int64_t group, float* out) {
  if (!groups_byte_aligned<Bits>(group)) return dequantize_row_ref<Bits, Sym>(q, cols, group, out);
  alignas(32) uint8_t codes[kChunk];
  for (int64_t g = 0, c0 = 0; c0 < cols; ++g, c0 += group) {
    const int64_t n = cols - c0 < group ? cols - c0 : group;
    const GroupParams p = load_params(q, g, Bits);
    for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
      const int64_t k = n - k0 < kChunk ? n - k0 : kChunk;
      const int64_t c = c0 + k0;
      const uint8_t* src = codes;
      float* o = out + c;
      int64_t i = 0;
      if constexpr (Bits == 8) {
        src = q.codes + c;
      } else {
#ifdef DSQ_QKERNELS_AVX2
        const __m256 sc = _mm256_set1_ps(p.scale);
        const __m256i z = _mm256_set1_epi32(p.zero);
        const uint8_t* packed = q.codes + c * Bits / 8;
        for (; i + 8 <= k; i += 8) {
          const __m256 a = _mm256_cvtepi32_ps(_mm256_sub_epi32(unpack8<Bits>(packed + i / 8 * Bits), z));
          _mm256_storeu_ps(o + i, _mm256_mul_ps(sc, a));
        }
        if (i == k) continue;
#endif
        decode_codes<Bits>(q.codes + c * Bits / 8, k, codes);
      }
      // Same arithmetic as dequantize_value: one exact int->float and one rounding multiply.
      for (; i < k; ++i) o[i] = p.scale * static_cast<float>(static_cast<int>(src[i]) - p.zero);
    }
  }
}

}  // namespace dsq::quant::detail
