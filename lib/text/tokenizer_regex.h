// A small backtracking regex engine for pre-tokenizer split patterns (GPT-2, Llama-3, Qwen2,
// DeepSeek). std::regex has no \p{L}-style Unicode classes, so this matches code points with
// the generated category tables instead. Semantics follow Oniguruma (what Hugging Face tokenizers
// uses): leftmost match, alternatives tried in order, greedy quantifiers with backtracking.
//
// Supported: literals, '.', classes [...] with ranges and negation, \p{X} / \P{X} (general
// categories and their one-letter groups), \s \S \d \D \w \W, escapes \r \n \t \f \v \xHH
// \x{H..} \uHHHH, groups (...) (?:...) (?i:...), lookahead (?=...) (?!...), anchors ^ $ \A \z,
// quantifiers ? * + {n} {n,} {n,m} on any atom (greedy only). Anything else throws ConfigError
// naming the pattern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsq::text {

class SplitRegex {
 public:
  // Throws ConfigError "pre-tokenizer regex '<pattern>': <problem>" on unsupported syntax.
  explicit SplitRegex(std::string_view pattern);

  // All non-overlapping leftmost matches in cps[0, n), as code-point index ranges [begin, end),
  // appended to *out in order (empty matches are skipped, like find_iter plus filtering).
  void find_all(const char32_t* cps, size_t n,
                std::vector<std::pair<uint32_t, uint32_t>>* out) const;

  const std::string& pattern() const { return pattern_; }

  struct Class {
    std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive
    uint32_t category_mask = 0;                         // bit c: UnicodeCategory c is in the class
    uint8_t props = 0;                                  // kPropSpace | kPropNotSpace
    bool negated = false;
    uint64_t ascii[2] = {0, 0};  // precomputed membership for code points < 128
    bool contains(char32_t cp) const;
    bool contains_slow(char32_t cp) const;
  };
  struct Node {
    enum Kind : uint8_t {
      kClass,
      kGroup,
      kLookahead,
      kNegLookahead,
      kLineEnd,
      kLineStart,
      kTextEnd,
      kTextStart
    } kind = kClass;
    int index = -1;        // class index (kClass) or alternation index (groups, lookaheads)
    int min = 1, max = 1;  // max < 0: unbounded
  };
  using Seq = std::vector<Node>;
  using Alternation = std::vector<Seq>;

 private:
  struct Cont;  // continuation: the rest of an enclosing sequence
  struct Input {
    const char32_t* cps;
    size_t n;
  };
  bool match_seq(const Input& in, const Seq& seq, size_t i, size_t pos, const Cont* k,
                 size_t* end) const;
  bool match_alt(const Input& in, int alt, size_t pos, const Cont* k, size_t* end) const;
  bool match_group_reps(const Input& in, const Seq& seq, size_t i, int count, size_t pos,
                        const Cont* k, size_t* end) const;

  std::string pattern_;
  std::vector<Class> classes_;
  std::vector<Alternation> alts_;  // alts_[0] is the whole pattern
  friend class RegexParser;
};

}  // namespace dsq::text
