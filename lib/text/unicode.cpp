#include "lib/text/unicode.h"

#include <algorithm>

#include "lib/core/error.h"

namespace dsq::text {

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
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
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

uint8_t unicode_combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const uint32_t* end = detail::kCombiningClasses + detail::kCombiningClassesCount;
  const uint32_t* it =
      std::lower_bound(detail::kCombiningClasses, end, static_cast<uint32_t>(cp) << 8);
  return it != end && (*it >> 8) == cp ? static_cast<uint8_t>(*it & 0xFF) : 0;
}

namespace {

// Hangul syllable arithmetic (Unicode chapter 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

void decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const auto* end = detail::kDecompositions + detail::kDecompositionsCount;
  const auto* it =
      std::lower_bound(detail::kDecompositions, end, cp,
                       [](const detail::DecompositionEntry& e, char32_t c) { return e.cp < c; });
  if (it != end && it->cp == cp) {
    out->insert(out->end(), detail::kDecompositionData + it->first,
                detail::kDecompositionData + it->first + it->length);
  } else {
    out->push_back(cp);
  }
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const uint64_t key = (static_cast<uint64_t>(a) << 21) | b;
  const auto* end = detail::kCompositions + detail::kCompositionsCount;
  const auto* it =
      std::lower_bound(detail::kCompositions, end, key,
                       [](const detail::CompositionEntry& e, uint64_t k) { return e.key < k; });
  return it != end && it->key == key ? it->composite : 0;
}

}  // namespace

std::string unicode_nfc(std::string_view s) {
  const CodepointText t = utf8_split(s);
  bool simple = true;
  for (const char32_t cp : t.cps) simple &= cp < 0x300 || cp == kInvalidCodepoint;
  if (simple) return std::string(s);
  // 1. Full canonical decomposition. Malformed bytes are carried as kInvalidCodepoint and
  //    written back from the source afterwards.
  std::vector<char32_t> d;
  std::vector<uint8_t> raw;  // source bytes of the malformed ones, in order
  d.reserve(t.cps.size() + 16);
  for (size_t i = 0; i < t.cps.size(); ++i) {
    if (t.cps[i] == kInvalidCodepoint) {
      d.push_back(kInvalidCodepoint);
      raw.push_back(static_cast<uint8_t>(s[t.offset[i]]));
    } else {
      decompose(t.cps[i], &d);
    }
  }
  // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
  std::vector<uint8_t> ccc(d.size());
  for (size_t i = 0; i < d.size(); ++i)
    ccc[i] = d[i] == kInvalidCodepoint ? 0 : unicode_combining_class(d[i]);
  for (size_t i = 1; i < d.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(d[j], d[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }
  // 3. Canonical composition: a character joins the last starter unless something between them
  //    is blocking (a starter, or a mark of equal or higher class).
  std::vector<char32_t> r;
  std::vector<uint8_t> rccc;
  r.reserve(d.size());
  ptrdiff_t starter = -1;
  for (size_t i = 0; i < d.size(); ++i) {
    const char32_t c = d[i];
    if (starter >= 0 && c != kInvalidCodepoint && r[starter] != kInvalidCodepoint) {
      const bool adjacent = static_cast<size_t>(starter) + 1 == r.size();
      const bool blocked = !adjacent && (rccc.back() == 0 || rccc.back() >= ccc[i]);
      if (!blocked) {
        const char32_t comp = compose(r[starter], c);
        if (comp != 0) {
          r[starter] = comp;
          continue;
        }
      }
    }
    if (ccc[i] == 0) starter = static_cast<ptrdiff_t>(r.size());
    r.push_back(c);
    rccc.push_back(ccc[i]);
  }
  std::string out;
  out.reserve(s.size());
  size_t next_raw = 0;
  for (const char32_t c : r) {
    if (c == kInvalidCodepoint)
      out += static_cast<char>(raw[next_raw++]);
    else
      utf8_append(out, c);
  }
  return out;
}

}  // namespace dsq::text
