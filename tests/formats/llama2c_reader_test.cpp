// llama2.c checkpoints written by the test: v0 shared and unshared classifier, v1, v2 rejected,
// sniffing that does not claim other files, tokenizer discovery.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "formats/format_table.h"
#include "formats/llama2c/llama2c.h"
#include "lib/core/error.h"
#include "tests/formats/reader_fixtures.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

using namespace fixtures;

TEST(Llama2cReader, V0SharedAndUnsharedAndV1) {
  testing::TempDir tmp;
  for (bool tied : {true, false}) {
    const ModelConfig c = tiny_config("llama", tied);
    const auto want = synth_weights(c);
    for (int version : {0, 1}) {
      SCOPED_TRACE(strprintf("tied %d v%d", tied, version));
      const std::string path = tmp.file(strprintf("m%d.bin", version));
      write_file(path, llama2c_file(c, want, version));
      EXPECT_EQ(detect_format(path).name, "llama2c");
      const WeightStore ws = open_model(path);
      EXPECT_EQ(ws.config.tied_embeddings, tied);
      EXPECT_EQ(ws.config.n_kv_heads, 2);
      EXPECT_EQ(ws.config.max_ctx, 16);
      EXPECT_EQ(ws.config.bos_id, 1);
      EXPECT_EQ(ws.metadata.at("llama2c_version"), version);
      expect_weights(ws, want);
    }
  }
}

TEST(Llama2cReader, V2IsRejectedClearly) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", true);
  std::string bytes = llama2c_file(c, synth_weights(c), 1);
  patch<int32_t>(bytes, 4, 2);
  write_file(tmp.file("q.bin"), bytes);
  try {
    open_model(tmp.file("q.bin"));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("version 2 (int8 quantized)"), std::string::npos);
  }
}

TEST(Llama2cReader, SniffNeedsExactSizeWithoutBinExtension) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", true);
  const std::string bytes = llama2c_file(c, synth_weights(c));
  write_file(tmp.file("model.ckpt"), bytes);
  EXPECT_TRUE(sniff_llama2c(tmp.file("model.ckpt")));
  write_file(tmp.file("model.ckpt"), bytes + "x");
  EXPECT_FALSE(sniff_llama2c(tmp.file("model.ckpt")));
  // Text, JSON and tiny files are never llama2.c checkpoints.
  write_file(tmp.file("a.bin"), "{\"hello\": \"world\", \"padding\": 12345678}");
  EXPECT_FALSE(sniff_llama2c(tmp.file("a.bin")));
  write_file(tmp.file("b.bin"), "abc");
  EXPECT_FALSE(sniff_llama2c(tmp.file("b.bin")));
  EXPECT_FALSE(sniff_llama2c(tmp.path().string()));
}

TEST(Llama2cReader, SniffDoesNotClaimRealNonLlama2cFiles) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/models/stories260K/";
  for (const char* f : {"stories260K.gguf", "tok512.model", "llama2c/tok512.bin",
                        "hf/model.safetensors", "hf/config.json"})
    EXPECT_FALSE(sniff_llama2c(dir + f)) << f;
}

TEST(Llama2cReader, TokenizerBesideIsReferenced) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", true);
  write_file(tmp.file("m.bin"), llama2c_file(c, synth_weights(c)));
  EXPECT_FALSE(open_model(tmp.file("m.bin")).metadata.contains("tokenizer"));
  write_file(tmp.file("tok48.bin"), "x");
  const auto ref = open_model(tmp.file("m.bin")).metadata.at("tokenizer");
  EXPECT_EQ(ref.at("kind"), "llama2c");
  EXPECT_EQ(ref.at("path"), tmp.file("tok48.bin"));
  // A SentencePiece model with the wrong vocab size is not referenced.
  std::string proto;
  for (int i = 0; i < 47; ++i) proto += std::string("\x0a\x03\x0a\x01") + char('a' + i % 26);
  write_file(tmp.file("sp.model"), proto);
  EXPECT_EQ(open_model(tmp.file("m.bin")).metadata.at("tokenizer").at("kind"), "llama2c");
  proto += std::string("\x0a\x03\x0a\x01z");
  write_file(tmp.file("sp.model"), proto);
  const auto sp = open_model(tmp.file("m.bin")).metadata.at("tokenizer");
  EXPECT_EQ(sp.at("kind"), "sentencepiece");
  EXPECT_EQ(sp.at("path"), tmp.file("sp.model"));
}

}  // namespace
}  // namespace dsq::formats
