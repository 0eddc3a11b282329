// Every dsq::Error message is one line of bounded length, whatever an input put into it.
#include "lib/core/error.h"

#include <gtest/gtest.h>

#include <string>

#include "lib/core/json_io.h"

namespace dsq {
namespace {

TEST(ErrorMessage, ShortMessagesAreKept) {
  EXPECT_STREQ(FormatError("'a.gguf': bad magic").what(), "'a.gguf': bad magic");
}

TEST(ErrorMessage, ControlCharactersBecomeSpaces) {
  EXPECT_STREQ(FormatError("'x': tensor 'a\nb\r\tc'").what(), "'x': tensor 'a b  c'");
}

TEST(ErrorMessage, LongValuesAreCutInTheMiddleBetweenUtf8Characters) {
  // A 5,000-character name of 2-byte characters, then the message's end.
  std::string name;
  for (int i = 0; i < 5000; ++i) name += "\xc3\xa9";  // é
  const std::string msg = FormatError("'i.json': shard '" + name + "' is missing").what();
  EXPECT_LE(msg.size(), kMaxErrorChars);
  EXPECT_EQ(msg.rfind("'i.json': shard '", 0), 0u);
  EXPECT_NE(msg.find(" ... "), std::string::npos);
  EXPECT_EQ(msg.substr(msg.size() - 12), "' is missing");
  // Valid UTF-8 (a JSON report can serialize it): nlohmann's dump throws on a broken sequence.
  EXPECT_NO_THROW((void)nlohmann::json(msg).dump());
}

TEST(ErrorMessage, QuotedExcerptCutsLongNames) {
  EXPECT_EQ(quoted_excerpt("b.safetensors"), "'b.safetensors'");
  const std::string q = quoted_excerpt(std::string(500, 'b'));
  EXPECT_EQ(q, "'" + std::string(60, 'b') + "...'");
  // Cut between UTF-8 characters: 'a' then 2-byte characters, so byte 60 is inside one.
  std::string s = "a";
  for (int i = 0; i < 100; ++i) s += "\xc3\xa9";
  const std::string e = quoted_excerpt(s);
  EXPECT_EQ(e.size(), 1 + 59 + 4u);  // the quote, 'a' + 29 characters, "...'"
  EXPECT_NO_THROW((void)nlohmann::json(e).dump());
  EXPECT_NO_THROW((void)nlohmann::json(json_excerpt(nlohmann::json(s))).dump());
}

}  // namespace
}  // namespace dsq
