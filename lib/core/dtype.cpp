#include "lib/core/dtype.h"

#include <algorithm>
#include <array>
#include <cmath>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "lib/core/error.h"

namespace dsq {

namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
  bool is_float;
};
constexpr std::array<DTypeRow, 11> kDTypes = {{
    {DType::kF32, "f32", 4, true},
    {DType::kF16, "f16", 2, true},
    {DType::kBF16, "bf16", 2, true},
    {DType::kI8, "i8", 1, false},
    {DType::kU8, "u8", 1, false},
    {DType::kI32, "i32", 4, false},
    {DType::kU32, "u32", 4, false},
    {DType::kI64, "i64", 8, false},
    {DType::kF64, "f64", 8, true},
    {DType::kF8E4M3, "f8_e4m3", 1, false},
    {DType::kQInt, "qint", 0, false},
}};

const DTypeRow& row(DType t) {
  for (const auto& r : kDTypes)
    if (r.type == t) return r;
  DSQ_ASSERT(false, "unknown dtype %d", static_cast<int>(t));
}

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

constexpr float fp8_e4m3_value(unsigned b) {
  const unsigned e = (b >> 3) & 0xF, m = b & 7;
  float v = 0.0f;
  if (e == 15 && m == 7) {
    v = __builtin_nanf("");
  } else if (e == 0) {
    v = static_cast<float>(m) / 8.0f / 64.0f;  // subnormal: m/8 * 2^-6
  } else {
    v = 1.0f + static_cast<float>(m) / 8.0f;
    for (unsigned i = 7; i < e; ++i) v *= 2.0f;
    for (unsigned i = e; i < 7; ++i) v /= 2.0f;
  }
  return (b & 0x80) ? -v : v;
}

constexpr std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (unsigned b = 0; b < 256; ++b) t[b] = fp8_e4m3_value(b);
  return t;
}
}  // namespace

const std::array<float, 256> kFp8E4M3Table = make_fp8_table();

uint8_t f32_to_fp8_e4m3(float f) {
  if (f != f) return 0x7F;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7E;  // saturate (e4m3fn has no infinity)
  // Nearest of the 127 non-negative finite codes, ties to the even code (binary search on the
  // ascending table).
  unsigned lo = 0, hi = 0x7E;
  while (hi - lo > 1) {
    const unsigned mid = (lo + hi) / 2;
    if (kFp8E4M3Table[mid] <= a) lo = mid; else hi = mid;
  }
  const float dlo = a - kFp8E4M3Table[lo], dhi = kFp8E4M3Table[hi] - a;
  const unsigned q = dlo < dhi ? lo : (dhi < dlo ? hi : ((lo & 1) ? hi : lo));
  return static_cast<uint8_t>(sign | q);
}

std::string_view dtype_name(DType t) { return row(t).name; }
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.type;
  return std::nullopt;
}
size_t dtype_size(DType t) { return row(t).size; }
bool dtype_is_float(DType t) { return row(t).is_float; }

uint16_t f32_to_f16(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // Inf or NaN
    if (absx == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
  }
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: Inf
  if (absx < 0x38800000u) {  // below the smallest normal f16 (2^-14): subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0 (ties too)
    const uint32_t e = absx >> 23;
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // result = mant >> (shift) in units of 2^-24
    const uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | r);
  }
  // Normal range: rebias exponent and round the 13 dropped mantissa bits to nearest even.
  uint32_t h = ((absx >> 13) - ((127u - 15u) << 10));
  const uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry may roll into exponent: fine
  return static_cast<uint16_t>(sign | h);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0) {
    if (m == 0) return float_of(sign);
    // subnormal: m * 2^-24, exact in f32
    float v = static_cast<float>(m) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  if (e == 31) return float_of(sign | 0x7f800000u | (m << 13));
  return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t f32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  const uint32_t lsb = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + lsb) >> 16);
}

namespace {
float load_float(DType t, const void* p, size_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kF64: return static_cast<float>(static_cast<const double*>(p)[i]);
    default: DSQ_ASSERT(false, "load_float: not a float dtype");
  }
}
void store_float(DType t, void* p, size_t i, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(p)[i] = v; return;
    case DType::kF16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); return;
    case DType::kBF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); return;
    case DType::kF64: static_cast<double*>(p)[i] = v; return;
    default: DSQ_ASSERT(false, "store_float: not a float dtype");
  }
}
}  // namespace

void convert_elements(DType from, const void* src, DType to, void* dst, size_t n) {
  DSQ_ASSERT(dtype_is_float(from) && dtype_is_float(to), "convert_elements needs float dtypes");
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  const long long nn = static_cast<long long>(n);
  // The widening conversions every f16/bf16 model takes, without a per-element type switch so
  // they vectorize (f16 through F16C where the build has it: exact, like f16_to_f32, except
  // that a signalling NaN comes out quiet).
  if (to == DType::kF32 && (from == DType::kF16 || from == DType::kBF16)) {
    const auto* h = static_cast<const uint16_t*>(src);
    auto* f = static_cast<float*>(dst);
    constexpr long long kBlock = 8192;
#pragma omp parallel for schedule(static) if (nn > (1 << 16))
    for (long long b = 0; b < nn; b += kBlock) {
      const long long e = std::min(nn, b + kBlock);
      long long i = b;
      if (from == DType::kBF16) {
        for (; i < e; ++i) f[i] = float_of(static_cast<uint32_t>(h[i]) << 16);
        continue;
      }
#ifdef __F16C__
      for (; i + 8 <= e; i += 8)
        _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
#endif
      for (; i < e; ++i) f[i] = f16_to_f32(h[i]);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (nn > (1 << 16))
  for (long long i = 0; i < nn; ++i) store_float(to, dst, i, load_float(from, src, i));
}

namespace {

// Elements whose bits under `exp` are all set (an all-ones exponent: Inf or NaN), searched in
// blocks: a branch-free OR over the block, and a scan only of a block that has one.
template <class U>
int64_t first_all_ones(const U* v, size_t n, U exp) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    U any = 0;
    for (size_t i = b; i < e; ++i) any |= static_cast<U>((v[i] & exp) == exp);
    if (!any) continue;
    for (size_t i = b; i < e; ++i)
      if ((v[i] & exp) == exp) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

int64_t first_nonfinite(DType t, const void* src, size_t n) {
  switch (t) {
    case DType::kF16:
      return first_all_ones(static_cast<const uint16_t*>(src), n, uint16_t{0x7c00});
    case DType::kBF16:
      return first_all_ones(static_cast<const uint16_t*>(src), n, uint16_t{0x7f80});
    case DType::kF32:
      return first_all_ones(static_cast<const uint32_t*>(src), n, uint32_t{0x7f800000});
    case DType::kF64:
      return first_all_ones(static_cast<const uint64_t*>(src), n, uint64_t{0x7ff0000000000000});
    default:
      DSQ_ASSERT(false, "first_nonfinite needs a float dtype, got %s",
                 std::string(dtype_name(t)).c_str());
  }
  return -1;
}

}  // namespace dsq
