// The block-FP8 storage scheme (DeepSeek-V3/R1's release format): float8 e4m3fn decoding and
// encoding, the fp8_e4m3_b<B> layout with ragged edge blocks, and every consumer that reads it
// (dequantize_rows, qmatmul's GEMV and GEMM paths, Tensor::to) against a direct computation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lib/core/dtype.h"
#include "lib/core/quant_layout.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/quant_types.h"

namespace dsq::quant {
namespace {

TEST(Fp8, E4m3fnCodesDecodeToTheStandardValues) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);      // largest finite
  EXPECT_EQ(fp8_e4m3_to_f32(0xFE), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0.015625f);   // smallest normal, 2^-6
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), 0.001953125f);  // smallest subnormal, 2^-9
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x3C), 1.5f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xFF)));
  EXPECT_TRUE(fp8_e4m3_is_nan(0x7F) && fp8_e4m3_is_nan(0xFF) && !fp8_e4m3_is_nan(0x7E));
  // Ascending magnitudes for codes 0x00..0x7E (what the encoder's search relies on).
  for (unsigned b = 1; b < 0x7F; ++b) EXPECT_LT(fp8_e4m3_to_f32(static_cast<uint8_t>(b - 1)), fp8_e4m3_to_f32(static_cast<uint8_t>(b)));
}

TEST(Fp8, EncoderRoundsToNearestEvenAndSaturates) {
  for (unsigned b = 0; b < 256; ++b) {
    if (fp8_e4m3_is_nan(static_cast<uint8_t>(b)) || b == 0x80) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32(static_cast<uint8_t>(b))), b) << b;
  }
  // 1.0625 lies halfway between 1.0 (0x38, even) and 1.125 (0x39): ties go to the even code.
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);  // between 0x39 and 0x3A: even is 0x3A
  EXPECT_EQ(f32_to_fp8_e4m3(1.07f), 0x39);
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7E);
  EXPECT_EQ(f32_to_fp8_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nanf("")), 0x7F);
}

// A [rows, cols] block-FP8 tensor with random codes and per-block scales, and its f32 values.
Tensor make_fp8(int64_t rows, int64_t cols, uint32_t block, std::vector<float>* values) {
  const QuantDesc d(QuantScheme::kFp8E4M3, block);
  Tensor t(DType::kQInt, Shape{rows, cols}, &d);
  const QuantLayout L = quant_layout(d, rows, cols);
  auto* p = reinterpret_cast<uint8_t*>(t.mutable_bytes());
  std::mt19937 rng(3);
  auto* scales = reinterpret_cast<float*>(p + L.scales_offset);
  const int64_t n_scales = static_cast<int64_t>(L.scales_bytes / 4);
  for (int64_t i = 0; i < n_scales; ++i) scales[i] = 0.001f * static_cast<float>(1 + rng() % 97);
  values->resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      uint8_t code = static_cast<uint8_t>(rng());
      if (fp8_e4m3_is_nan(code)) code = 0;
      p[r * cols + c] = code;
      (*values)[static_cast<size_t>(r * cols + c)] =
          fp8_e4m3_to_f32(code) * scales[(r / block) * L.n_groups + c / block];
    }
  return t;
}

TEST(Fp8, LayoutAndEveryReaderAgreeWithTheDefinition) {
  const int64_t rows = 144, cols = 200;  // ragged in both dims, as kv_a_proj_with_mqa
  std::vector<float> want;
  const Tensor t = make_fp8(rows, cols, 128, &want);
  const QuantLayout L = quant_layout(t.quant(), rows, cols);
  EXPECT_EQ(L.n_groups, 2);
  EXPECT_EQ(L.scales_bytes, size_t{2 * 2 * 4});
  EXPECT_NEAR(quant_bits_per_weight(t.quant(), rows, cols), 8.0 + 32.0 * 4 / (rows * cols), 1e-12);
  std::vector<float> got(want.size());
  dequantize_rows(t, 0, rows, got.data());
  EXPECT_EQ(got, want);
  const Tensor f = t.to(DType::kF32);
  EXPECT_EQ(std::memcmp(f.data<float>(), want.data(), want.size() * 4), 0);
  // qmatmul: GEMV (m = 1) and GEMM (m = 5) against the f32 product.
  std::mt19937 rng(8);
  std::normal_distribution<float> nd;
  for (const int64_t m : {int64_t{1}, int64_t{5}}) {
    std::vector<float> x(static_cast<size_t>(m * cols)), y(static_cast<size_t>(m * rows));
    for (auto& v : x) v = nd(rng);
    qmatmul(t, x.data(), m, y.data());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          ref += double(want[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(i * cols + c)];
          mag += std::fabs(double(want[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(i * cols + c)]);
        }
        EXPECT_NEAR(y[static_cast<size_t>(i * rows + r)], ref, 1e-5 * mag + 1e-6) << m << " " << r;
      }
  }
  EXPECT_FALSE(scheme_info(QuantScheme::kFp8E4M3).quantize_target());
  EXPECT_EQ(scheme_name(t.quant()), "fp8_e4m3_b128");
}

}  // namespace
}  // namespace dsq::quant
