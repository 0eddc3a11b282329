// Element types and exact f16/bf16 conversions.
#pragma once

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
  // Grouped integer quantization; the element layout is given by a QuantDesc (quant_layout.h).
  kQInt = 16,
};

// Stable lowercase name ("f32", "f16", "bf16", "i8", "u8", "i32", "u32", "i64", "f64", "qint").
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

// Convert n elements between float types (f32/f16/bf16/f64). Parallel for large n.
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n);

}  // namespace dsq
