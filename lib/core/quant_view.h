// Read access to one grouped-integer matrix's blob (SchemeLayout::kGroupedInt, quant_layout.h):
// the code of (row, col) and the f16 scale and zero of (row, group), for code outside the kernels
// that walks a quantized tensor (dequantization, the exporters' repacking).
#pragma once

#include <cstdint>

#include "lib/core/dtype.h"
#include "lib/core/quant_layout.h"
#include "lib/core/tensor.h"

namespace dsq {

struct GroupedIntView {
  const QuantDesc& q;
  QuantLayout L;
  const uint8_t* codes;
  const uint16_t* scales;  // f16 bits, [rows, n_groups]
  const uint8_t* zeros;    // [rows, n_groups]; null for symmetric schemes

  // t: a 2-D kQInt tensor of a grouped-integer scheme (the caller checks).
  explicit GroupedIntView(const Tensor& t)
      : q(t.quant()), L(quant_layout(t.quant(), t.dim(0), t.dim(1))),
        codes(reinterpret_cast<const uint8_t*>(t.bytes() + L.codes_offset)),
        scales(reinterpret_cast<const uint16_t*>(t.bytes() + L.scales_offset)),
        zeros(q.sym() ? nullptr : reinterpret_cast<const uint8_t*>(t.bytes() + L.zeros_offset)) {}

  const uint8_t* row_codes(int64_t r) const { return codes + r * L.row_code_bytes; }
  uint32_t code(int64_t r, int64_t c) const { return quant_code_at(row_codes(r), c, q.bits()); }
  uint16_t scale_bits(int64_t r, int64_t g) const { return scales[r * L.n_groups + g]; }
  // The stored zero, or 2^(bits-1) for symmetric schemes.
  uint32_t zero(int64_t r, int64_t g) const {
    return zeros ? zeros[r * L.n_groups + g] : 1u << (q.bits() - 1);
  }
};

// True when scale x zero is an exact f16, i.e. the group is ggml Q4_1's block (d, m) with
// m = -scale x zero: what the f16_min rows' fitting guarantees (lib/quant/rtn.h).
inline bool f16_min_exact(float scale, uint32_t zero) {
  const float m = scale * static_cast<float>(zero);
  return f16_to_f32(f32_to_f16(m)) == m;
}

}  // namespace dsq
