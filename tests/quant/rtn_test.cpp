// RTN properties over every row of the scheme table x every group size x ragged widths.
#include "lib/quant/rtn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lib/core/dtype.h"
#include "lib/core/error.h"
#include "tests/quant/quant_test_util.h"

namespace dsq::quant {
namespace {

using testing::all_cases;
using testing::gaussian;
using testing::kRaggedCols;

// Largest |w - dequant| allowed for weight w inside its group's fitted range: half a step, plus
// the f32 rounding of w/scale and of scale*(q - zero) (each at most FLT_EPSILON relative).
double rtn_bound(float w, float scale) {
  return 0.5 * scale + 2.0 * FLT_EPSILON * (std::fabs(w) + 0.5 * scale);
}

// Checks every element of q against the analytic RTN bound and returns the worst violation ratio.
void expect_within_bound(const std::vector<float>& w, const Tensor& q, const std::string& what) {
  const int64_t rows = q.dim(0), cols = q.dim(1);
  Tensor qc = q;
  QuantMatrix qm(qc);
  const QuantTraits& tr = quant_traits(q.quant());
  std::vector<float> deq(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    tr.dequantize_row_ref(qrow(q, r), cols, qm.group(), deq.data());
    for (int64_t c = 0; c < cols; ++c) {
      const float x = w[static_cast<size_t>(r * cols + c)];
      const GroupParams p = qm.params(r, qm.group_of(c));
      ASSERT_TRUE(std::isfinite(deq[static_cast<size_t>(c)])) << what;
      ASSERT_LE(std::fabs(x - deq[static_cast<size_t>(c)]), rtn_bound(x, p.scale))
          << what << " row " << r << " col " << c << " scale " << p.scale;
    }
  }
}

TEST(Rtn, RoundTripWithinHalfStepEveryScheme) {
  for (const auto& k : all_cases()) {
    for (int64_t cols : kRaggedCols) {
      const int64_t rows = 6;
      const auto w = gaussian(rows * cols, 1234 + static_cast<uint32_t>(cols));
      const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
      ASSERT_EQ(q.nbytes(), quant_layout(k.desc(), rows, cols).total_bytes);
      expect_within_bound(w, q, k.str() + " cols " + std::to_string(cols));
    }
  }
}

// int4_asymf (the f16-min row): every group's -scale x zero is an exact f16 (ggml Q4_1's min), at
// every magnitude down to f16 subnormal scales, and its scale is int4_asym's moved up by at most
// 16 f16 steps (for normal scales less than 1/64), often not at all.
TEST(Rtn, F16MinRowKeepsScaleTimesZeroAnExactF16) {
  const QuantDesc asymf{QuantScheme::kInt4AsymF, 32}, asym{4, 32, false};
  int64_t nonzero = 0, same = 0;
  for (const float mag : {1e-6f, 3e-5f, 1e-3f, 0.02f, 1.0f, 300.0f}) {
    const int64_t rows = 16, cols = 128;
    auto w = gaussian(rows * cols, 99, 1.0f);
    for (auto& x : w) x = x * mag + 0.3f * mag;  // off-centre: zero points spread over 0..15
    const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, asymf);
    const Tensor ref = quantize_matrix_rtn(w.data(), rows, cols, asym);
    Tensor qc = q, rc = ref;
    const QuantMatrix qm(qc), rm(rc);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / 32; ++g) {
        const GroupParams p = qm.params(r, g), pr = rm.params(r, g);
        const float m = -(p.scale * static_cast<float>(p.zero));
        ASSERT_EQ(f16_to_f32(f32_to_f16(m)), m) << mag << " " << p.scale << " x " << int(p.zero);
        ASSERT_GE(p.scale, pr.scale);
        ASSERT_LE(f32_to_f16(p.scale) - f32_to_f16(pr.scale), 16) << p.scale << " " << pr.scale;
        if (pr.scale >= 6.2e-5f) {
          EXPECT_LE(p.scale, pr.scale * (1.0f + 1.0f / 64.0f)) << mag;
        }
        nonzero += p.zero != 0;
        same += p.scale == pr.scale;
      }
    expect_within_bound(w, q, "int4_asymf magnitude " + std::to_string(mag));
  }
  EXPECT_GT(nonzero, 0);
  EXPECT_GT(same, 0);
}

TEST(Rtn, SymmetricInt8ErrorAtMostAbsmaxOver254) {
  // scale = absmax/127 rounded up to f16 (relative increase < 2^-10), so the half-step bound is
  // absmax/254 * (1 + 2^-10) plus f32 rounding.
  const QuantDesc d{8, 32, true};
  const int64_t rows = 4, cols = 172;
  const auto w = gaussian(rows * cols, 7);
  const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, d);
  std::vector<float> deq(static_cast<size_t>(rows * cols));
  quant_traits(d).dequantize_row_ref(qrow(q, 0), cols, 32, deq.data());
  for (int64_t r = 0; r < rows; ++r) {
    quant_traits(d).dequantize_row_ref(qrow(q, r), cols, 32, deq.data() + r * cols);
    for (int64_t g0 = 0; g0 < cols; g0 += 32) {
      float absmax = 0;
      for (int64_t c = g0; c < std::min<int64_t>(g0 + 32, cols); ++c)
        absmax = std::max(absmax, std::fabs(w[static_cast<size_t>(r * cols + c)]));
      for (int64_t c = g0; c < std::min<int64_t>(g0 + 32, cols); ++c) {
        const size_t i = static_cast<size_t>(r * cols + c);
        EXPECT_LE(std::fabs(w[i] - deq[i]), absmax / 254.0 * (1.0 + std::ldexp(1.0, -10)) + 4 * FLT_EPSILON * absmax);
      }
    }
  }
}

TEST(Rtn, RequantizingDequantizedValuesGivesSameCodes) {
  for (const auto& k : all_cases()) {
    const int64_t rows = 3, cols = 172;
    const auto w = gaussian(rows * cols, 99);
    Tensor q = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
    QuantMatrix qm(q);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const GroupParams p = qm.params(r, qm.group_of(c));
        const uint32_t code = qm.code(r, c);
        ASSERT_EQ(quantize_value(dequantize_value(code, p), p, k.tr->bits), code) << k.str();
      }
  }
}

TEST(Rtn, AllZeroAndConstantGroupsAreFinite) {
  for (const auto& k : all_cases()) {
    const int64_t cols = 100;
    for (float v : {0.0f, 0.37f, -2.5f, 1e-40f}) {
      std::vector<float> w(static_cast<size_t>(2 * cols), v);
      const Tensor q = quantize_matrix_rtn(w.data(), 2, cols, k.desc());
      Tensor qc = q;
      QuantMatrix qm(qc);
      for (int64_t g = 0; g < qm.n_groups(); ++g) {
        const GroupParams p = qm.params(0, g);
        ASSERT_TRUE(std::isfinite(p.scale)) << k.str();
        if (v == 0.0f) {
          EXPECT_EQ(p.scale, 0.0f) << k.str();
        }
      }
      expect_within_bound(w, q, k.str() + " constant " + std::to_string(v));
      if (v == 0.0f) {
        std::vector<float> deq(static_cast<size_t>(cols), 1.0f);
        k.tr->dequantize_row(qrow(q, 1), cols, qm.group(), deq.data());
        for (float x : deq) EXPECT_EQ(x, 0.0f);
      }
    }
  }
}

TEST(Rtn, StructuredInputs) {
  const int64_t cols = 256;
  std::vector<std::vector<float>> inputs;
  std::vector<float> ramp(cols), outlier(cols, 0.01f), denorm(cols), plateau(cols);
  for (int64_t c = 0; c < cols; ++c) {
    ramp[c] = -1.0f + 2.0f * static_cast<float>(c) / (cols - 1);
    denorm[c] = (c % 2 ? 1.0f : -1.0f) * 1e-39f * static_cast<float>(c % 7);
    plateau[c] = c < cols / 2 ? 0.5f : -0.25f;
  }
  outlier[17] = 50.0f;
  for (const auto& k : all_cases()) {
    for (const auto* in : {&ramp, &outlier, &denorm, &plateau}) {
      const Tensor q = quantize_matrix_rtn(in->data(), 1, cols, k.desc());
      expect_within_bound(*in, q, k.str());
    }
  }
}

TEST(Rtn, HugeWeightsSaturateScaleWithoutInf) {
  std::vector<float> w = {1e30f, -3e30f, 2.0f, 0.0f};
  const QuantDesc d{4, 0, false};
  Tensor q = quantize_matrix_rtn(w.data(), 1, 4, d);
  QuantMatrix qm(q);
  EXPECT_EQ(qm.params(0, 0).scale, 65504.0f);
  std::vector<float> deq(4);
  quant_traits(d).dequantize_row(qrow(q, 0), 4, 4, deq.data());
  for (float x : deq) EXPECT_TRUE(std::isfinite(x));
}

TEST(Rtn, FitGroupHandComputed) {
  // asym 4-bit, range [-1, 2]: scale = 3/15 = 0.2 rounded UP to f16 (0.2 is not f16-exact:
  // the nearest f16 below is 0.199951..., above 0.2000732...), zero = round(1 / scale) = 5.
  const float w[] = {-1.0f, 0.5f, 2.0f, 0.0f};
  const GroupParams p = fit_group(w, 4, QuantDesc{4, 0, false}, nullptr, false);
  EXPECT_EQ(p.scale, f16_to_f32(f32_to_f16(0.2f)) < 0.2f ? f16_to_f32(f32_to_f16(0.2f) + 1)
                                                            : f16_to_f32(f32_to_f16(0.2f)));
  EXPECT_GE(p.scale, 0.2f);
  EXPECT_EQ(p.zero, 5);
  EXPECT_EQ(quantize_value(2.0f, p, 4), 15u);
  EXPECT_EQ(quantize_value(-1.0f, p, 4), 0u);
  // sym 4-bit: absmax 2 -> scale 2/7 rounded up, zero fixed at 8.
  const GroupParams s = fit_group(w, 4, QuantDesc{4, 0, true}, nullptr, false);
  EXPECT_EQ(s.zero, 8);
  EXPECT_GE(s.scale, 2.0f / 7.0f);
  EXPECT_LT(s.scale, 2.0f / 7.0f * (1.0f + 1.0f / 1024.0f));
  EXPECT_EQ(quantize_value(2.0f, s, 4), 15u);
  EXPECT_EQ(quantize_value(-2.0f, s, 4), 1u);
  // Positive-only group: the range is widened to contain 0, so zero = 0 and 0.0 is exact.
  const float pos[] = {1.0f, 3.0f};
  const GroupParams pp = fit_group(pos, 2, QuantDesc{8, 0, false}, nullptr, false);
  EXPECT_EQ(pp.zero, 0);
  EXPECT_EQ(dequantize_value(quantize_value(0.0f, pp, 8), pp), 0.0f);
}

TEST(Rtn, PackingIsLsbFirstPerRow) {
  // 4-bit sym per-channel with absmax 7: scale 1, zero 8, so code = w + 8.
  const float w[] = {-7, 0, 7, 1, -1, 3};
  const QuantDesc d{4, 0, true};
  const Tensor q = quantize_matrix_rtn(w, 1, 6, d);
  const auto* b = reinterpret_cast<const uint8_t*>(q.bytes());
  EXPECT_EQ(b[0], (1 | (8 << 4)));
  EXPECT_EQ(b[1], (15 | (9 << 4)));
  EXPECT_EQ(b[2], (7 | (11 << 4)));
  // 3-bit: codes straddle bytes; check against the layout's reader for every weight.
  const QuantDesc d3{3, 0, false};
  const auto g = gaussian(2 * 50, 5);
  Tensor q3 = quantize_matrix_rtn(g.data(), 2, 50, d3);
  QuantMatrix qm(q3);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t c = 0; c < 50; ++c)
      EXPECT_EQ(qm.code(r, c), quantize_value(g[static_cast<size_t>(r * 50 + c)], qm.params(r, 0), 3));
}

TEST(Rtn, BitsPerWeightMatchesTable) {
  for (const auto& k : all_cases()) {
    if (k.group == 0) continue;
    const int64_t cols = 4 * k.group;
    EXPECT_DOUBLE_EQ(quant_bits_per_weight(k.desc(), 16, cols), k.tr->bits_per_weight(k.group)) << k.str();
  }
  EXPECT_DOUBLE_EQ(kQuantTraits[static_cast<int>(QuantType::kInt4Asym)].bits_per_weight(128), 4.0 + 24.0 / 128);
}

TEST(Rtn, MseClipNeverIncreasesError) {
  for (const auto& k : all_cases()) {
    const int64_t rows = 5, cols = 172;
    auto w = gaussian(rows * cols, 77);
    w[3] = 0.3f;  // outliers make clipping worthwhile
    w[200] = -0.25f;
    const auto imp = gaussian(cols, 3, 1.0f);
    std::vector<float> importance(imp.size());
    for (size_t i = 0; i < imp.size(); ++i) importance[i] = std::fabs(imp[i]) + 0.01f;
    for (const float* im : {static_cast<const float*>(nullptr), static_cast<const float*>(importance.data())}) {
      Tensor plain = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
      RtnOptions o;
      o.mse_clip = true;
      o.importance = im;
      Tensor clipped = quantize_matrix_rtn(w.data(), rows, cols, k.desc(), o);
      QuantMatrix qp(plain), qc(clipped);
      double tot_plain = 0, tot_clip = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < qp.n_groups(); ++g) {
          const int64_t c0 = g * qp.group(), n = std::min(qp.group(), cols - c0);
          const float* wg = w.data() + r * cols + c0;
          const float* ig = im ? im + c0 : nullptr;
          const double ep = group_sq_error(wg, n, qp.params(r, g), k.tr->bits, ig);
          const double ec = group_sq_error(wg, n, qc.params(r, g), k.tr->bits, ig);
          ASSERT_LE(ec, ep) << k.str();
          tot_plain += ep;
          tot_clip += ec;
        }
      EXPECT_LE(tot_clip, tot_plain) << k.str();
      if (k.tr->bits <= 4 && k.group == 0) {
        EXPECT_LT(tot_clip, tot_plain) << k.str();
      }
    }
  }
}

TEST(Rtn, OneAndManyThreadsGiveIdenticalBytes) {
  const int64_t rows = 200, cols = 172;  // above the size at which quantization goes parallel
  const auto w = gaussian(rows * cols, 4242);
  for (const auto& k : all_cases()) {
    for (bool clip : {false, true}) {
      RtnOptions o;
      o.mse_clip = clip;
      const Tensor a = testing::with_threads(1, [&] { return quantize_matrix_rtn(w.data(), rows, cols, k.desc(), o); });
      const Tensor b = testing::with_threads(4, [&] { return quantize_matrix_rtn(w.data(), rows, cols, k.desc(), o); });
      ASSERT_EQ(a.nbytes(), b.nbytes());
      EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << k.str();
    }
  }
}

TEST(Rtn, ColumnWiseApiReproducesMatrixQuantization) {
  // What GPTQ does: fit each group's params, then quantize column by column.
  for (const auto& k : all_cases()) {
    const int64_t rows = 4, cols = 100;
    const auto w = gaussian(rows * cols, 8);
    const Tensor ref = quantize_matrix_rtn(w.data(), rows, cols, k.desc());
    Tensor q = make_quant_tensor(rows, cols, k.desc());
    QuantMatrix qm(q);
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < rows; ++r) {
        if (c % qm.group() == 0) {
          const int64_t n = std::min(qm.group(), cols - c);
          qm.set_params(r, qm.group_of(c), fit_group(w.data() + r * cols + c, n, k.desc(), nullptr, false));
        }
        const float deq = qm.quantize_store(r, c, w[static_cast<size_t>(r * cols + c)]);
        EXPECT_EQ(deq, dequantize_value(qm.code(r, c), qm.params(r, qm.group_of(c))));
      }
    }
    ASSERT_EQ(q.nbytes(), ref.nbytes());
    EXPECT_EQ(std::memcmp(q.bytes(), ref.bytes(), q.nbytes()), 0) << k.str();
  }
}

TEST(Rtn, QuantizeTensorFromF16MatchesF32Path) {
  const int64_t rows = 9, cols = 172;
  auto w = gaussian(rows * cols, 31);
  for (auto& x : w) x = f16_to_f32(f32_to_f16(x));  // exactly representable in f16
  Tensor f16(DType::kF16, Shape{rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) f16.mutable_data<uint16_t>()[i] = f32_to_f16(w[static_cast<size_t>(i)]);
  const QuantDesc d{4, 32, false};
  QuantErrorStats s1, s2;
  const Tensor a = quantize_matrix_rtn(w.data(), rows, cols, d, {}, &s1);
  const Tensor b = quantize_tensor_rtn(f16, d, {}, &s2);
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0);
  EXPECT_EQ(s1.err_sq, s2.err_sq);
  const QuantErrorStats s3 = quant_error(f16, b);
  EXPECT_EQ(s3.err_sq, s1.err_sq);
  EXPECT_GT(s1.sqnr_db(), 15.0);  // 4-bit g32 on Gaussian data: ~20 dB
  EXPECT_LT(s1.sqnr_db(), 30.0);
  EXPECT_THROW(quantize_tensor_rtn(Tensor(DType::kF32, Shape{4}), d), ShapeError);
}

}  // namespace
}  // namespace dsq::quant
