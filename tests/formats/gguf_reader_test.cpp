// GGUF parsing on real files: vocabulary-only files and the stories260K model.
#include <gtest/gtest.h>

#include "formats/gguf/gguf.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

TEST(GgufFile, OpensVocabOnlyFiles) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/data/tokenizer-tests/";
  {
    const GgufFile f = GgufFile::open(dir + "ggml-vocab-llama-spm.gguf");
    EXPECT_TRUE(f.tensors().empty());
    const auto& m = f.metadata();
    EXPECT_EQ(m.at("tokenizer.ggml.model").get<std::string>(), "llama");
    const auto& toks = m.at("tokenizer.ggml.tokens");
    ASSERT_EQ(toks.size(), 32000u);
    EXPECT_EQ(toks[1].get<std::string>(), "<s>");
    EXPECT_EQ(toks[2].get<std::string>(), "</s>");
    EXPECT_EQ(toks[3].get<std::string>(), "<0x00>");
    EXPECT_EQ(m.at("tokenizer.ggml.scores").size(), 32000u);
    EXPECT_EQ(m.at("tokenizer.ggml.token_type").size(), 32000u);
    EXPECT_EQ(m.at("tokenizer.ggml.bos_token_id").get<int64_t>(), 1);
    EXPECT_EQ(m.at("tokenizer.ggml.eos_token_id").get<int64_t>(), 2);
    const auto t = f.metadata_type("tokenizer.ggml.scores");
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->type, GgufValueType::kArray);
    EXPECT_EQ(t->elem, GgufValueType::kF32);
    EXPECT_FALSE(f.metadata_type("no.such.key").has_value());
  }
  {
    const GgufFile f = GgufFile::open(dir + "ggml-vocab-gpt-2.gguf");
    const auto& m = f.metadata();
    EXPECT_EQ(m.at("tokenizer.ggml.model").get<std::string>(), "gpt2");
    EXPECT_EQ(m.at("tokenizer.ggml.tokens").size(), 50257u);
    ASSERT_TRUE(m.contains("tokenizer.ggml.merges"));
    EXPECT_EQ(m.at("tokenizer.ggml.merges")[0].get<std::string>(), "Ġ t");
  }
}

TEST(GgufFile, ParsesStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  const GgufFile f = GgufFile::open(shared + "/models/stories260K/stories260K.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  ASSERT_EQ(f.tensors().size(), 48u);
  const auto& m = f.metadata();
  EXPECT_EQ(m.at("general.architecture").get<std::string>(), "llama");
  EXPECT_EQ(m.at("llama.embedding_length").get<int64_t>(), 64);
  EXPECT_EQ(m.at("llama.feed_forward_length").get<int64_t>(), 172);
  EXPECT_EQ(m.at("llama.attention.head_count_kv").get<int64_t>(), 4);
  EXPECT_FLOAT_EQ(m.at("llama.attention.layer_norm_rms_epsilon").get<float>(), 1e-5f);
  EXPECT_EQ(m.at("tokenizer.ggml.tokens").size(), 512u);
  const GgufTensorInfo* k = f.find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(k->type, GgmlType::kF32);
  EXPECT_EQ(k->nbytes, 64u * 32u * 4u);
}

}  // namespace
}  // namespace dsq::formats
