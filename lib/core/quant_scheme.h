// Quantization schemes as the file format sees them: the on-disk id, the canonical name and the
// layout of each row of lib/core/quant_schemes.def, and QuantDesc (a scheme plus its group size),
// which every reader, writer, solver, kernel and report uses. The codecs of the rows are in
// lib/quant/quant_types.h (the same .def, expanded there).
//
// One spelling of a scheme everywhere (CLI, JSON, report, file, errors): the row name, then the
// group: "int4_asym_g128", "int8_sym_perchannel" (one group per output channel), and for block
// layouts the block edge: "fp8_e4m3_b128" (128x128 blocks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsq {

// On-disk enum: explicit values, never reused.
enum class QuantScheme : uint16_t {
#define DSQ_QUANT_SCHEME(e, value, name, bits, sym, layout, min16) e = value,
#include "lib/core/quant_schemes.def"
#undef DSQ_QUANT_SCHEME
};

// How a scheme's blob is laid out (lib/core/quant_layout.h).
enum class SchemeLayout : uint8_t {
  kGroupedInt = 0,  // per row: LSB-first code bit stream; f16 scale (+ u8 zero) per (row, group)
  kBlockFp8 = 1,    // one float8 e4m3fn byte per weight; one f32 scale per (row block, col block)
};

struct SchemeInfo {
  QuantScheme id;
  std::string_view name;  // "int4_asym"
  uint8_t bits;           // code width
  bool has_zero;          // asymmetric: a u8 zero point per group
  SchemeLayout layout;
  // Fitting keeps scale x zero an exact f16 (ggml Q4_1's min; quant_schemes.def).
  bool f16_min = false;
  // A target of the quantizers (grouped-integer rows); block-FP8 rows are storage schemes only.
  constexpr bool quantize_target() const { return layout == SchemeLayout::kGroupedInt; }
};

inline constexpr SchemeInfo kSchemes[] = {
#define DSQ_QUANT_SCHEME(e, value, nm, b, sym, lay, min16) \
  SchemeInfo{QuantScheme::e, nm, b, !(sym), SchemeLayout::lay, min16},
#include "lib/core/quant_schemes.def"
#undef DSQ_QUANT_SCHEME
};
inline constexpr size_t kNumSchemes = sizeof(kSchemes) / sizeof(kSchemes[0]);

constexpr bool schemes_in_value_order() {
  for (size_t i = 0; i < kNumSchemes; ++i)
    if (static_cast<size_t>(kSchemes[i].id) != i) return false;
  return true;
}
static_assert(schemes_in_value_order(), "quant_schemes.def rows must be in value order, no gaps");

// The row of an id (nullopt for an id not in the table, e.g. from a file).
std::optional<QuantScheme> scheme_from_id(uint16_t id);
constexpr const SchemeInfo& scheme_info(QuantScheme s) { return kSchemes[static_cast<size_t>(s)]; }
// The grouped-integer row of a bit width and symmetry, if the table has one.
std::optional<QuantScheme> int_scheme(int bits, bool sym);

// Group sizes the tools accept (0 = per output channel); the library accepts any group >= 1.
inline constexpr uint32_t kQuantGroupSizes[] = {32, 64, 128, 256, 0};

struct QuantDesc {
  QuantScheme scheme = QuantScheme::kInt4Asym;
  uint32_t group = 0;  // group size along the input dim; 0 = per output channel; block
                       // layouts: the block edge (both dims)

  QuantDesc() = default;
  QuantDesc(QuantScheme s, uint32_t g) : scheme(s), group(g) {}
  // The grouped-integer scheme of (bits, sym); asserts the table has it (validated input goes
  // through make_quant_desc).
  QuantDesc(int bits, uint32_t g, bool sym);

  const SchemeInfo& info() const { return scheme_info(scheme); }
  uint8_t bits() const { return info().bits; }
  bool sym() const { return !info().has_zero; }
  bool operator==(const QuantDesc&) const = default;
};

// "int4_asym_g128", "int8_sym_perchannel", "fp8_e4m3_b128".
std::string scheme_name(const QuantDesc& d);
// The inverse of scheme_name; nullopt for anything else (an unknown row or group spelling).
std::optional<QuantDesc> parse_scheme_name(std::string_view s);
// The one parse-and-validate of a (bits, group, sym) request from the CLI or a recipe: throws
// UsageError naming what is supported when the bit width has no row or the group is not one of
// kQuantGroupSizes.
QuantDesc make_quant_desc(int64_t bits, int64_t group, bool sym);
// The same for a scheme name; throws UsageError listing the rows.
QuantDesc make_quant_desc(std::string_view scheme_name);
// "2, 3, 4, 8" and "32, 64, 128, 256, 0 (per output channel)": for help texts and errors.
std::string supported_bits_list();
std::string supported_groups_list();

}  // namespace dsq
