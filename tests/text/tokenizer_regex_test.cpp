// The pre-tokenizer regex engine and the Unicode tables it relies on.
#include "lib/text/tokenizer_regex.h"

#include "lib/text/tokenizer_bpe.h"
#include "lib/text/unicode.h"
#include "lib/core/error.h"
#include "tests/test_util.h"

namespace dsq::text {
namespace {

// The matched substrings of `text` (UTF-8), in order.
std::vector<std::string> matches(const std::string& pattern, const std::string& text) {
  const SplitRegex re(pattern);
  const CodepointText t = utf8_split(text);
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  re.find_all(t.cps.data(), t.cps.size(), &spans);
  std::vector<std::string> out;
  for (const auto& [b, e] : spans)
    out.push_back(text.substr(t.offset[b], t.offset[e] - t.offset[b]));
  return out;
}

using V = std::vector<std::string>;

TEST(SplitRegex, Gpt2PatternKeepsTheLastSpaceForTheNextWord) {
  // \s+(?!\S) must backtrack one space so " world" keeps its space; trailing spaces go to \s+.
  EXPECT_EQ(matches(kGpt2SplitPattern, "Hello   world's 42!!  "),
            (V{"Hello", "  ", " world", "'s", " 42", "!!", "  "}));
  EXPECT_EQ(matches(kGpt2SplitPattern, "\xD0\xBD\xD0\xB5 \xE2\x9C\x85x"),  // Cyrillic, then U+2705
            (V{"\xD0\xBD\xD0\xB5", " \xE2\x9C\x85", "x"}));
}

TEST(SplitRegex, QuantifiersGroupsAndCaseInsensitiveAlternatives) {
  EXPECT_EQ(matches("\\p{N}{1,3}", "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(matches("(?i:'s|'ll)", "'S 'Ll 's"), (V{"'S", "'Ll", "'s"}));
  // U+212A KELVIN SIGN case-folds to 'k' (Oniguruma's (?i) uses Unicode case folding).
  EXPECT_EQ(matches("(?i:k)", "\xE2\x84\xAA"), (V{"\xE2\x84\xAA"}));
  EXPECT_EQ(matches("(?:ab)+c?", "ababcab x"), (V{"ababc", "ab"}));
  EXPECT_EQ(matches("a(?=b)", "ab ac"), (V{"a"}));
  EXPECT_EQ(matches("[^\\s\\p{L}]+", "ab, 12 c."), (V{",", "12", "."}));
  EXPECT_EQ(matches("\\s+$", "a  \nb  "), (V{"  ", "  "}));  // $ also before '\n'
  EXPECT_EQ(matches("[\\x{4E00}-\\x{9FA5}]+",
                    "a\xE4\xB8\xAD\xE6\x96\x87"
                    "b"),
            (V{"\xE4\xB8\xAD\xE6\x96\x87"}));
  EXPECT_EQ(matches("\\p{Lu}\\p{Ll}*", "HeLLo"), (V{"He", "L", "Lo"}));
}

TEST(SplitRegex, UnsupportedSyntaxIsAConfigErrorNamingThePattern) {
  for (const char* bad : {"a+?", "(?<name>a)", "[a-", "\\p{Greek}", "(a", "a)", "\\q", "[z-a]"}) {
    try {
      SplitRegex re(bad);
      ADD_FAILURE() << bad << ": accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Unicode, CategoriesWhitespaceAndUtf8) {
  EXPECT_EQ(unicode_category('A'), UnicodeCategory::kLu);
  EXPECT_EQ(unicode_category(0x4E2D), UnicodeCategory::kLo);   // 中
  EXPECT_EQ(unicode_category(0x0301), UnicodeCategory::kMn);   // combining acute
  EXPECT_EQ(unicode_category(0x1F600), UnicodeCategory::kSo);  // emoji
  EXPECT_EQ(unicode_category(0x10FFFF), UnicodeCategory::kCn);
  EXPECT_EQ(unicode_category(0x110000), UnicodeCategory::kCn);
  EXPECT_TRUE(unicode_is_whitespace(0x3000));
  EXPECT_FALSE(unicode_is_whitespace(0x200B));  // zero width space is not White_Space
  const CodepointText t = utf8_split("a\xC3\xA9\xFF\xE2\x82");
  EXPECT_EQ(t.cps, (std::vector<char32_t>{'a', 0xE9, kInvalidCodepoint, kInvalidCodepoint,
                                          kInvalidCodepoint}));
  EXPECT_EQ(t.offset, (std::vector<uint32_t>{0, 1, 3, 4, 5, 6}));
  std::string s;
  utf8_append(s, 0x1F600);
  EXPECT_EQ(s, "\xF0\x9F\x98\x80");
}

TEST(Unicode, NfcMatchesPythonUnicodedata) {
  // Expected values from Python's unicodedata.normalize("NFC", ...).
  const std::pair<const char*, const char*> cases[] = {
      {"e\xCC\x81", "\xC3\xA9"},                                 // e + acute
      {"\xE2\x84\xAB", "\xC3\x85"},                              // ANGSTROM SIGN singleton
      {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"},  // Hangul L V T
      {"\xEA\xB0\x80\xE1\x86\xA8", "\xEA\xB0\x81"},              // Hangul LV + T
      {"a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87"},             // reordered, then composed
      {"A\xCC\x8A\xCC\x81", "\xC7\xBA"},                         // two successive compositions
      {"\xE1\xB8\x8B\xCC\xA3", "\xE1\xB8\x8D\xCC\x87"},          // decomposed and recomposed
      {"\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC"},  // composition exclusion
      {"x\xCC\x81\xCC\x81", "x\xCC\x81\xCC\x81"},                // nothing to compose
      {"plain ascii", "plain ascii"},
      {"bad\xFF"
       "e\xCC\x81",
       "bad\xFF\xC3\xA9"},  // malformed byte kept
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(unicode_nfc(in), want) << in;
}

}  // namespace
}  // namespace dsq::text
