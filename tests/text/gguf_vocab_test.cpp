// gguf_tokenizer_metadata: the tokenizer of each real model, written to a vocabulary-only GGUF
// with GgufWriter and read back through dsq's GGUF tokenizer, gives the source tokenizer's ids on
// real text (TinyStories, WikiText-2, Chinese fortunes), the same special ids and BOS rule.
#include "lib/text/gguf_vocab.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "lib/core/error.h"
#include "lib/text/tokenizer.h"
#include "tests/test_util.h"

namespace dsq::text {
namespace {

using json = nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The documented condition of the round trip: the text as SentencePiece's
// remove_extra_whitespaces leaves it (no leading or trailing spaces, single spaces inside), which
// llama.cpp does not do itself. Cut at a line end (not inside a UTF-8 sequence).
std::string sample(const std::string& text) {
  std::string s = text.substr(0, text.rfind('\n', 60000));
  s = std::regex_replace(s, std::regex(" {2,}"), " ");
  const size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

struct Case {
  const char* name;
  const char* kind;
  const char* file;  // under ../shared/models
  const char* model;  // tokenizer.ggml.model written
};

class GgufVocab : public ::testing::TestWithParam<Case> {};

TEST_P(GgufVocab, ReadBackGivesTheSourceIds) {
  DSQ_REQUIRE_SHARED(shared);
  const Case& c = GetParam();
  const json ref = {{"kind", c.kind}, {"path", shared + "/models/" + c.file}};
  const auto src = load_tokenizer(ref);
  formats::GgufMetadata md = gguf_tokenizer_metadata(ref);
  md.insert(md.begin(), {"general.architecture", formats::gguf_string("llama")});
  dsq::testing::TempDir tmp;
  const std::string path = tmp.file("vocab.gguf");
  formats::GgufWriter w(path, md, {});
  w.finish();
  const formats::GgufFile f = formats::GgufFile::open(path);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.model"], c.model);
  const auto back = load_tokenizer_file(path);
  EXPECT_EQ(back->vocab_size(), src->vocab_size());
  EXPECT_EQ(back->bos_id(), src->bos_id());
  EXPECT_EQ(back->eos_id(), src->eos_id());
  EXPECT_EQ(back->adds_bos(), src->adds_bos());
  for (int32_t id = 0; id < static_cast<int32_t>(src->vocab_size()); ++id)
    ASSERT_EQ(back->token_text(id), src->token_text(id)) << id;
  for (const char* text_file : {"tinystories-train-excerpt.txt", "wikitext-2-raw-test.txt", "fortunes-zh-eval.txt"}) {
    const std::string text = sample(slurp(shared + "/data/" + text_file));
    const auto a = src->encode(text, true), b = back->encode(text, true);
    ASSERT_GT(a.size(), 1000u) << text_file;
    size_t first = 0;
    while (first < a.size() && first < b.size() && a[first] == b[first]) ++first;
    EXPECT_EQ(a.size(), b.size()) << c.name << " " << text_file;
    EXPECT_EQ(first, a.size()) << c.name << " " << text_file << ": first difference at token " << first;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shared, GgufVocab,
    ::testing::Values(Case{"stories260K_spm", "sentencepiece", "stories260K/hf/tokenizer.model", "llama"},
                      Case{"stories260K_llama2c", "llama2c", "stories260K/llama2c/tok512.bin", "llama"},
                      Case{"stories260K_gguf", "gguf", "stories260K/stories260K.gguf", "llama"},
                      Case{"qwen2_tiny", "hf-json", "qwen2-tiny/tokenizer.json", "gpt2"},
                      Case{"qwen3_tiny", "hf-json", "qwen3-tiny/tokenizer.json", "gpt2"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(GgufVocabErrors, UnnamedPreTokenizerIsAOneLineError) {
  DSQ_REQUIRE_SHARED(shared);
  // DeepSeek-V3's pre-tokenizer (digits in threes, CJK runs, its own word pattern) has no GGUF
  // name dsq knows.
  const std::string file = shared + "/models/deepseek-v3-tiny/tokenizer.json";
  try {
    (void)gguf_tokenizer_metadata({{"kind", "hf-json"}, {"path", file}});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file), std::string::npos) << m;
    EXPECT_NE(m.find("pre-tokenizer"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace dsq::text
