// Every config field of DeepSeek-V3 that changes the math is read and used: on the trained
// ../shared/models/deepseek-v3-tiny, perturbing one field of config.json (in a copy of the
// directory whose weights are symlinked) either changes the first 32 logits, or - for fields that
// decide which tensors exist or what shape they have - makes the checkpoint fail to load with a
// one-line error naming the file and the tensor. The router's correction bias (a tensor) is
// checked the same way. Also: inspect's MoE/MLA structure, and FP8 kept by convert.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/format_table.h"
#include "jobs/convert.h"
#include "jobs/inspect.h"
#include "lib/core/error.h"
#include "lib/model/model.h"
#include "lib/text/tokenizer.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<int32_t> first_ids(const std::string& shared, size_t n) {
  std::vector<int32_t> ids =
      text::read_token_ids(shared + "/models/tiny-references/tinystories.deepseek-tok.u32");
  ids.resize(n);
  return ids;
}

std::vector<float> logits_of(const std::string& dir, const std::vector<int32_t>& ids) {
  const WeightStore ws = formats::open_model(dir);
  return model::Model::load(ws).forward(ids, 1, static_cast<int64_t>(ids.size()));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// A copy of the checkpoint directory with `edit` applied to config.json; weights symlinked.
std::string edited_copy(const std::string& src, const fs::path& dst, const std::function<void(json&)>& edit) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dst / e.path().filename());
  std::ifstream in(src + "/config.json");
  json c = json::parse(in);
  edit(c);
  std::ofstream(dst / "config.json") << c.dump(2);
  return dst.string();
}

TEST(DeepseekTiny, EveryMathConfigFieldIsUsed) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string src = shared + "/models/deepseek-v3-tiny";
  const auto ids = first_ids(shared, 32);
  const std::vector<float> base = logits_of(src, ids);
  ::dsq::testing::TempDir tmp;
  struct Case {
    const char* field;  // for messages
    std::function<void(json&)> edit;
    bool structural;  // decides tensor presence or shapes: the load must fail naming a tensor
  };
  auto set = [](const char* k, json v) { return [k, v](json& c) { c[k] = v; }; };
  auto rope = [](const char* k, json v) { return [k, v](json& c) { c["rope_scaling"][k] = v; }; };
  const std::vector<Case> cases = {
      {"q_lora_rank", set("q_lora_rank", nullptr), true},
      {"kv_lora_rank", set("kv_lora_rank", 96), true},
      {"qk_nope_head_dim", set("qk_nope_head_dim", 24), true},
      {"qk_rope_head_dim", set("qk_rope_head_dim", 8), true},
      {"v_head_dim", set("v_head_dim", 16), true},
      {"rope_interleave", set("rope_interleave", false), false},
      // transformers reads the theta of the rope_scaling dict when it has one (as the release's
      // does), the top-level one otherwise.
      {"rope_theta", [](json& c) { c["rope_theta"] = 50000.0; c["rope_scaling"]["rope_theta"] = 50000.0; }, false},
      {"rope_scaling.factor", rope("factor", 8.0), false},
      {"rope_scaling.original_max_position_embeddings", rope("original_max_position_embeddings", 256), false},
      {"rope_scaling.beta_fast", rope("beta_fast", 4.0), false},
      {"rope_scaling.beta_slow", rope("beta_slow", 8.0), false},
      {"rope_scaling.mscale", rope("mscale", 0.5), false},
      {"rope_scaling.mscale_all_dim", rope("mscale_all_dim", 0.5), false},
      {"rope_scaling (none)", [](json& c) { c.erase("rope_scaling"); }, false},
      {"n_routed_experts", set("n_routed_experts", 8), true},
      {"num_experts_per_tok", set("num_experts_per_tok", 2), false},
      {"n_group", set("n_group", 2), false},
      {"topk_group", set("topk_group", 3), false},
      {"norm_topk_prob", set("norm_topk_prob", false), false},
      {"routed_scaling_factor", set("routed_scaling_factor", 1.0), false},
      {"n_shared_experts", set("n_shared_experts", 2), true},
      {"first_k_dense_replace", set("first_k_dense_replace", 2), true},
      {"moe_layer_freq", set("moe_layer_freq", 2), true},
      {"moe_intermediate_size", set("moe_intermediate_size", 128), true},
      {"rms_norm_eps", set("rms_norm_eps", 1e-2), false},
  };
  int i = 0;
  for (const Case& k : cases) {
    SCOPED_TRACE(k.field);
    const std::string dir = edited_copy(src, tmp.path() / std::to_string(i++), k.edit);
    if (k.structural) {
      try {
        (void)logits_of(dir, ids);
        ADD_FAILURE() << "loaded";
      } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_NE(msg.find("tensor '"), std::string::npos) << msg;
        EXPECT_NE(msg.find(dir), std::string::npos) << msg;
      }
      continue;
    }
    const double d = max_diff(base, logits_of(dir, ids));
    EXPECT_GT(d, 1e-3) << "changing " << k.field << " left the logits unchanged";
  }
  // scoring_func and topk_method have one implemented value each: the others are refused.
  for (const auto& [f, v] : {std::pair{"scoring_func", "softmax"}, {"topk_method", "greedy"}}) {
    const std::string dir = edited_copy(src, tmp.path() / std::to_string(i++), set(f, v));
    try {
      (void)logits_of(dir, ids);
      ADD_FAILURE() << f;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
}

TEST(DeepseekTiny, RouterCorrectionBiasIsUsed) {
  DSQ_REQUIRE_SHARED(shared);
  WeightStore ws = formats::open_model(shared + "/models/deepseek-v3-tiny");
  const auto ids = first_ids(shared, 32);
  const std::vector<float> base = model::Model::load(ws).forward(ids, 1, 32);
  for (int64_t l = 1; l < 3; ++l) {
    const std::string n = "blk." + std::to_string(l) + ".exp_probs_b.bias";
    ws.replace(n, Tensor(DType::kF32, ws.entry(n).shape));  // zeros
  }
  EXPECT_GT(max_diff(base, model::Model::load(ws).forward(ids, 1, 32)), 1e-3);
}

TEST(DeepseekTiny, InspectShowsTheStructureAndActiveParameters) {
  DSQ_REQUIRE_SHARED(shared);
  InspectOptions o;
  o.path = shared + "/models/deepseek-v3-tiny-fp8";
  o.ctx = 1000;
  const json j = run_inspect(o);
  // MANIFEST.md's 6,357,696 plus the two 12-value correction biases (buffers in transformers);
  // the MTP layer is not counted.
  const int64_t params = 6357696 + 24;
  EXPECT_EQ(j["parameters"].get<int64_t>(), params);
  const json& s = j["structure"];
  EXPECT_EQ(s["attention"], "mla");
  EXPECT_EQ(s["moe"]["moe_layers"], 2);
  EXPECT_EQ(s["moe"]["dense_layers"], 1);
  EXPECT_EQ(s["moe"]["routed_experts"], 12);
  EXPECT_EQ(s["mla"]["kv_cache_floats_per_token_layer"], 128 + 16);
  // Per token: every tensor except the 8 of 12 routed experts it is not sent to, per MoE layer.
  const int64_t expert = 3 * 160 * 256;
  EXPECT_EQ(s["active_parameters_per_token"].get<int64_t>(), params - 2 * 8 * expert);
  // MLA's compressed cache: (128 + 16) f16 values per token and layer.
  EXPECT_EQ(j["memory_estimate"]["kv_cache_bytes"].get<int64_t>(), 3 * (128 + 16) * 2 * 1000);
  // FP8 linears are listed as the fp8_e4m3_b128 scheme.
  bool fp8 = false;
  for (const auto& t : j["tensors"]) fp8 |= t.value("scheme", "") == "fp8_e4m3_b128";
  EXPECT_TRUE(fp8);
}

TEST(DeepseekTiny, ConvertKeepsFp8OrDequantizes) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  ConvertOptions o;
  o.src = shared + "/models/deepseek-v3-tiny-fp8";
  o.out = tmp.file("fp8.dsq");
  o.progress = false;
  const ConvertReport keep = run_convert(o);
  o.out = tmp.file("bf16.dsq");
  o.dtype = "bf16";
  const ConvertReport bf16 = run_convert(o);
  // 8.47 MB kept (FP8 codes + f32 scales + bf16 rest) against 12.7 MB dequantized to bf16.
  EXPECT_LT(keep.written.raw_bytes, 0.7 * bf16.written.raw_bytes);
  const auto ids = first_ids(shared, 32);
  const auto a = logits_of(tmp.file("fp8.dsq"), ids), b = logits_of(o.src, ids),
             c = logits_of(tmp.file("bf16.dsq"), ids);
  EXPECT_EQ(max_diff(a, b), 0.0);  // the same bytes, the same math
  EXPECT_LT(max_diff(a, c), 0.05);  // bf16 rounding of the dequantized weights
  const WeightStore ws = formats::open_model(tmp.file("bf16.dsq"));
  EXPECT_EQ(ws.entry("blk.1.ffn_up_exps.4.weight").dtype, DType::kBF16);
}

}  // namespace
}  // namespace dsq::jobs
