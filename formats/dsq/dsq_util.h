// Small helpers shared by the dsq reader and writer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/core/dtype.h"
#include "lib/core/quant_layout.h"

namespace dsq::formats {

// "f16", or "qint(int4_asym_g128)" for quantized tensors.
std::string describe_dtype(DType t, const QuantDesc& q);

// RFC 4648 base64 with padding (embedded tokenizer files).
std::string base64_encode(std::string_view bytes);
// Returns nullopt on characters outside the alphabet or bad padding.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace dsq::formats
