// DeepSeek-V3 release layouts read through the Hugging Face reader, on small synthetic checkpoints
// written byte by byte: the bf16 layout (experts, router bias, a multi-token-prediction layer to
// skip), the FP8 layout (F8_E4M3 weights + f32 block scales with ragged edge blocks, dequantized
// exactly as W = fp8 x scale), every corruption of the FP8 pairing as a one-line error naming the
// file and the tensor, and config values dsq does not implement refused by field name.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "formats/format_table.h"
#include "formats/hf/hf.h"
#include "lib/core/error.h"
#include "tests/formats/reader_fixtures.h"
#include "tests/test_util.h"

namespace dsq::formats::fixtures {
namespace {

// Layers: 0 dense, 1 MoE (4 experts, 2 per token); widths chosen so 16-wide blocks are ragged.
ModelConfig ds_config() {
  ModelConfig c = synthetic_config(
      "deepseek_v3", {.n_layers = 2, .d_model = 40, .n_heads = 2, .head_dim = 0, .d_ff = 48,
                      .vocab = 64, .max_ctx = 128, .q_lora_rank = 24, .kv_lora_rank = 20,
                      .qk_nope_head_dim = 8, .qk_rope_head_dim = 4, .v_head_dim = 6,
                      .n_experts = 4, .n_experts_per_tok = 2, .n_group = 2, .topk_group = 1,
                      .n_shared_experts = 1, .d_expert = 20, .first_dense = 1});
  c.rms_eps = 1e-6;
  return c;
}

constexpr int64_t kBlock = 16;

struct Fp8Weight {
  std::string codes;          // rows x cols bytes
  std::vector<float> scales;  // [ceil(rows/B), ceil(cols/B)]
  std::vector<float> values;  // what a reader must produce: fp8(code) * scale
};

// Deterministic FP8 codes (no NaN) and block scales for a [rows, cols] weight.
Fp8Weight fp8_weight(int64_t rows, int64_t cols, uint32_t seed) {
  Fp8Weight w;
  const int64_t br = (rows + kBlock - 1) / kBlock, bc = (cols + kBlock - 1) / kBlock;
  for (int64_t i = 0; i < br * bc; ++i) w.scales.push_back(std::ldexp(1.0f, -static_cast<int>(i % 5)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      seed = seed * 1664525u + 1013904223u;
      uint8_t code = static_cast<uint8_t>(seed >> 24);
      if (fp8_e4m3_is_nan(code)) code = 0x42;
      w.codes.push_back(static_cast<char>(code));
      w.values.push_back(fp8_e4m3_to_f32(code) * w.scales[static_cast<size_t>((r / kBlock) * bc + c / kBlock)]);
    }
  return w;
}

std::string f32_bytes(const std::vector<float>& v) { return encode(v, DType::kF32); }

// Writes a DeepSeek HF directory: linears F8_E4M3 + scales when fp8, everything else bf16 (router
// bias f32), plus an MTP layer. `edit` may change the tensors before writing.
struct Checkpoint {
  ::dsq::testing::TempDir dir;
  std::vector<SynthTensor> weights = synth_weights(ds_config());
  std::map<std::string, Fp8Weight> fp8;  // canonical -> codes/scales
  json config = hf_config_deepseek(ds_config());

  explicit Checkpoint(bool use_fp8) {
    config["num_nextn_predict_layers"] = 1;
    if (use_fp8)
      config["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"},
                                       {"weight_block_size", {kBlock, kBlock}},
                                       {"activation_scheme", "dynamic"}};
    uint32_t seed = 7;
    for (auto& t : weights)
      if (use_fp8 && t.row->role == TensorRole::kLinear && t.row->per_layer()) {
        fp8[t.canonical] = fp8_weight(t.shape[0], t.shape[1], seed++);
        t.values = fp8[t.canonical].values;
      }
  }
  std::vector<StTensor> tensors() const {
    std::vector<StTensor> out;
    for (const auto& t : weights) {
      const std::string hf = hf_name(t);
      if (auto it = fp8.find(t.canonical); it != fp8.end()) {
        out.push_back({hf, "F8_E4M3", t.shape, it->second.codes});
        const Shape s{(t.shape[0] + kBlock - 1) / kBlock, (t.shape[1] + kBlock - 1) / kBlock};
        out.push_back({hf + "_scale_inv", "F32", s, f32_bytes(it->second.scales)});
      } else if (t.row->role == TensorRole::kRouterBias) {
        out.push_back({hf, "F32", t.shape, f32_bytes(t.values)});
      } else {
        out.push_back({hf, "BF16", t.shape, encode(t.values, DType::kBF16)});
      }
    }
    // The multi-token-prediction layer (index num_hidden_layers): not part of inference.
    out.push_back({"model.layers.2.enorm.weight", "BF16", {40}, encode(std::vector<float>(40, 1.0f), DType::kBF16)});
    out.push_back({"model.layers.2.self_attn.kv_a_layernorm.weight", "BF16", {20},
                   encode(std::vector<float>(20, 1.0f), DType::kBF16)});
    return out;
  }
  std::string write(const std::vector<StTensor>& ts) {
    std::string data;
    const json h = st_header(ts, &data, {{"format", "pt"}});
    write_file(dir.file("model.safetensors"), st_file(h.dump(), data));
    write_file(dir.file("config.json"), config.dump());
    return dir.path();
  }
  std::string write() { return write(tensors()); }
};

std::string error_of(const std::string& path) {
  try {
    (void)open_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_one_line(const std::string& msg, std::vector<std::string> parts) {
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(HfDeepseek, Bf16ReleaseLayoutReadsEveryTensorAndSkipsTheMtpLayer) {
  Checkpoint ck(false);
  const WeightStore ws = open_model(ck.write());
  EXPECT_EQ(ws.config.arch, "deepseek_v3");
  EXPECT_EQ(ws.config.moe.n_experts, 4);
  EXPECT_EQ(ws.config.head_dim, 12);  // nope + rope
  EXPECT_TRUE(ws.config.rope_interleave);
  expect_weights(ws, ck.weights);
  EXPECT_TRUE(ws.has("blk.1.ffn_gate_exps.3.weight"));
  EXPECT_TRUE(ws.has("blk.1.exp_probs_b.bias"));
  EXPECT_FALSE(ws.has("blk.0.ffn_gate_inp.weight"));  // layer 0 is dense
  EXPECT_TRUE(ws.has("blk.0.ffn_gate.weight"));
}

TEST(HfDeepseek, Fp8BlocksDequantizeExactlyWithRaggedEdges) {
  Checkpoint ck(true);
  const WeightStore ws = open_model(ck.write());
  const auto& e = ws.entry("blk.0.attn_q_a.weight");  // [24, 40]: ragged in both dims
  ASSERT_EQ(e.dtype, DType::kQInt);
  EXPECT_EQ(scheme_name(e.quant), "fp8_e4m3_b16");
  int64_t fp8_tensors = 0;
  for (const auto& t : ck.weights) {
    SCOPED_TRACE(t.canonical);
    const Tensor x = ws.get(t.canonical).to(DType::kF32);
    ASSERT_EQ(x.shape(), t.shape);
    EXPECT_EQ(std::memcmp(x.data<float>(), t.values.data(), t.values.size() * 4), 0);
    fp8_tensors += ws.entry(t.canonical).dtype == DType::kQInt;
  }
  EXPECT_EQ(fp8_tensors, static_cast<int64_t>(ck.fp8.size()));
  // One byte per weight plus the block scales: FP8 stays FP8.
  EXPECT_EQ(e.load().nbytes(), quant_layout(e.quant, 24, 40).total_bytes);
}

TEST(HfDeepseek, CorruptFp8PairsAreOneLineErrorsNamingFileAndTensor) {
  const std::string scale = "model.layers.1.self_attn.kv_b_proj.weight_scale_inv";
  const std::string weight = "model.layers.1.self_attn.kv_b_proj.weight";
  auto with = [&](auto&& edit) {
    Checkpoint ck(true);
    std::vector<StTensor> ts = ck.tensors();
    edit(ts);
    const std::string path = ck.write(ts);
    return std::make_pair(error_of(path), ck.dir.file("model.safetensors"));
  };
  auto find = [](std::vector<StTensor>& ts, const std::string& n) -> StTensor& {
    for (auto& t : ts)
      if (t.name == n) return t;
    throw std::runtime_error("no " + n);
  };
  {  // scale shape mismatch
    auto [msg, file] = with([&](std::vector<StTensor>& ts) {
      StTensor& s = find(ts, scale);
      s.shape = {s.shape[0] * s.shape[1], 1};
    });
    if (msg.find("shape") == std::string::npos) ADD_FAILURE() << msg;
    expect_one_line(msg, {file, scale, "expected"});
  }
  {  // NaN scale
    auto [msg, file] = with([&](std::vector<StTensor>& ts) {
      StTensor& s = find(ts, scale);
      const float nan = std::nanf("");
      std::memcpy(s.bytes.data() + 4, &nan, 4);
    });
    expect_one_line(msg, {file, scale, "nan"});
  }
  {  // a missing scale
    auto [msg, file] = with([&](std::vector<StTensor>& ts) {
      std::erase_if(ts, [&](const StTensor& t) { return t.name == scale; });
    });
    expect_one_line(msg, {file, weight, "_scale_inv"});
  }
  {  // f16 scales
    auto [msg, file] = with([&](std::vector<StTensor>& ts) {
      StTensor& s = find(ts, scale);
      s.dtype = "F16";
      s.bytes.resize(s.bytes.size() / 2);
    });
    expect_one_line(msg, {file, scale, "F32"});
  }
  {  // a scale without its weight
    auto [msg, file] = with([&](std::vector<StTensor>& ts) {
      ts.push_back({"model.layers.1.self_attn.nothing.weight_scale_inv", "F32", {1, 1}, f32_bytes({1.0f})});
    });
    expect_one_line(msg, {file, "nothing.weight_scale_inv", "without its weight"});
  }
  {  // a NaN code: found when the tensor is loaded
    Checkpoint ck(true);
    std::vector<StTensor> ts = ck.tensors();
    find(ts, weight).bytes[5] = static_cast<char>(0xFF);
    const WeightStore ws = open_model(ck.write(ts));
    try {
      (void)ws.get("blk.1.attn_kv_b.weight");
      ADD_FAILURE() << "no error";
    } catch (const FormatError& e) {
      expect_one_line(e.what(), {ck.dir.file("model.safetensors"), weight, "NaN", "0xFF"});
    }
  }
}

TEST(HfDeepseek, UnimplementedConfigValuesAreRefusedByField) {
  struct Case {
    const char* field;
    json value;
    const char* says;
  };
  const Case cases[] = {
      {"scoring_func", "softmax", "scoring_func"},
      {"topk_method", "greedy", "topk_method"},
      {"topk_method", "group_limited_greedy", "topk_method"},
      {"n_group", 3, "n_group"},
      {"topk_group", 5, "topk_group"},
      {"num_experts_per_tok", 9, "num_experts_per_tok"},
      {"qk_rope_head_dim", 5, "qk_rope_head_dim"},
      {"num_key_value_heads", 1, "num_key_value_heads"},
      {"attention_bias", true, "attention_bias"},
      {"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}, "rope_scaling"},
      {"quantization_config", {{"quant_method", "gptq"}}, "quantization_config.quant_method"},
      {"quantization_config", {{"quant_method", 1}}, "quantization_config.quant_method"},
      {"quantization_config", {{"quant_method", nullptr}}, "quantization_config.quant_method"},
      {"quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {128, 64}}},
       "weight_block_size"},
      {"routed_scaling_factor", -1.0, "routed_scaling_factor"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.field);
    Checkpoint ck(false);
    ck.config[k.field] = k.value;
    const std::string msg = error_of(ck.write());
    expect_one_line(msg, {"config.json", k.says});
  }
}

}  // namespace
}  // namespace dsq::formats::fixtures
