#include "lib/quant/quant_types.h"

#include "lib/core/error.h"
#include "lib/quant/codec_ref.h"
#include "lib/quant/kernels/qkernels.h"

namespace dsq::quant {

const QuantTraits kQuantTraits[] = {
#define DSQ_QUANT_SCHEME(e, value, nm, b, sym, layout)                                             \
  QuantTraits{QuantType::e,                                                                        \
              nm,                                                                                  \
              b,                                                                                   \
              !(sym),                                                                              \
              &detail::fit<b, sym>,                                                                \
              &detail::fit_range<b, sym>,                                                          \
              &detail::encode_group<b, sym>,                                                       \
              &detail::encode<b, sym>,                                                             \
              &detail::decode,                                                                     \
              &detail::quantize_row_ref<b, sym>,                                                   \
              &detail::quantize_row_weighted<b, sym>,                                              \
              &detail::dequantize_row_fast<b, sym>,                                                \
              &detail::dot_fast<b, sym>,                                                           \
              &detail::dequantize_row_ref<b, sym>,                                                 \
              &detail::dot_ref<b, sym>},
#include "lib/core/quant_schemes.def"
#undef DSQ_QUANT_SCHEME
};
const size_t kNumQuantTypes = sizeof(kQuantTraits) / sizeof(kQuantTraits[0]);
static_assert(sizeof(kQuantTraits) / sizeof(kQuantTraits[0]) == kNumSchemes);

const QuantTraits& quant_traits(QuantType t) {
  const auto i = static_cast<size_t>(t);
  DSQ_ASSERT(i < kNumQuantTypes, "bad QuantType %zu", i);
  return kQuantTraits[i];
}

const QuantTraits& quant_traits(const QuantDesc& d) { return quant_traits(d.scheme); }

std::optional<QuantType> quant_type_from_name(std::string_view name) {
  for (size_t i = 0; i < kNumQuantTypes; ++i)
    if (kQuantTraits[i].name == name) return kQuantTraits[i].type;
  return std::nullopt;
}

}  // namespace dsq::quant
