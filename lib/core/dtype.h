// Element types and exact f16/bf16 conversions.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace dsq {

// On-disk enum (the dsq format stores these values): explicit numbers, never reused.
enum class DType : uint16_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kI8 = 3,
  kU8 = 4,
  kI32 = 5,
  kU32 = 6,
  kI64 = 7,
  kF64 = 8,
  // float8 e4m3fn as released checkpoints store it (safetensors "F8_E4M3"); a reader pairs it
  // with its block scales into a kQInt tensor of the fp8_e4m3 scheme (quant_layout.h).
  kF8E4M3 = 9,
  // Grouped integer quantization; the element layout is given by a QuantDesc (quant_layout.h).
  kQInt = 16,
};

// Stable lowercase name ("f32", "f16", "bf16", "i8", "u8", "i32", "u32", "i64", "f64", "f8_e4m3",
// "qint").
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes per element; 0 for kQInt (its size comes from the QuantDesc).
size_t dtype_size(DType t);
bool dtype_is_float(DType t);  // f32, f16, bf16, f64

// IEEE binary16 <-> binary32. Exact: round-to-nearest-even, subnormals, Inf and NaN preserved
// (NaN payload top bits kept, quiet bit forced so a NaN never becomes Inf).
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
// bfloat16 <-> binary32, round-to-nearest-even, NaN stays NaN.
uint16_t f32_to_bf16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// float8 e4m3fn (OCP FP8, PyTorch float8_e4m3fn): sign, 4 exponent bits (bias 7), 3 mantissa
// bits; subnormals below 2^-6; no infinity; 0x7F and 0xFF are NaN; largest finite 448.
extern const std::array<float, 256> kFp8E4M3Table;  // code -> value
inline float fp8_e4m3_to_f32(uint8_t b) { return kFp8E4M3Table[b]; }
inline bool fp8_e4m3_is_nan(uint8_t b) { return (b & 0x7F) == 0x7F; }
// Round to nearest (ties to even), saturating at +-448; NaN -> 0x7F.
uint8_t f32_to_fp8_e4m3(float f);

// Convert n elements between float types (f32/f16/bf16/f64). Parallel for large n.
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n);

// The index of the first NaN or Inf among n elements of a float type (f32/f16/bf16/f64), or -1.
// Tests the exponent bits in place (no conversion), in blocks that vectorize.
int64_t first_nonfinite(DType t, const void* src, size_t n);

}  // namespace dsq
