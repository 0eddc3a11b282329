// GGUF parsing on real files: vocabulary-only files and the stories260K model.
#include <gtest/gtest.h>

#include "formats/format_table.h"
#include "formats/gguf/gguf.h"
#include "lib/core/error.h"
#include "tests/formats/reader_fixtures.h"
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

using namespace fixtures;

// Q8_0: d = 0.5, q_j = j - 16 (and -128 at j = 0) -> x_j = 0.5 * q_j.
TEST(GgufDequant, Q8_0MatchesClosedForm) {
  std::string blk;
  put(blk, f32_to_f16(0.5f));
  for (int j = 0; j < 32; ++j) put(blk, static_cast<int8_t>(j == 0 ? -128 : j - 16));
  std::vector<float> out(32);
  dequantize_q8_0(reinterpret_cast<const std::byte*>(blk.data()), out.data(), 32);
  EXPECT_EQ(out[0], -64.0f);
  for (int j = 1; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16)) << j;
}

// Q4_0: d = 0.25, byte j = (15 - j) << 4 | j -> x_j = 0.25 (j - 8), x_{j+16} = 0.25 (7 - j).
TEST(GgufDequant, Q4_0MatchesClosedForm) {
  std::string blk;
  put(blk, f32_to_f16(0.25f));
  for (int j = 0; j < 16; ++j) put(blk, static_cast<uint8_t>((15 - j) << 4 | j));
  std::vector<float> out(32);
  dequantize_q4_0(reinterpret_cast<const std::byte*>(blk.data()), out.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.25f * (j - 8)) << j;
    EXPECT_EQ(out[j + 16], 0.25f * (7 - j)) << j;
  }
}

// Vectors f32; the four permuted matrices (q/k of layers 0 and 1) one of each type; the other
// matrices cycling through the types.
uint32_t mixed_type(const SynthTensor& t) {
  static const uint32_t kCycle[] = {kGgmlF16, kGgmlBF16, kGgmlQ8_0, kGgmlF32};
  if (t.shape.size() == 1) return kGgmlF32;
  if (t.row->permute != RopePermute::kNone)
    return kCycle[t.layer * 2 + (t.row->permute == RopePermute::kQ ? 0 : 1)];
  return kCycle[t.canonical.size() % 4];
}

// Meta-ordered q/k in every dtype (f16/bf16 permuted as 2-byte rows, q8_0 after dequant) come
// back in canonical order with the exact values; untied classifier kept.
TEST(GgufReader, SyntheticLlamaAllTypesV2AndV3) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", /*tied=*/false);
  const auto want = synth_weights(c);
  for (uint32_t version : {2u, 3u}) {
    SCOPED_TRACE(version);
    GgufBuilder b = gguf_model(c, want, mixed_type);
    const std::string path = tmp.file(strprintf("m%u.gguf", version));
    write_file(path, b.build(version));
    const WeightStore ws = open_model(path);
    EXPECT_EQ(ws.config, c) << nlohmann::json(ws.config).dump();
    expect_weights(ws, want);
    for (const auto& t : want) {
      const uint32_t ty = mixed_type(t);
      const DType d = ty == kGgmlF16 ? DType::kF16 : ty == kGgmlBF16 ? DType::kBF16 : DType::kF32;
      EXPECT_EQ(ws.entry(t.canonical).dtype, d) << t.canonical;
    }
  }
}

TEST(GgufReader, HonoursGeneralAlignment) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", /*tied=*/true);
  const auto want = synth_weights(c);
  GgufBuilder b = gguf_model(c, want, [](const SynthTensor&) { return kGgmlF16; });
  b.kv_u32("general.alignment", 256);
  b.kv_raw("tokenizer.ggml.add_bos_token", 7, std::string(1, '\1'));
  write_file(tmp.file("a.gguf"), b.build(3, 256));
  const GgufFile f = GgufFile::open(tmp.file("a.gguf"));
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.data_offset() % 256, 0u);
  const WeightStore ws = open_model(tmp.file("a.gguf"));
  expect_weights(ws, want);
  EXPECT_EQ(ws.metadata.at("tokenizer").at("add_bos_token"), true);
  // Claiming a larger alignment than the writer used leaves tensor offsets misaligned: rejected.
  std::string s = b.build(3, 256);
  const size_t at = s.find("general.alignment") + std::string("general.alignment").size() + 4;
  patch<uint32_t>(s, at, 512);
  write_file(tmp.file("b.gguf"), s);
  EXPECT_THROW(open_model(tmp.file("b.gguf")), FormatError);
}

TEST(GgufReader, Qwen2KeepsNeoxOrderAndBiases) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("qwen2", /*tied=*/true);
  const auto want = synth_weights(c);
  GgufBuilder b = gguf_model(c, want, [](const SynthTensor&) { return kGgmlF32; });
  write_file(tmp.file("q.gguf"), b.build());
  const WeightStore ws = open_model(tmp.file("q.gguf"));
  EXPECT_EQ(ws.config, c);
  expect_weights(ws, want);
}

TEST(GgufReader, VocabOnlyFileIsNotAModel) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string path = shared + "/data/tokenizer-tests/ggml-vocab-llama-spm.gguf";
  try {
    open_model(path);
    FAIL() << "opened a vocab-only file as a model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'" + path + "': no tensors"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace dsq::formats
