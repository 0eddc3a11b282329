// The tokenizers of the trained tiny models (../shared/models: Qwen2/Qwen3 byte-level BPE with the
// Qwen2 pre-tokenizer regex; DeepSeek-V3's three split regexes and a TemplateProcessing
// post-processor that adds BOS) against what Hugging Face tokenizers produced: the first 16,384 ids
// of each held-out text (tiny-references/*.u32, one call over the whole text) and the mixed
// English / Chinese / digits sample of REFERENCE.json.
#include "lib/text/tokenizer.h"

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace dsq::text {
namespace {

struct Family {
  const char* model;   // directory under models/
  const char* suffix;  // id files: <set>.<suffix>-tok.u32
  const char* sample;  // REFERENCE.json key of the mixed sample
  bool bos;            // the tokenizer puts BOS first
};
constexpr Family kFamilies[] = {
    {"qwen2-tiny", "qwen", "tokenizer_qwen_sample", false},
    {"qwen3-tiny", "qwen", "tokenizer_qwen_sample", false},
    {"deepseek-v3-tiny", "deepseek", "tokenizer_deepseek_sample", true},
    {"deepseek-v3-tiny-fp8", "deepseek", "tokenizer_deepseek_sample", true},
};

// The held-out texts as MANIFEST.md defines them.
std::string held_out_text(const std::string& shared, const std::string& set) {
  if (set == "tinystories")
    return load_text_file(shared + "/data/tinystories-train-excerpt.txt").substr(712780);
  if (set == "zh") return load_text_file(shared + "/data/fortunes-zh-eval.txt");
  std::string s = load_text_file(shared + "/data/wikitext-2-raw-test.txt"), out;
  for (size_t i = 0; i < s.size(); ++i)
    if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
  return out;
}

class TinyModelTokenizer : public ::testing::TestWithParam<Family> {};

TEST_P(TinyModelTokenizer, ReproducesTheReferenceIdFiles) {
  DSQ_REQUIRE_SHARED(shared);
  const Family f = GetParam();
  const auto tok =
      load_tokenizer({{"kind", "hf-json"},
                      {"path", shared + "/models/" + f.model + "/tokenizer.json"}});
  EXPECT_EQ(tok->adds_bos(), f.bos);
  for (const std::string set : {"tinystories", "wikitext2", "zh"}) {
    SCOPED_TRACE(set);
    const std::vector<int32_t> want = read_token_ids(shared + "/models/tiny-references/" + set +
                                                     "." + f.suffix + "-tok.u32");
    ASSERT_EQ(want.size(), 16384u);
    std::vector<int32_t> got = tok->encode(held_out_text(shared, set), tok->adds_bos());
    ASSERT_GE(got.size(), want.size());
    got.resize(want.size());
    size_t first = 0;
    while (first < want.size() && got[first] == want[first]) ++first;
    EXPECT_EQ(first, want.size()) << "first difference at id " << first;
  }
  const nlohmann::json ref =
      nlohmann::json::parse(load_text_file(shared + "/models/tiny-references/REFERENCE.json"));
  const auto& sample = ref.at(f.sample);
  EXPECT_EQ(tok->encode(sample.at("text").get<std::string>(), tok->adds_bos()),
            sample.at("ids").get<std::vector<int32_t>>());
  // decode inverts encode (BOS renders as nothing).
  EXPECT_EQ(tok->decode(tok->encode(sample.at("text").get<std::string>(), false)),
            sample.at("text").get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(Shared, TinyModelTokenizer, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) {
                           std::string n = info.param.model;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace dsq::text
