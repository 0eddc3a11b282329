// Every dsq::Error message is one line of bounded length, whatever an input put into it.
#include "lib/core/error.h"

#include <gtest/gtest.h>

#include <string>

#include "lib/core/arch.h"
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

// json_get reads a field only as the type it holds: an integer field given 1e300 or 2^40 is
// refused rather than converted (float-to-int overflow is undefined behaviour; UBSan reports it).
TEST(JsonGet, IntegersOnlyInRangeAndNoFloatConversions) {
  int32_t i = 7;
  EXPECT_TRUE(json_get(nlohmann::json(-5), &i));
  EXPECT_EQ(i, -5);
  EXPECT_FALSE(json_get(nlohmann::json(1e300), &i));
  EXPECT_FALSE(json_get(nlohmann::json(2.0), &i));
  EXPECT_FALSE(json_get(nlohmann::json(int64_t{1} << 40), &i));
  EXPECT_FALSE(json_get(nlohmann::json("3"), &i));
  EXPECT_EQ(i, -5);
  uint32_t u = 0;
  EXPECT_FALSE(json_get(nlohmann::json(-1), &u));
  EXPECT_TRUE(json_get(nlohmann::json(uint64_t{4000000000}), &u));
  EXPECT_EQ(u, 4000000000u);
  float f = 0;
  EXPECT_FALSE(json_get(nlohmann::json(1e300), &f));
  EXPECT_TRUE(json_get(nlohmann::json(3), &f));
  EXPECT_EQ(f, 3.0f);
  bool b = false;
  EXPECT_FALSE(json_get(nlohmann::json(1), &b));
  std::string s;
  EXPECT_FALSE(json_get(nlohmann::json(1), &s));
  EXPECT_TRUE(json_get(nlohmann::json("x"), &s));
  // A model config with such a field is a ConfigError naming the field.
  nlohmann::json c = {{"arch", "llama"}, {"n_layers", 1e300}};
  try {
    (void)c.get<ModelConfig>();
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'n_layers'"), std::string::npos) << e.what();
  }
}

// Files and reports dsq writes carry names it did not choose (a file name, a GGUF tensor name):
// bytes that are not UTF-8 become U+FFFD instead of an exception from the JSON writer.
TEST(DumpJson, InvalidUtf8IsReplacedNotThrown) {
  const nlohmann::json j = {{"file", std::string("calib-\xff.txt")}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::exception);
  EXPECT_EQ(dump_json(j), "{\"file\":\"calib-\xef\xbf\xbd.txt\"}");
}

TEST(JsonMember, AReferenceIntoTheObjectOrNull) {
  const nlohmann::json j = {{"tensors", {{"a", {{"attrs", 1}}}}}, {"n", 3}};
  EXPECT_EQ(&json_member(j, "tensors"), &j["tensors"]);  // not a copy
  EXPECT_EQ(json_member(j, "n"), 3);
  EXPECT_TRUE(json_member(j, "missing").is_null());
  EXPECT_TRUE(json_member(nlohmann::json::array({1, 2}), "n").is_null());
  EXPECT_TRUE(json_member(nlohmann::json(), "n").is_null());
}

}  // namespace
}  // namespace dsq
