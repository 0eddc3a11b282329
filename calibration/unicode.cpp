#include "calibration/unicode.h"

#include <algorithm>

#include "lib/core/error.h"

namespace dsq::calibration {

UnicodeCategory unicode_category(char32_t cp) {
  if (cp > 0x10FFFF) return UnicodeCategory::kCn;
  // Runs are sorted by first code point; find the last run starting at or before cp.
  const uint32_t key = (static_cast<uint32_t>(cp) << 5) | 31u;
  const uint32_t* end = detail::kCategoryRuns + detail::kCategoryRunCount;
  const uint32_t* it = std::upper_bound(detail::kCategoryRuns, end, key);
  DSQ_ASSERT(it != detail::kCategoryRuns, "category table must start at U+0000");
  return static_cast<UnicodeCategory>(it[-1] & 31u);
}

bool unicode_is_whitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

const char* unicode_version() { return detail::kUnicodeVersion; }

size_t utf8_lead_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

char32_t utf8_decode(std::string_view s, size_t pos, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  *len = 1;
  if (b0 < 0x80) return b0;
  const size_t n = utf8_lead_length(b0);
  if (n == 1 || pos + n > s.size()) return kInvalidCodepoint;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[pos + k]);
    if ((b & 0xC0) != 0x80) return kInvalidCodepoint;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidCodepoint;
  *len = n;
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

CodepointText utf8_split(std::string_view s) {
  CodepointText t;
  t.cps.reserve(s.size());
  t.offset.reserve(s.size() + 1);
  for (size_t pos = 0; pos < s.size();) {
    size_t len = 1;
    t.cps.push_back(utf8_decode(s, pos, &len));
    t.offset.push_back(static_cast<uint32_t>(pos));
    pos += len;
  }
  t.offset.push_back(static_cast<uint32_t>(s.size()));
  return t;
}

}  // namespace dsq::calibration
