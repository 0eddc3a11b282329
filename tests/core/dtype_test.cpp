#include "lib/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace dsq {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// convert_elements' widening fast paths (F16C, shifted bf16) give the scalar conversions' bits for
// all 65536 values, in one call large enough for its parallel blocks and vector tails (NaNs stay
// NaN; F16C quiets a signalling one).
TEST(DType, WideningConversionsMatchTheScalarOnes) {
  std::vector<uint16_t> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  std::vector<float> f(h.size());
  for (const DType from : {DType::kF16, DType::kBF16}) {
    convert_elements(from, h.data(), DType::kF32, f.data(), h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      const float want = from == DType::kF16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(f[i])) << i;
      else
        ASSERT_EQ(bits(f[i]), bits(want)) << dtype_name(from) << " " << i;
    }
  }
}

// Every one of the 65536 f16 values survives f16 -> f32 -> f16 exactly (NaNs stay NaN).
TEST(DType, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const uint16_t back = f32_to_f16(f);
    if (std::isnan(f)) {
      EXPECT_EQ(back & 0x7c00u, 0x7c00u);
      EXPECT_NE(back & 0x3ffu, 0u) << h;
    } else {
      EXPECT_EQ(back, h) << "f16 bits " << h;
    }
  }
}

// f32 -> f16 rounds to nearest, ties to even: check midpoints between neighbouring f16 values.
TEST(DType, F16RoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x7bffu; ++h) {
    const double a = f16_to_f32(static_cast<uint16_t>(h));
    const double b = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((a + b) / 2);  // exact in f32 for f16 neighbours
    const uint16_t want = (h & 1u) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    ASSERT_EQ(f32_to_f16(mid), want) << "tie between " << h << " and " << h + 1;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), h);
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 1e9f)), h + 1);
  }
}

TEST(DType, F16SpecialValues) {
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00u);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00u);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);  // rounds up to Inf
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000u);
  EXPECT_EQ(f32_to_f16(5.9604644775390625e-08f), 0x0001u);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(2.98023223876953125e-08f), 0x0000u);  // half of it: tie to even (0)
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(from_bits(0x7f800001u)))));  // signalling NaN
}

TEST(DType, BF16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      EXPECT_EQ(f32_to_bf16(f), h);
    }
  }
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80u);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82u);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81u);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_EQ(bits(bf16_to_f32(f32_to_bf16(-std::numeric_limits<float>::infinity()))), 0xff800000u);
}

TEST(DType, NamesRoundTrip) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI8, DType::kU8, DType::kI32,
                  DType::kQInt}) {
    auto back = dtype_from_name(dtype_name(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(dtype_from_name("f8").has_value());
}

}  // namespace
}  // namespace dsq
