#include "lib/text/tokenizer_regex.h"

#include "lib/text/unicode.h"
#include "lib/core/error.h"

namespace dsq::text {

namespace {

constexpr uint8_t kPropSpace = 1, kPropNotSpace = 2, kPropNotWord = 4, kPropNotDigit = 8;

constexpr uint32_t bit(UnicodeCategory c) { return 1u << static_cast<uint32_t>(c); }
constexpr uint32_t range_mask(UnicodeCategory first, UnicodeCategory last) {
  uint32_t m = 0;
  for (auto c = static_cast<uint32_t>(first); c <= static_cast<uint32_t>(last); ++c) m |= 1u << c;
  return m;
}
using UC = UnicodeCategory;
constexpr uint32_t kMaskL = range_mask(UC::kLu, UC::kLo);
constexpr uint32_t kMaskM = range_mask(UC::kMn, UC::kMe);
constexpr uint32_t kMaskN = range_mask(UC::kNd, UC::kNo);
constexpr uint32_t kMaskP = range_mask(UC::kPc, UC::kPo);
constexpr uint32_t kMaskS = range_mask(UC::kSm, UC::kSo);
constexpr uint32_t kMaskZ = range_mask(UC::kZs, UC::kZp);
constexpr uint32_t kMaskC = range_mask(UC::kCc, UC::kCo) | bit(UC::kCn);
constexpr uint32_t kMaskWord = kMaskL | kMaskM | bit(UC::kNd) | bit(UC::kPc);

// \p{Name}: one-letter groups, two-letter categories and the long group names.
bool category_mask_by_name(std::string_view name, uint32_t* mask) {
  struct Entry {
    const char* name;
    uint32_t mask;
  };
  static const Entry kEntries[] = {
      {"L", kMaskL},        {"Letter", kMaskL},   {"M", kMaskM},        {"Mark", kMaskM},
      {"N", kMaskN},        {"Number", kMaskN},   {"P", kMaskP},        {"Punctuation", kMaskP},
      {"S", kMaskS},        {"Symbol", kMaskS},   {"Z", kMaskZ},        {"Separator", kMaskZ},
      {"C", kMaskC},        {"Other", kMaskC},    {"Cn", bit(UC::kCn)}, {"Lu", bit(UC::kLu)},
      {"Ll", bit(UC::kLl)}, {"Lt", bit(UC::kLt)}, {"Lm", bit(UC::kLm)}, {"Lo", bit(UC::kLo)},
      {"Mn", bit(UC::kMn)}, {"Mc", bit(UC::kMc)}, {"Me", bit(UC::kMe)}, {"Nd", bit(UC::kNd)},
      {"Nl", bit(UC::kNl)}, {"No", bit(UC::kNo)}, {"Pc", bit(UC::kPc)}, {"Pd", bit(UC::kPd)},
      {"Ps", bit(UC::kPs)}, {"Pe", bit(UC::kPe)}, {"Pi", bit(UC::kPi)}, {"Pf", bit(UC::kPf)},
      {"Po", bit(UC::kPo)}, {"Sm", bit(UC::kSm)}, {"Sc", bit(UC::kSc)}, {"Sk", bit(UC::kSk)},
      {"So", bit(UC::kSo)}, {"Zs", bit(UC::kZs)}, {"Zl", bit(UC::kZl)}, {"Zp", bit(UC::kZp)},
      {"Cc", bit(UC::kCc)}, {"Cf", bit(UC::kCf)}, {"Cs", bit(UC::kCs)}, {"Co", bit(UC::kCo)},
  };
  for (const auto& e : kEntries) {
    if (name == e.name) {
      *mask = e.mask;
      return true;
    }
  }
  return false;
}

}  // namespace

bool SplitRegex::Class::contains_slow(char32_t cp) const {
  bool in = false;
  for (const auto& [lo, hi] : ranges) {
    if (cp >= lo && cp <= hi) {
      in = true;
      break;
    }
  }
  if (!in && (category_mask != 0 || (props & (kPropNotWord | kPropNotDigit)) != 0)) {
    const uint32_t cat = bit(unicode_category(cp));
    in = (category_mask & cat) != 0 || ((props & kPropNotWord) && !(cat & kMaskWord)) ||
         ((props & kPropNotDigit) && !(cat & bit(UC::kNd)));
  }
  if (!in && (props & (kPropSpace | kPropNotSpace)) != 0) {
    const bool ws = unicode_is_whitespace(cp);
    in = ((props & kPropSpace) && ws) || ((props & kPropNotSpace) && !ws);
  }
  return in != negated;
}

bool SplitRegex::Class::contains(char32_t cp) const {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  return contains_slow(cp);
}

// Recursive-descent parser over the pattern's code points.
class RegexParser {
 public:
  RegexParser(SplitRegex* re, std::string_view pattern) : re_(re) {
    const CodepointText t = utf8_split(pattern);
    for (char32_t c : t.cps) {
      if (c == kInvalidCodepoint) fail("pattern is not valid UTF-8");
      p_.push_back(c);
    }
  }

  void parse() {
    re_->alts_.emplace_back();
    parse_alternation(0);
    if (pos_ != p_.size()) fail("unbalanced ')'");
    for (auto& cls : re_->classes_) {
      for (char32_t c = 0; c < 128; ++c)
        if (cls.contains_slow(c)) cls.ascii[c >> 6] |= uint64_t{1} << (c & 63);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError("pre-tokenizer regex '" + re_->pattern_ + "': " + what + " at character " +
                      std::to_string(pos_));
  }
  bool at_end() const { return pos_ >= p_.size(); }
  char32_t peek() const { return at_end() ? 0 : p_[pos_]; }
  bool eat(char32_t c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  char32_t next() {
    if (at_end()) fail("unexpected end of pattern");
    return p_[pos_++];
  }

  // Fills re_->alts_[index] (already allocated) with '|'-separated sequences.
  void parse_alternation(int index) {
    SplitRegex::Alternation alt;
    alt.emplace_back();
    while (!at_end() && peek() != ')') {
      if (eat('|')) {
        alt.emplace_back();
        continue;
      }
      SplitRegex::Node node = parse_atom();
      parse_quantifier(&node);
      alt.back().push_back(node);
    }
    re_->alts_[index] = std::move(alt);
  }

  SplitRegex::Node parse_atom() {
    SplitRegex::Node node;
    const char32_t c = next();
    switch (c) {
      case '(':
        return parse_group();
      case '[':
        return class_node(parse_class());
      case '.': {
        SplitRegex::Class cls;
        cls.negated = true;
        cls.ranges.push_back({'\n', '\n'});
        return class_node(std::move(cls));
      }
      case '^':
        node.kind = SplitRegex::Node::kLineStart;
        return node;
      case '$':
        node.kind = SplitRegex::Node::kLineEnd;
        return node;
      case '\\': {
        const char32_t e = peek();
        if (e == 'A' || e == 'z' || e == 'Z') {
          ++pos_;
          node.kind = e == 'A' ? SplitRegex::Node::kTextStart : SplitRegex::Node::kTextEnd;
          return node;
        }
        SplitRegex::Class cls;
        parse_escape(&cls);
        return class_node(std::move(cls));
      }
      case '*':
      case '+':
      case '?':
      case '{':
        fail("quantifier without an operand");
      default: {
        SplitRegex::Class cls;
        add_char(&cls, c);
        return class_node(std::move(cls));
      }
    }
  }

  SplitRegex::Node parse_group() {
    SplitRegex::Node node;
    node.kind = SplitRegex::Node::kGroup;
    const bool saved_icase = icase_;
    if (eat('?')) {
      const char32_t c = next();
      if (c == '=') {
        node.kind = SplitRegex::Node::kLookahead;
      } else if (c == '!') {
        node.kind = SplitRegex::Node::kNegLookahead;
      } else if (c == 'i' && eat(':')) {
        icase_ = true;
      } else if (c != ':') {
        fail("unsupported group syntax");
      }
    }
    node.index = static_cast<int>(re_->alts_.size());
    re_->alts_.emplace_back();
    parse_alternation(node.index);
    if (!eat(')')) fail("missing ')'");
    icase_ = saved_icase;
    return node;
  }

  void parse_quantifier(SplitRegex::Node* node) {
    int mn = 1, mx = 1;
    if (eat('?')) {
      mn = 0;
    } else if (eat('*')) {
      mn = 0, mx = -1;
    } else if (eat('+')) {
      mx = -1;
    } else if (peek() == '{' && pos_ + 1 < p_.size() && p_[pos_ + 1] >= '0' &&
               p_[pos_ + 1] <= '9') {
      ++pos_;
      mn = mx = parse_int();
      if (eat(',')) mx = peek() == '}' ? -1 : parse_int();
      if (!eat('}') || (mx >= 0 && mx < mn)) fail("bad {n,m} quantifier");
    } else {
      return;
    }
    if (peek() == '?' || peek() == '+') fail("lazy and possessive quantifiers are not supported");
    if (node->kind != SplitRegex::Node::kClass && node->kind != SplitRegex::Node::kGroup)
      fail("quantifier on an assertion");
    node->min = mn;
    node->max = mx;
  }

  int parse_int() {
    int v = 0;
    if (peek() < '0' || peek() > '9') fail("expected a number");
    while (peek() >= '0' && peek() <= '9' && !at_end()) {
      v = v * 10 + static_cast<int>(next() - '0');
      if (v > 100000) fail("repeat count too large");
    }
    return v;
  }

  SplitRegex::Class parse_class() {
    SplitRegex::Class cls;
    if (eat('^')) cls.negated = true;
    bool first = true;
    while (true) {
      if (at_end()) fail("missing ']'");
      if (peek() == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      char32_t lo = next();
      if (lo == '[') fail("nested classes are not supported");
      if (lo == '\\') {
        if (!parse_escape(&cls, &lo)) continue;  // a set such as \p{L} or \s
      }
      // A range a-b (a '-' just before ']' is a literal).
      if (peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        char32_t hi = next();
        if (hi == '\\' && parse_escape(&cls, &hi) == false) fail("class set as a range end");
        if (hi < lo) fail("inverted range");
        add_range(&cls, lo, hi);
      } else {
        add_char(&cls, lo);
      }
    }
    return cls;
  }

  // Parses the escape after a backslash. A single character is stored in *single (returns
  // true) when single is given; sets (\p{..}, \s, ...) are added to *cls (returns false). Without
  // `single`, single characters are added to *cls directly.
  bool parse_escape(SplitRegex::Class* cls, char32_t* single = nullptr) {
    const char32_t e = next();
    char32_t ch = 0;
    switch (e) {
      case 'p':
      case 'P': {
        std::string name;
        if (eat('{')) {
          while (!eat('}')) name += static_cast<char>(next());
        } else {
          name += static_cast<char>(next());
        }
        uint32_t mask = 0;
        if (!category_mask_by_name(name, &mask)) fail("unknown Unicode property '" + name + "'");
        if (e == 'P') {
          if (cls->category_mask != 0 || !cls->ranges.empty() || single)
            fail("\\P{..} is only supported on its own");
          cls->negated = !cls->negated;
        }
        cls->category_mask |= mask;
        return false;
      }
      case 's':
        cls->props |= kPropSpace;
        return false;
      case 'S':
        cls->props |= kPropNotSpace;
        return false;
      case 'd':
        cls->category_mask |= bit(UC::kNd);
        return false;
      case 'D':
        cls->props |= kPropNotDigit;
        return false;
      case 'w':
        cls->category_mask |= kMaskWord;
        return false;
      case 'W':
        cls->props |= kPropNotWord;
        return false;
      case 'r':
        ch = '\r';
        break;
      case 'n':
        ch = '\n';
        break;
      case 't':
        ch = '\t';
        break;
      case 'f':
        ch = '\f';
        break;
      case 'v':
        ch = '\v';
        break;
      case '0':
        ch = 0;
        break;
      case 'x':
        ch = parse_hex(eat('{') ? -1 : 2);
        break;
      case 'u':
        ch = parse_hex(4);
        break;
      default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
          fail("unsupported escape");
        ch = e;  // escaped punctuation
    }
    if (single) {
      *single = ch;
      return true;
    }
    add_char(cls, ch);
    return false;
  }

  // Reads `digits` hex digits, or up to '}' when digits < 0.
  char32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; digits < 0 ? !eat('}') : k < digits; ++k) {
      const char32_t c = next();
      int d = -1;
      if (c >= '0' && c <= '9') d = static_cast<int>(c - '0');
      if (c >= 'a' && c <= 'f') d = static_cast<int>(c - 'a' + 10);
      if (c >= 'A' && c <= 'F') d = static_cast<int>(c - 'A' + 10);
      if (d < 0 || v > 0x10FFFF) fail("bad hex escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }

  void add_char(SplitRegex::Class* cls, char32_t c) { add_range(cls, c, c); }

  // Adds [lo, hi]; under (?i:...) also the other case of ASCII letters, plus the two non-ASCII
  // code points that case-fold to ASCII letters (U+017F long s, U+212A Kelvin sign).
  void add_range(SplitRegex::Class* cls, char32_t lo, char32_t hi) {
    cls->ranges.push_back({lo, hi});
    if (!icase_) return;
    for (char32_t c = lo; c <= hi && c < 128; ++c) {
      char32_t other = 0;
      if (c >= 'a' && c <= 'z') other = c - 32;
      if (c >= 'A' && c <= 'Z') other = c + 32;
      if (other != 0) cls->ranges.push_back({other, other});
      if (c == 's' || c == 'S') cls->ranges.push_back({0x17F, 0x17F});
      if (c == 'k' || c == 'K') cls->ranges.push_back({0x212A, 0x212A});
    }
  }

  SplitRegex::Node class_node(SplitRegex::Class cls) {
    SplitRegex::Node node;
    node.kind = SplitRegex::Node::kClass;
    node.index = static_cast<int>(re_->classes_.size());
    re_->classes_.push_back(std::move(cls));
    return node;
  }

  SplitRegex* re_;
  std::vector<char32_t> p_;
  size_t pos_ = 0;
  bool icase_ = false;
};

SplitRegex::SplitRegex(std::string_view pattern) : pattern_(pattern) {
  RegexParser(this, pattern).parse();
}

// The rest of the match after a group: either resume `seq` at node `i`, or (rep >= 0) try
// another repetition of the group node seq[i] that has matched `rep` times, the last one
// starting at `rep_start`.
struct SplitRegex::Cont {
  const Seq* seq;
  size_t i;
  int rep;
  size_t rep_start;
  const Cont* next;
};

bool SplitRegex::match_alt(const Input& in, int alt, size_t pos, const Cont* k, size_t* end) const {
  for (const Seq& seq : alts_[alt])
    if (match_seq(in, seq, 0, pos, k, end)) return true;
  return false;
}

bool SplitRegex::match_group_reps(const Input& in, const Seq& seq, size_t i, int count, size_t pos,
                                  const Cont* k, size_t* end) const {
  const Node& node = seq[i];
  if (node.max < 0 || count < node.max) {
    const Cont c{&seq, i, count + 1, pos, k};
    if (match_alt(in, node.index, pos, &c, end)) return true;
  }
  return count >= node.min && match_seq(in, seq, i + 1, pos, k, end);
}

bool SplitRegex::match_seq(const Input& in, const Seq& seq, size_t i, size_t pos, const Cont* k,
                           size_t* end) const {
  while (i < seq.size()) {
    const Node& node = seq[i];
    switch (node.kind) {
      case Node::kClass: {
        const Class& cls = classes_[node.index];
        const size_t limit = node.max < 0 ? in.n : std::min(in.n, pos + node.max);
        size_t q = pos;
        while (q < limit && cls.contains(in.cps[q])) ++q;
        if (q - pos < static_cast<size_t>(node.min)) return false;
        if (q - pos == static_cast<size_t>(node.min)) {  // no choice: continue iteratively
          pos = q;
          break;
        }
        for (size_t c = q;; --c) {  // greedy: longest first, then backtrack
          if (match_seq(in, seq, i + 1, c, k, end)) return true;
          if (c == pos + node.min) return false;
        }
      }
      case Node::kGroup:
        return match_group_reps(in, seq, i, 0, pos, k, end);
      case Node::kLookahead:
      case Node::kNegLookahead: {
        size_t ignored = 0;
        const bool found = match_alt(in, node.index, pos, nullptr, &ignored);
        if (found != (node.kind == Node::kLookahead)) return false;
        break;
      }
      case Node::kLineEnd:
        if (pos != in.n && in.cps[pos] != '\n') return false;
        break;
      case Node::kLineStart:
        if (pos != 0 && in.cps[pos - 1] != '\n') return false;
        break;
      case Node::kTextEnd:
        if (pos != in.n) return false;
        break;
      case Node::kTextStart:
        if (pos != 0) return false;
        break;
    }
    ++i;
  }
  if (k == nullptr) {
    *end = pos;
    return true;
  }
  if (k->rep < 0) return match_seq(in, *k->seq, k->i, pos, k->next, end);
  // End of one repetition of a group: an empty repetition beyond the minimum cannot loop.
  if (pos == k->rep_start && k->rep > (*k->seq)[k->i].min) return false;
  return match_group_reps(in, *k->seq, k->i, k->rep, pos, k->next, end);
}

void SplitRegex::find_all(const char32_t* cps, size_t n,
                          std::vector<std::pair<uint32_t, uint32_t>>* out) const {
  const Input in{cps, n};
  size_t pos = 0;
  while (pos < n) {
    size_t start = pos, end = 0;
    bool found = false;
    for (; start < n; ++start) {
      if (match_alt(in, 0, start, nullptr, &end)) {
        found = true;
        break;
      }
    }
    if (!found) break;
    if (end > start) {
      out->push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(end)});
      pos = end;
    } else {
      pos = start + 1;  // an empty match: move on
    }
  }
}

}  // namespace dsq::text
