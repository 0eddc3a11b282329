// HF directories and single safetensors files, written by the test: sharded index, f16/bf16
// exactness, Qwen2 biases, tied classifiers, misaligned tensors, tokenizer references.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/format_table.h"
#include "formats/hf/hf.h"
#include "formats/safetensors/safetensors.h"
#include "lib/core/error.h"
#include "tests/formats/reader_fixtures.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

using namespace fixtures;

// A dtype per tensor that cycles through f32, f16 and bf16.
DType cycle_dtype(const SynthTensor& t) {
  static const DType kCycle[] = {DType::kF32, DType::kF16, DType::kBF16};
  return kCycle[(t.canonical.size() + static_cast<size_t>(t.layer + 1)) % 3];
}

// Writes the synthetic model as a directory with `shards` safetensors files and an index when
// shards > 1; returns the HF tensors written.
std::vector<StTensor> write_hf(const std::string& dir, const ModelConfig& c,
                               const std::vector<SynthTensor>& ws, int shards) {
  write_file(dir + "/config.json", hf_config(c).dump(2));
  auto ts = hf_tensors(ws, cycle_dtype);
  if (shards == 1) {
    std::string data;
    write_file(dir + "/model.safetensors", st_file(st_header(ts, &data).dump(), data));
    return ts;
  }
  json weight_map = json::object();
  for (int s = 0; s < shards; ++s) {
    std::vector<StTensor> part;
    for (size_t i = static_cast<size_t>(s); i < ts.size(); i += static_cast<size_t>(shards))
      part.push_back(ts[i]);
    const std::string name = strprintf("model-%05d-of-%05d.safetensors", s + 1, shards);
    for (const auto& t : part) weight_map[t.name] = name;
    std::string data;
    write_file(dir + "/" + name, st_file(st_header(part, &data).dump(), data));
  }
  write_file(dir + "/model.safetensors.index.json",
             json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2));
  return ts;
}

TEST(HfReader, ShardedDirectoryWithF16AndBf16ConvertsExactly) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", /*tied=*/false);
  const auto ws_want = synth_weights(c);
  write_hf(tmp.path().string(), c, ws_want, 2);
  write_file(tmp.file("tokenizer.json"), "{}");
  EXPECT_EQ(detect_format(tmp.path().string()).name, "hf");
  const WeightStore ws = open_model(tmp.path().string());
  EXPECT_EQ(ws.config, c);
  expect_weights(ws, ws_want);
  // dtypes are kept as stored (f16 stays f16, read as mmap views).
  for (const auto& t : ws_want) {
    EXPECT_EQ(ws.entry(t.canonical).dtype, cycle_dtype(t)) << t.canonical;
    EXPECT_FALSE(ws.get(t.canonical).owned()) << t.canonical;
  }
  EXPECT_EQ(ws.metadata.at("tokenizer").at("kind"), "hf-json");
  EXPECT_EQ(ws.metadata.at("source_format"), "hf");
  ASSERT_EQ(ws.sources.size(), 4u);  // config, index, two shards
  // Canonical order: globals, then layer by layer.
  EXPECT_EQ(ws.names().front(), "token_embd.weight");
  EXPECT_EQ(ws.names().back(), "blk.1.ffn_down.weight");
}

TEST(HfReader, Qwen2WithBiasesLoads) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("qwen2", /*tied=*/true);
  ASSERT_TRUE(c.qkv_bias);
  const auto ws_want = synth_weights(c);
  write_hf(tmp.path().string(), c, ws_want, 1);
  const WeightStore ws = open_model(tmp.path().string());
  EXPECT_EQ(ws.config.arch, "qwen2");
  EXPECT_TRUE(ws.config.qkv_bias);
  EXPECT_TRUE(ws.has("blk.1.attn_k.bias"));
  EXPECT_EQ(ws.entry("blk.0.attn_q.bias").shape, (Shape{32}));
  expect_weights(ws, ws_want);
}

TEST(HfReader, ConfigDefaultsAndMistral) {
  json j = hf_config(tiny_config("llama", false));
  j["architectures"] = {"MistralForCausalLM"};
  j.erase("num_key_value_heads");
  j["head_dim"] = nullptr;
  j.erase("rms_norm_eps");
  j["eos_token_id"] = {7, 9};
  const ModelConfig c = hf_config_from_json(j, "config.json");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rms_eps, 1e-6);
  EXPECT_EQ(c.eos_id, 7);
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  try {
    hf_config_from_json(j, "x/config.json");
    FAIL() << "accepted gpt2";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'x/config.json': unsupported architecture "
                                         "'GPT2LMHeadModel'"),
              std::string::npos)
        << e.what();
  }
}

TEST(HfReader, TiedCheckpointWithIdenticalLmHeadDropsIt) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", /*tied=*/true);
  auto ws_want = synth_weights(c);
  write_file(tmp.file("config.json"), hf_config(c).dump());
  auto ts = hf_tensors(ws_want, [](const SynthTensor&) { return DType::kF32; });
  StTensor head = ts.front();  // model.embed_tokens.weight
  ASSERT_EQ(head.name, "model.embed_tokens.weight");
  head.name = "lm_head.weight";
  ts.push_back(head);
  ts.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {4},
                encode({1, 2, 3, 4}, DType::kF32)});
  std::string data;
  write_file(tmp.file("model.safetensors"), st_file(st_header(ts, &data).dump(), data));
  const WeightStore ws = open_model(tmp.path().string());
  EXPECT_FALSE(ws.has("output.weight"));
  expect_weights(ws, ws_want);

  // A different lm_head under tie_word_embeddings is a contradiction.
  ts[ts.size() - 2].bytes[0] ^= 1;
  data.clear();
  write_file(tmp.file("model.safetensors"), st_file(st_header(ts, &data).dump(), data));
  EXPECT_THROW(open_model(tmp.path().string()), ConfigError);
}

TEST(HfReader, SingleSafetensorsFileNeedsConfigBesideIt) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", false);
  const auto ws_want = synth_weights(c);
  write_hf(tmp.path().string(), c, ws_want, 1);
  const std::string file = tmp.file("model.safetensors");
  EXPECT_EQ(detect_format(file).name, "safetensors");
  const WeightStore ws = open_model(file);
  EXPECT_EQ(ws.metadata.at("source_format"), "safetensors");
  expect_weights(ws, ws_want);
  std::filesystem::remove(tmp.file("config.json"));
  try {
    open_model(file);
    FAIL() << "loaded without config.json";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no config.json beside it"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos);
  }
}

TEST(HfReader, MisalignedTensorsAreCopiedNotBorrowed) {
  testing::TempDir tmp;
  const ModelConfig c = tiny_config("llama", true);
  const auto ws_want = synth_weights(c);
  write_file(tmp.file("config.json"), hf_config(c).dump());
  const auto ts = hf_tensors(ws_want, [](const SynthTensor&) { return DType::kF32; });
  std::string data;
  const json h = st_header(ts, &data, {{"format", "pt"}});
  // One extra header byte: the data section (and every tensor) starts at an odd offset.
  write_file(tmp.file("model.safetensors"), st_file(h.dump(), data, 8, 1));
  const SafetensorsFile f = SafetensorsFile::open(tmp.file("model.safetensors"));
  EXPECT_EQ(f.data_offset() % 2, 1u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const WeightStore ws = open_model(tmp.path().string());
  for (const auto& name : ws.names()) EXPECT_TRUE(ws.get(name).owned()) << name;
  expect_weights(ws, ws_want);
}

}  // namespace
}  // namespace dsq::formats
