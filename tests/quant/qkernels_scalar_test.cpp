// The portable (non-AVX2) kernel paths, compiled here with __AVX2__ undefined under a renamed
// namespace (no ODR clash with the library's SIMD instantiations), against the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lib/quant/rtn.h"
#include "tests/quant/quant_test_util.h"

#undef __AVX2__
#define detail scalar_detail
#include "lib/quant/kernels/qkernels.h"
#undef detail

namespace dsq::quant {
namespace {

#ifdef DSQ_QKERNELS_AVX2
#error "the scalar kernel test must compile the portable path"
#endif

template <int Bits, bool Sym>
void check_scheme() {
  const QuantDesc d{static_cast<uint8_t>(Bits), 0, Sym};
  const QuantTraits& tr = quant_traits(d);
  for (uint32_t g : kQuantGroupSizes) {
    const int64_t rows = 3, cols = 172;
    const QuantDesc dg{static_cast<uint8_t>(Bits), g, Sym};
    const auto w = testing::gaussian(rows * cols, 50 + Bits);
    const auto x = testing::gaussian(cols, 51, 1.0f);
    const Tensor q = quantize_matrix_rtn(w.data(), rows, cols, dg);
    const int64_t G = quant_layout(dg, rows, cols).group;
    std::vector<float> a(cols), b(cols);
    for (int64_t r = 0; r < rows; ++r) {
      scalar_detail::dequantize_row_fast<Bits, Sym>(qrow(q, r), cols, G, a.data());
      tr.dequantize_row_ref(qrow(q, r), cols, G, b.data());
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << scheme_name(dg);
      double abs_sum = 0;
      for (int64_t c = 0; c < cols; ++c) abs_sum += std::fabs(static_cast<double>(b[c]) * x[c]);
      const double u = std::ldexp(1.0, -24), nu = (cols + 2) * u;  // Higham gamma_{n+2}
      const float fast = scalar_detail::dot_fast<Bits, Sym>(qrow(q, r), cols, G, x.data());
      const float ref = tr.dot_ref(qrow(q, r), cols, G, x.data());
      EXPECT_NEAR(fast, ref, nu / (1 - nu) * abs_sum + 1e-30) << scheme_name(dg);
    }
  }
}

// The portable row quantizer writes quantize_ref's bytes.
template <QuantScheme S>
void check_quantize_row() {
  for (uint32_t g : kQuantGroupSizes) {
    const int64_t rows = 3, cols = 172;
    const QuantDesc d(S, g);
    auto w = testing::gaussian(rows * cols, 60);
    w[cols + 5] = NAN;
    w[2 * cols + 9] = INFINITY;
    Tensor a = make_quant_tensor(rows, cols, d), b = make_quant_tensor(rows, cols, d);
    std::memset(a.mutable_bytes(), 0, a.nbytes());
    std::memset(b.mutable_bytes(), 0, b.nbytes());
    QuantMatrix qa(a), qb(b);
    for (int64_t r = 0; r < rows; ++r) {
      scalar_detail::quantize_row_fast<S>(w.data() + r * cols, cols, qa.group(), qa.row(r));
      quant_traits(d).quantize_ref(w.data() + r * cols, cols, qb.group(), qb.row(r));
    }
    ASSERT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << scheme_name(d);
  }
}

TEST(QKernelsScalar, PortableQuantizeRowMatchesReference) {
  check_quantize_row<QuantScheme::kInt8Sym>();
  check_quantize_row<QuantScheme::kInt4Sym>();
  check_quantize_row<QuantScheme::kInt4Asym>();
  check_quantize_row<QuantScheme::kInt4AsymF>();
  check_quantize_row<QuantScheme::kInt3Asym>();
  check_quantize_row<QuantScheme::kInt2Sym>();
}

TEST(QKernelsScalar, PortablePathMatchesReference) {
  check_scheme<8, true>();
  check_scheme<8, false>();
  check_scheme<6, true>();
  check_scheme<6, false>();
  check_scheme<5, true>();
  check_scheme<5, false>();
  check_scheme<4, true>();
  check_scheme<4, false>();
  check_scheme<3, true>();
  check_scheme<3, false>();
  check_scheme<2, true>();
  check_scheme<2, false>();
  static_assert(sizeof(kQuantGroupSizes) / sizeof(kQuantGroupSizes[0]) == 5);
}

}  // namespace
}  // namespace dsq::quant
