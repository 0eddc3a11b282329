// The three copies of stories260K (HF safetensors, GGUF, llama2.c) load to the same canonical
// weights, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/format_table.h"
#include "lib/core/error.h"
#include <nlohmann/json.hpp>
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

struct Loaded {
  std::string label;
  WeightStore ws;
};

std::vector<Loaded> load_all(const std::string& shared) {
  const std::string dir = shared + "/models/stories260K/";
  std::vector<Loaded> out;
  out.push_back({"hf", open_model(dir + "hf")});
  out.push_back({"gguf", open_model(dir + "stories260K.gguf")});
  out.push_back({"llama2c", open_model(dir + "llama2c/stories260K.bin")});
  out.push_back({"safetensors", open_model(dir + "hf/model.safetensors")});
  return out;
}

TEST(StoriesReaders, FormatsAreDetected) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/models/stories260K/";
  EXPECT_EQ(detect_format(dir + "hf").name, "hf");
  EXPECT_EQ(detect_format(dir + "hf/model.safetensors").name, "safetensors");
  EXPECT_EQ(detect_format(dir + "stories260K.gguf").name, "gguf");
  EXPECT_EQ(detect_format(dir + "llama2c/stories260K.bin").name, "llama2c");
  // Tokenizer files are not models.
  EXPECT_THROW(detect_format(dir + "tok512.model"), FormatError);
  EXPECT_THROW(detect_format(dir + "llama2c/tok512.bin"), FormatError);
  EXPECT_THROW(detect_format(dir + "hf/config.json"), FormatError);
}

TEST(StoriesReaders, AllFormatsGiveBitIdenticalCanonicalWeights) {
  DSQ_REQUIRE_SHARED(shared);
  const auto all = load_all(shared);
  const WeightStore& ref = all[0].ws;
  EXPECT_EQ(ref.parameter_count(), 260032);
  EXPECT_EQ(ref.size(), 47u);
  const ModelConfig& c = ref.config;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.d_ff, 172);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  for (const auto& [label, ws] : all) {
    SCOPED_TRACE(label);
    EXPECT_EQ(ws.metadata.at("source_format"), label);
    EXPECT_EQ(ws.names(), ref.names());
    EXPECT_EQ(ws.parameter_count(), 260032);
    // Everything but the context length (GGUF metadata says 2048, the others 512) agrees.
    ModelConfig a = ws.config, b = c;
    a.max_ctx = b.max_ctx = 0;
    EXPECT_EQ(a, b) << nlohmann::json(a).dump() << "\n" << nlohmann::json(b).dump();
    for (const auto& name : ref.names()) {
      const Tensor x = ws.get(name), y = ref.get(name);
      ASSERT_EQ(x.dtype(), DType::kF32) << name;
      ASSERT_EQ(x.shape(), y.shape()) << name;
      ASSERT_EQ(x.nbytes(), y.nbytes()) << name;
      EXPECT_EQ(std::memcmp(x.bytes(), y.bytes(), x.nbytes()), 0) << name;
    }
  }
  EXPECT_EQ(all[0].ws.config.max_ctx, 512);
  EXPECT_EQ(all[1].ws.config.max_ctx, 2048);
  EXPECT_EQ(all[2].ws.config.max_ctx, 512);
}

TEST(StoriesReaders, TokenizerReferencesAndSources) {
  DSQ_REQUIRE_SHARED(shared);
  const auto all = load_all(shared);
  const auto& hf = all[0].ws.metadata.at("tokenizer");
  EXPECT_EQ(hf.at("kind"), "sentencepiece");
  EXPECT_EQ(hf.at("path"), shared + "/models/stories260K/hf/tokenizer.model");
  EXPECT_EQ(hf.at("add_bos_token"), true);
  EXPECT_EQ(all[1].ws.metadata.at("tokenizer").at("kind"), "gguf");
  // llama2c: tok512.model in the parent directory has 512 pieces, matching the vocab.
  const auto& l2c = all[2].ws.metadata.at("tokenizer");
  EXPECT_EQ(l2c.at("kind"), "sentencepiece");
  EXPECT_EQ(l2c.at("path"), shared + "/models/stories260K/tok512.model");
  // HF sources: config.json and the safetensors file, with their sizes.
  ASSERT_EQ(all[0].ws.sources.size(), 2u);
  EXPECT_EQ(all[0].ws.sources[1].bytes, 1044992u);
  EXPECT_EQ(all[2].ws.sources.at(0).bytes, 1056540u);
}

TEST(StoriesReaders, HfTensorsAreZeroCopyViews) {
  DSQ_REQUIRE_SHARED(shared);
  const WeightStore ws = open_model(shared + "/models/stories260K/hf");
  for (const auto& name : ws.names()) EXPECT_FALSE(ws.get(name).owned()) << name;
}

}  // namespace
}  // namespace dsq::formats
