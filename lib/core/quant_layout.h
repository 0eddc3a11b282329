// The packed layout of a grouped-integer quantized matrix (DType::kQInt). This is part of the dsq
// file format contract (docs/FORMAT.md, "Quantized tensors"), so it lives in core where the
// format reader, the quantizers and the kernels all see the same arithmetic.
//
// A quantized matrix W has logical shape [rows, cols] = [out_features, in_features], row-major.
// Groups run along cols: group g of row r covers cols [g*G, min((g+1)*G, cols)); the last group
// of a row is ragged when cols % G != 0. G == 0 means one group per row (per output channel).
//
// The scheme (lib/core/quant_scheme.h) decides the layout.
//
// SchemeLayout::kGroupedInt. Blob layout (three sections, each starting at a multiple of 64 bytes from the blob start):
//   codes  : rows x row_code_bytes bytes. Row r's codes are a little-endian bit stream of `bits`
//            bits per weight, weight c at bit offset c*bits (LSB first), unsigned in [0, 2^bits).
//            Each row starts on a byte boundary (row_code_bytes = ceil(cols*bits/8)).
//   scales : rows x n_groups IEEE f16, row-major.
//   zeros  : rows x n_groups u8 (asymmetric only; absent when symmetric).
// Dequantisation: w[r][c] = scale[r][g] * (code[r][c] - zero[r][g]), g = c / G,
// with zero = 2^(bits-1) implied for symmetric schemes.
//
// SchemeLayout::kBlockFp8 (DeepSeek's FP8 release format), B = QuantDesc::group (128):
//   codes  : rows x cols bytes, float8 e4m3fn (lib/core/dtype.h), row-major.
//   scales : ceil(rows/B) x ceil(cols/B) IEEE f32, row-major (the checkpoint's weight_scale_inv;
//            the last row/column blocks are ragged and share their block's scale).
// Dequantisation: w[r][c] = fp8(code[r][c]) * scale[r/B][c/B]. QuantLayout's group is B,
// n_groups the column blocks, row_code_bytes = cols.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/core/quant_scheme.h"

namespace dsq {

struct QuantLayout {
  int64_t rows = 0, cols = 0;
  int64_t group = 0;           // effective group size (cols when QuantDesc::group == 0)
  int64_t n_groups = 0;        // ceil(cols / group)
  int64_t row_code_bytes = 0;  // ceil(cols * bits / 8)
  size_t codes_offset = 0, codes_bytes = 0;
  size_t scales_offset = 0, scales_bytes = 0;
  size_t zeros_offset = 0, zeros_bytes = 0;
  size_t total_bytes = 0;
};

constexpr size_t kQuantSectionAlign = 64;

inline size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

inline QuantLayout grouped_int_layout(const QuantDesc& d, int64_t rows, int64_t cols) {
  QuantLayout L;
  L.rows = rows;
  L.cols = cols;
  L.group = d.group == 0 ? cols : static_cast<int64_t>(d.group);
  L.n_groups = cols == 0 ? 0 : (cols + L.group - 1) / L.group;
  L.row_code_bytes = (cols * d.bits() + 7) / 8;
  L.codes_offset = 0;
  L.codes_bytes = static_cast<size_t>(rows * L.row_code_bytes);
  L.scales_offset = align_up(L.codes_bytes, kQuantSectionAlign);
  L.scales_bytes = static_cast<size_t>(rows * L.n_groups) * 2;
  L.zeros_offset = align_up(L.scales_offset + L.scales_bytes, kQuantSectionAlign);
  L.zeros_bytes = d.sym() ? 0 : static_cast<size_t>(rows * L.n_groups);
  L.total_bytes = d.sym() ? L.scales_offset + L.scales_bytes : L.zeros_offset + L.zeros_bytes;
  return L;
}

inline QuantLayout block_fp8_layout(const QuantDesc& d, int64_t rows, int64_t cols) {
  QuantLayout L;
  L.rows = rows;
  L.cols = cols;
  L.group = d.group == 0 ? 128 : static_cast<int64_t>(d.group);
  L.n_groups = (cols + L.group - 1) / L.group;
  L.row_code_bytes = cols;
  L.codes_offset = 0;
  L.codes_bytes = static_cast<size_t>(rows * cols);
  L.scales_offset = align_up(L.codes_bytes, kQuantSectionAlign);
  L.scales_bytes = static_cast<size_t>((rows + L.group - 1) / L.group * L.n_groups) * 4;
  L.total_bytes = L.scales_offset + L.scales_bytes;
  L.zeros_offset = L.total_bytes;
  return L;
}

// The layout of a [rows, cols] matrix in scheme d (the row's SchemeLayout decides).
inline QuantLayout quant_layout(const QuantDesc& d, int64_t rows, int64_t cols) {
  switch (d.info().layout) {
    case SchemeLayout::kGroupedInt: break;
    case SchemeLayout::kBlockFp8: return block_fp8_layout(d, rows, cols);
  }
  return grouped_int_layout(d, rows, cols);
}

// Bits per weight actually stored (codes + scales + zeros), padding excluded.
inline double quant_bits_per_weight(const QuantDesc& d, int64_t rows, int64_t cols) {
  const QuantLayout L = quant_layout(d, rows, cols);
  const double bits = 8.0 * (static_cast<double>(L.codes_bytes) + L.scales_bytes + L.zeros_bytes);
  return rows * cols == 0 ? 0.0 : bits / static_cast<double>(rows * cols);
}

// Read code c of a row's bit stream (bits <= 8); touches only bytes that hold code c.
// Reference path: kernels decode whole groups at a time.
inline uint32_t quant_code_at(const uint8_t* row, int64_t c, int bits) {
  const int64_t bit = c * bits;
  const int64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  uint32_t v = row[byte];
  if (shift + bits > 8) v |= static_cast<uint32_t>(row[byte + 1]) << 8;
  return (v >> shift) & ((1u << bits) - 1u);
}

inline void quant_code_set(uint8_t* row, int64_t c, int bits, uint32_t code) {
  const int64_t bit = c * bits;
  const int64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  const uint32_t mask = ((1u << bits) - 1u) << shift;
  const uint32_t v = (code << shift) & mask;
  row[byte] = static_cast<uint8_t>((row[byte] & ~mask) | v);
  if (shift + bits > 8) {
    row[byte + 1] = static_cast<uint8_t>((row[byte + 1] & ~(mask >> 8)) | (v >> 8));
  }
}

}  // namespace dsq
