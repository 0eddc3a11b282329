#include "lib/quant/quant_types.h"

#include "lib/core/error.h"
#include "lib/quant/codec_ref.h"
#include "lib/quant/kernels/qkernels.h"

namespace dsq::quant {

const QuantTraits kQuantTraits[] = {
#define DSQ_QUANT_TYPE(e, value, nm, b, sym)                                                       \
  QuantTraits{QuantType::e,                                                                        \
              nm,                                                                                  \
              b,                                                                                   \
              !(sym),                                                                              \
              &detail::quantize_row_ref<b, sym>,                                                   \
              &detail::quantize_row_weighted<b, sym>,                                              \
              &detail::dequantize_row_fast<b, sym>,                                                \
              &detail::dot_fast<b, sym>,                                                           \
              &detail::dequantize_row_ref<b, sym>,                                                 \
              &detail::dot_ref<b, sym>},
#include "lib/quant/quant_types.def"
#undef DSQ_QUANT_TYPE
};
const size_t kNumQuantTypes = sizeof(kQuantTraits) / sizeof(kQuantTraits[0]);

// The table is indexed by enum value: rows must be listed in value order without gaps.
namespace {
constexpr int kRowValues[] = {
#define DSQ_QUANT_TYPE(e, value, nm, b, sym) value,
#include "lib/quant/quant_types.def"
#undef DSQ_QUANT_TYPE
};
constexpr bool rows_in_value_order() {
  for (size_t i = 0; i < sizeof(kRowValues) / sizeof(kRowValues[0]); ++i)
    if (kRowValues[i] != static_cast<int>(i)) return false;
  return true;
}
static_assert(rows_in_value_order(), "quant_types.def rows must be in value order without gaps");
}  // namespace

const QuantTraits& quant_traits(QuantType t) {
  const auto i = static_cast<size_t>(t);
  DSQ_ASSERT(i < kNumQuantTypes, "bad QuantType %zu", i);
  return kQuantTraits[i];
}

QuantType quant_type_of(const QuantDesc& d) {
  for (size_t i = 0; i < kNumQuantTypes; ++i)
    if (kQuantTraits[i].bits == d.bits && kQuantTraits[i].has_zero == !d.sym)
      return kQuantTraits[i].type;
  throw ConfigError(strprintf("unsupported quantization width %d bits (supported: %s)", d.bits,
                              supported_bits_list().c_str()));
}

const QuantTraits& quant_traits(const QuantDesc& d) { return quant_traits(quant_type_of(d)); }

std::optional<QuantType> quant_type_from_name(std::string_view name) {
  for (size_t i = 0; i < kNumQuantTypes; ++i)
    if (kQuantTraits[i].name == name) return kQuantTraits[i].type;
  return std::nullopt;
}

std::string supported_bits_list() {
  std::string out;
  for (int b = 1; b <= 8; ++b) {
    bool found = false;
    for (size_t i = 0; i < kNumQuantTypes; ++i) found |= kQuantTraits[i].bits == b;
    if (!found) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(b);
  }
  return out;
}

bool desc_supported(const QuantDesc& d) {
  bool bits_ok = false;
  for (size_t i = 0; i < kNumQuantTypes; ++i) bits_ok |= kQuantTraits[i].bits == d.bits;
  bool group_ok = false;
  for (uint32_t g : kQuantGroupSizes) group_ok |= g == d.group;
  return bits_ok && group_ok;
}

std::string desc_str(const QuantDesc& d) {
  std::string name = strprintf("int%d_%s", d.bits, d.sym ? "sym" : "asym");
  for (size_t i = 0; i < kNumQuantTypes; ++i)
    if (kQuantTraits[i].bits == d.bits && kQuantTraits[i].has_zero == !d.sym)
      name = std::string(kQuantTraits[i].name);
  return name + (d.group == 0 ? std::string(" per-channel") : strprintf(" g%u", d.group));
}

}  // namespace dsq::quant
