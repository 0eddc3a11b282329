// The scheme table itself: names, values, lookups.
#include "lib/quant/quant_types.h"

#include <gtest/gtest.h>

#include <set>

#include "lib/core/error.h"

namespace dsq::quant {
namespace {

TEST(QuantTypes, TableRowsAreConsistent) {
  ASSERT_EQ(kNumQuantTypes, 8u);  // bits {8, 4, 3, 2} x {sym, asym}
  std::set<std::string_view> names;
  for (size_t i = 0; i < kNumQuantTypes; ++i) {
    const QuantTraits& t = kQuantTraits[i];
    EXPECT_EQ(static_cast<size_t>(t.type), i);
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    EXPECT_EQ(quant_type_from_name(t.name), t.type);
    EXPECT_EQ(&quant_traits(t.desc(128)), &t);
    EXPECT_EQ(quant_type_of(t.desc(0)), t.type);
    for (auto* fn : {reinterpret_cast<const void*>(t.quantize_ref), reinterpret_cast<const void*>(t.quantize_weighted),
                     reinterpret_cast<const void*>(t.dequantize_row), reinterpret_cast<const void*>(t.dot),
                     reinterpret_cast<const void*>(t.dequantize_row_ref), reinterpret_cast<const void*>(t.dot_ref)})
      EXPECT_NE(fn, nullptr);
  }
  // On-disk values are stable.
  EXPECT_EQ(static_cast<int>(QuantType::kInt8Sym), 0);
  EXPECT_EQ(static_cast<int>(QuantType::kInt4Asym), 3);
  EXPECT_EQ(static_cast<int>(QuantType::kInt2Asym), 7);
}

TEST(QuantTypes, LookupsAndValidation) {
  EXPECT_EQ(supported_bits_list(), "2, 3, 4, 8");
  EXPECT_FALSE(quant_type_from_name("int5_sym").has_value());
  EXPECT_THROW(quant_traits(QuantDesc{5, 32, true}), ConfigError);
  EXPECT_TRUE(desc_supported(QuantDesc{4, 128, false}));
  EXPECT_TRUE(desc_supported(QuantDesc{3, 0, true}));
  EXPECT_FALSE(desc_supported(QuantDesc{4, 100, false}));
  EXPECT_FALSE(desc_supported(QuantDesc{6, 32, false}));
  EXPECT_EQ(desc_str(QuantDesc{4, 128, false}), "int4_asym g128");
  EXPECT_EQ(desc_str(QuantDesc{8, 0, true}), "int8_sym per-channel");
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{8, 32, true}).bits_per_weight(32), 8.5);
  EXPECT_DOUBLE_EQ(quant_traits(QuantDesc{3, 32, false}).bytes_per_group(32), 12.0 + 3.0);
}

}  // namespace
}  // namespace dsq::quant
