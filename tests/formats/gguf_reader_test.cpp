// GGUF parsing on real files: vocabulary-only files and the stories260K model.
#include <gtest/gtest.h>

#include "formats/format_table.h"
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

TEST(GgufReader, LoadsStories260KAsCanonicalTiedLlama) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string path = shared + "/models/stories260K/stories260K.gguf";
  const WeightStore ws = open_model(path);
  EXPECT_EQ(ws.metadata.at("source_format"), "gguf");
  EXPECT_EQ(ws.metadata.at("tokenizer").at("kind"), "gguf");
  EXPECT_TRUE(ws.config.tied_embeddings);
  EXPECT_FALSE(ws.has("output.weight"));
  EXPECT_EQ(ws.size(), 47u);
  EXPECT_EQ(ws.parameter_count(), 260032);
  // Unpermuted tensors are zero-copy views into the mapping.
  const Tensor v = ws.get("blk.0.attn_v.weight");
  EXPECT_FALSE(v.owned());
  EXPECT_EQ(v.shape(), (Shape{32, 64}));
  // q rows are permuted from Meta order: canonical row r of head h is Meta row 2*(r%4) + r/4.
  const GgufFile f = GgufFile::open(path);
  const auto* raw = reinterpret_cast<const float*>(f.tensor_data(*f.find_tensor("blk.0.attn_q.weight")));
  const Tensor q = ws.get("blk.0.attn_q.weight");
  EXPECT_TRUE(q.owned());
  for (int64_t h = 0; h < 8; ++h)
    for (int64_t r = 0; r < 8; ++r)
      for (int64_t col = 0; col < 64; ++col)
        ASSERT_EQ(q.data<float>()[(h * 8 + r) * 64 + col],
                  raw[(h * 8 + 2 * (r % 4) + r / 4) * 64 + col]);
}

}  // namespace
}  // namespace dsq::formats
