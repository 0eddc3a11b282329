#include "lib/core/quant_scheme.h"

#include "lib/core/error.h"

namespace dsq {

std::optional<QuantScheme> scheme_from_id(uint16_t id) {
  if (id >= kNumSchemes) return std::nullopt;
  return kSchemes[id].id;
}

std::optional<QuantScheme> int_scheme(int bits, bool sym) {
  for (const auto& s : kSchemes)
    if (s.layout == SchemeLayout::kGroupedInt && s.bits == bits && s.has_zero == !sym) return s.id;
  return std::nullopt;
}

QuantDesc::QuantDesc(int bits, uint32_t g, bool sym) : group(g) {
  const auto s = int_scheme(bits, sym);
  DSQ_ASSERT(s.has_value(), "no grouped-integer scheme of %d bits (validate with make_quant_desc)",
             bits);
  scheme = *s;
}

std::string scheme_name(const QuantDesc& d) {
  std::string s(d.info().name);
  if (d.info().layout == SchemeLayout::kBlockFp8) return s + "_b" + std::to_string(d.group);
  s += d.group == 0 ? std::string("_perchannel") : "_g" + std::to_string(d.group);
  return s;
}

std::optional<QuantDesc> parse_scheme_name(std::string_view s) {
  for (const auto& row : kSchemes) {
    if (s.size() <= row.name.size() + 1 || s.substr(0, row.name.size()) != row.name ||
        s[row.name.size()] != '_')
      continue;
    const std::string_view g = s.substr(row.name.size() + 1);
    const char tag = row.layout == SchemeLayout::kBlockFp8 ? 'b' : 'g';
    if (g == "perchannel" && tag == 'g') return QuantDesc(row.id, 0);
    if (g.size() < 2 || g.size() > 7 || g[0] != tag || g[1] == '0') continue;
    uint32_t v = 0;
    bool digits = true;
    for (const char c : g.substr(1)) {
      digits &= c >= '0' && c <= '9';
      v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (digits) return QuantDesc(row.id, v);
  }
  return std::nullopt;
}

std::string supported_bits_list() {
  std::string out;
  for (int b = 1; b <= 8; ++b) {
    if (!int_scheme(b, true) && !int_scheme(b, false)) continue;
    out += (out.empty() ? "" : ", ") + std::to_string(b);
  }
  return out;
}

std::string supported_groups_list() {
  std::string out;
  for (uint32_t g : kQuantGroupSizes)
    out += (out.empty() ? "" : ", ") + (g ? std::to_string(g) : std::string("0 (per output channel)"));
  return out;
}

namespace {
bool group_supported(int64_t group) {
  for (uint32_t g : kQuantGroupSizes)
    if (group == static_cast<int64_t>(g)) return true;
  return false;
}
}  // namespace

QuantDesc make_quant_desc(int64_t bits, int64_t group, bool sym) {
  const auto s = bits >= 1 && bits <= 8 ? int_scheme(static_cast<int>(bits), sym) : std::nullopt;
  if (!s)
    throw UsageError("unsupported scheme: " + std::to_string(bits) + " bits (supported bits: " +
                     supported_bits_list() + ")");
  if (!group_supported(group))
    throw UsageError("unsupported group size " + std::to_string(group) + " (supported: " +
                     supported_groups_list() + ")");
  return QuantDesc(*s, static_cast<uint32_t>(group));
}

QuantDesc make_quant_desc(std::string_view name) {
  const auto d = parse_scheme_name(name);
  if (d && d->info().quantize_target() && group_supported(d->group)) return *d;
  std::string rows;
  for (const auto& r : kSchemes)
    if (r.quantize_target()) rows += (rows.empty() ? "" : ", ") + std::string(r.name);
  throw UsageError("unknown scheme '" + std::string(name.substr(0, 64)) + "' (expected <row>_g<group> or <row>_perchannel; rows: " +
                   rows + "; groups: 32, 64, 128, 256)");
}

}  // namespace dsq
