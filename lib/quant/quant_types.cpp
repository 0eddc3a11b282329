#include "lib/quant/quant_types.h"

#include "lib/core/error.h"
#include "lib/quant/codec_ref.h"
#include "lib/quant/kernels/qkernels.h"

namespace dsq::quant {

namespace {

// The codec of a row, chosen by its layout.
template <SchemeLayout Layout, int B, bool Sym, QuantScheme S>
constexpr QuantTraits row_traits(QuantType t, std::string_view name) {
  if constexpr (Layout == SchemeLayout::kBlockFp8) {
    return QuantTraits{t,       name,    B,       !Sym,    nullptr, nullptr,
                       nullptr, nullptr, nullptr, nullptr, nullptr,
                       nullptr, &detail::dequantize_row_fp8, &detail::dot_fp8,
                       &detail::dequantize_row_fp8, &detail::dot_fp8};
  } else {
    return QuantTraits{t,
                       name,
                       B,
                       !Sym,
                       &detail::fit<S>,
                       &detail::fit_range<S>,
                       &detail::encode_group<B, Sym>,
                       &detail::encode<B, Sym>,
                       &detail::decode,
                       &detail::quantize_row_fast<S>,
                       &detail::quantize_row_ref<S>,
                       &detail::quantize_row_weighted<S>,
                       &detail::dequantize_row_fast<B, Sym>,
                       &detail::dot_fast<B, Sym>,
                       &detail::dequantize_row_ref<B, Sym>,
                       &detail::dot_ref<B, Sym>};
  }
}

}  // namespace

const QuantTraits kQuantTraits[] = {
#define DSQ_QUANT_SCHEME(e, value, nm, b, sym, layout, min16) \
  row_traits<SchemeLayout::layout, b, sym, QuantScheme::e>(QuantType::e, nm),
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
