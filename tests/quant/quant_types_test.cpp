// The scheme table itself: names, values, lookups.
#include "lib/quant/quant_types.h"

#include <gtest/gtest.h>

#include <set>

#include "lib/core/error.h"

namespace dsq::quant {
namespace {

TEST(QuantTypes, TableRowsAreConsistent) {
  // bits {8, 4, 3, 2} x {sym, asym}, block FP8, int4_asymf (int4_asym fitted for Q4_1), and
  // bits {5, 6} x {sym, asym}
  ASSERT_EQ(kNumQuantTypes, 14u);
  std::set<std::string_view> names;
  for (size_t i = 0; i < kNumQuantTypes; ++i) {
    const QuantTraits& t = kQuantTraits[i];
    EXPECT_EQ(static_cast<size_t>(t.type), i);
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    if (!scheme_info(t.type).quantize_target()) {  // storage-only: decodes, never fitted
      EXPECT_EQ(t.fit, nullptr);
      EXPECT_NE(t.dequantize_row, nullptr);
      EXPECT_NE(t.dot, nullptr);
      EXPECT_EQ(parse_scheme_name(scheme_name(t.desc(128))), t.desc(128));
      EXPECT_THROW(make_quant_desc(scheme_name(t.desc(128))), UsageError);
      continue;
    }
    EXPECT_EQ(quant_type_from_name(t.name), t.type);
    EXPECT_EQ(&quant_traits(t.desc(128)), &t);
    // int_scheme names the plain row of a width and symmetry; an f16-min row is its variant.
    if (scheme_info(t.type).f16_min) {
      EXPECT_EQ(t.bits, 4);
      EXPECT_TRUE(t.has_zero);
      EXPECT_EQ(int_scheme(t.bits, false), QuantScheme::kInt4Asym);
    } else {
      EXPECT_EQ(int_scheme(t.bits, !t.has_zero), t.type);
    }
    EXPECT_EQ(t.name, scheme_info(t.type).name);  // the core and codec rows agree
    for (uint32_t g : kQuantGroupSizes) EXPECT_EQ(parse_scheme_name(scheme_name(t.desc(g))), t.desc(g));
    for (auto* fn : {reinterpret_cast<const void*>(t.quantize_ref), reinterpret_cast<const void*>(t.quantize_weighted),
                     reinterpret_cast<const void*>(t.dequantize_row), reinterpret_cast<const void*>(t.dot),
                     reinterpret_cast<const void*>(t.dequantize_row_ref), reinterpret_cast<const void*>(t.dot_ref)})
      EXPECT_NE(fn, nullptr);
  }
  // On-disk values are stable.
  EXPECT_EQ(static_cast<int>(QuantType::kInt8Sym), 0);
  EXPECT_EQ(static_cast<int>(QuantType::kInt4Asym), 3);
  EXPECT_EQ(static_cast<int>(QuantType::kInt2Asym), 7);
  EXPECT_EQ(static_cast<int>(QuantType::kFp8E4M3), 8);
  EXPECT_EQ(static_cast<int>(QuantType::kInt6Asym), 13);
  EXPECT_EQ(scheme_name(QuantDesc(QuantType::kFp8E4M3, 128)), "fp8_e4m3_b128");
}

TEST(QuantTypes, LookupsAndValidation) {
  EXPECT_EQ(supported_bits_list(), "2, 3, 4, 5, 6, 8");
  EXPECT_FALSE(quant_type_from_name("int7_sym").has_value());
  EXPECT_THROW(make_quant_desc(7, 32, true), UsageError);
  EXPECT_THROW(make_quant_desc(1, 32, true), UsageError);
  EXPECT_EQ(make_quant_desc(4, 128, false), (QuantDesc{4, 128, false}));
  EXPECT_EQ(make_quant_desc(3, 0, true), (QuantDesc{3, 0, true}));
  EXPECT_THROW(make_quant_desc(4, 100, false), UsageError);
  EXPECT_EQ(make_quant_desc(6, 32, false), (QuantDesc{6, 32, false}));
  // One spelling: the row name and the group.
  EXPECT_EQ(scheme_name(QuantDesc{4, 128, false}), "int4_asym_g128");
  EXPECT_EQ(scheme_name(QuantDesc{8, 0, true}), "int8_sym_perchannel");
  EXPECT_EQ(make_quant_desc("int3_sym_g32"), (QuantDesc{3, 32, true}));
  EXPECT_EQ(make_quant_desc("int8_asym_perchannel"), (QuantDesc{8, 0, false}));
  for (const char* bad : {"int4_asym", "int4_asym_g", "int4_asym_g0128", "int4_asym_g100", "int7_sym_g32",
                          "q4_g128_asym", "int4_asym_g128x"})
    EXPECT_THROW(make_quant_desc(bad), UsageError) << bad;
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{8, 32, true}).bits_per_weight(32), 8.5);
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{3, 32, false}).bytes_per_group(32), 12.0 + 3.0);
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{5, 32, true}).bytes_per_group(32), 20.0 + 2.0);
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{6, 64, false}).bits_per_weight(64), 6.0 + 24.0 / 64);
}

}  // namespace
}  // namespace dsq::quant
