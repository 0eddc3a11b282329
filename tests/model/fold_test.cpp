// Folding AWQ scales (lib/model/fold.h) leaves the model's function unchanged: the logits of
// stories260K and of a synthetic Qwen2 (q/k/v biases, GQA) with random scales folded into every
// group of every block match the unfolded model's to f32 tolerance, while the weights did change.
#include "lib/model/fold.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <algorithm>
#include <functional>
#include <random>

#include "formats/format_table.h"
#include "lib/core/error.h"
#include "lib/model/model.h"
#include "lib/core/synthetic.h"
#include "lib/quant/rtn.h"
#include "tests/test_util.h"

namespace dsq::model {
namespace {

using Edit = std::function<void(BlockWeights&)>;

// Embedding -> blocks (each edited by `edit`) -> head, as the calibration pipeline runs them.
std::vector<float> logits(const WeightStore& ws, const std::vector<int32_t>& tokens, int64_t B,
                          int64_t T, const Edit& edit) {
  const ModelConfig& c = ws.config;
  std::vector<float> h(static_cast<size_t>(B * T * c.d_model));
  Embedding::load(ws).lookup(tokens, h.data());
  for (int64_t l = 0; l < c.n_layers; ++l) {
    BlockWeights bw = BlockWeights::load(ws, l);
    if (edit) edit(bw);
    block_forward(bw, c, h.data(), B, T);
  }
  std::vector<float> out(static_cast<size_t>(B * T * c.vocab_size));
  Head::load(ws).forward(h.data(), B * T, out.data());
  return out;
}

// Random positive scales for group g, equal on tied channels (exp(N(0, sigma))).
std::vector<float> random_scales(const BlockWeights& bw, const ModelConfig& c, const LinearGroup& g,
                                 std::mt19937& rng, double sigma = 0.7, int64_t expert = -1) {
  int64_t n_prod = 0;
  const std::vector<int64_t> map = fold_channel_map(bw, c, g, &n_prod, expert);
  EXPECT_FALSE(map.empty()) << "block " << bw.layer << " group " << g.name;
  std::normal_distribution<double> nd(0.0, sigma);
  std::vector<float> per(static_cast<size_t>(n_prod));
  for (auto& v : per) v = static_cast<float>(std::exp(nd(rng)));
  std::vector<float> s(map.size());
  for (size_t j = 0; j < map.size(); ++j) s[j] = per[static_cast<size_t>(map[j])];
  return s;
}

std::vector<int32_t> read_ids(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint32_t> raw(n);
  f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(n * 4));
  EXPECT_TRUE(f.good()) << path;
  return std::vector<int32_t>(raw.begin(), raw.end());
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Folds random scales into every group of every block; checks the logits and that it did something.
void expect_fold_is_exact(const WeightStore& ws, const std::vector<int32_t>& tokens, int64_t B,
                          int64_t T) {
  const ArchInfo& arch = require_arch(ws.config.arch, "test");
  const std::vector<float> ref = logits(ws, tokens, B, T, nullptr);
  // The pipeline's path without edits is the reference engine.
  const std::vector<float> engine = Model::load(ws).forward(tokens, B, T);
  ASSERT_EQ(max_diff(ref, engine), 0.0);
  std::mt19937 rng(3);
  double changed = 0;
  const std::vector<float> folded = logits(ws, tokens, B, T, [&](BlockWeights& bw) {
    const Tensor norm_before = (*bw.norm("attn_norm"));
    const Tensor v_before = bw.linear("attn_output")->weight();
    // Groups reading the same producer share one scale (a MoE layer's ffn_norm feeds the shared
    // and the routed experts and the router); expert producers fold expert by expert.
    std::vector<std::string_view> done;
    for (const LinearGroup& g : arch.linear_groups) {
      if (std::find(done.begin(), done.end(), g.producer) != done.end()) continue;
      done.push_back(g.producer);
      std::vector<const LinearGroup*> same;
      for (const LinearGroup& x : arch.linear_groups) {
        int64_t n = 0;
        const bool present = !fold_channel_map(bw, ws.config, x, &n, x.per_expert ? 0 : -1).empty();
        if (x.producer == g.producer && present) same.push_back(&x);
      }
      if (same.empty()) continue;  // e.g. the dense FFN groups of a MoE layer
      const bool expert_producer = g.producer.find("{E}") != std::string_view::npos;
      const int64_t n_exp = expert_producer ? static_cast<int64_t>(bw.moe->experts.size()) : 1;
      for (int64_t e = 0; e < n_exp; ++e) {
        const int64_t ex = expert_producer ? e : -1;
        const LinearGroup& first = *same.front();
        fold_input_scale(bw, ws.config, same,
                         random_scales(bw, ws.config, first, rng, 0.7, first.per_expert && ex < 0 ? 0 : ex),
                         ex);
      }
    }
    for (int64_t i = 0; i < norm_before.numel(); ++i)
      changed = std::max(changed, std::fabs(double(norm_before.data<float>()[i]) - (*bw.norm("attn_norm")).data<float>()[i]));
    for (int64_t i = 0; i < v_before.numel(); ++i)
      changed = std::max(changed, std::fabs(double(v_before.data<float>()[i]) - bw.linear("attn_output")->weight().data<float>()[i]));
  });
  EXPECT_GT(changed, 1e-3) << "the folds left the weights unchanged";
  const double scale = max_abs(ref);
  ASSERT_GT(scale, 1.0);
  EXPECT_LE(max_diff(ref, folded), 2e-5 * scale) << "max |logit| " << scale;
  // Sensitivity: scaling the linears without dividing the producer changes the function.
  const std::vector<float> broken = logits(ws, tokens, B, T, [&](BlockWeights& bw) {
    const LinearGroup& g = arch.linear_groups.front();
    const Tensor norm = (*bw.norm("attn_norm")).clone();
    fold_input_scale(bw, ws.config, g, random_scales(bw, ws.config, g, rng));
    (*bw.norm("attn_norm")) = norm;
  });
  EXPECT_GT(max_diff(ref, broken), 1e-2 * scale);
}

TEST(Fold, Stories260KLogitsUnchanged) {
  DSQ_REQUIRE_SHARED(shared);
  const WeightStore ws = formats::open_model(shared + "/models/stories260K/hf");
  const std::vector<int32_t> tokens = read_ids(shared + "/data/tinystories-eval.stories260K.u32", 256);
  expect_fold_is_exact(ws, tokens, 2, 128);
}

// Every architecture of the table (Qwen2's biases, Qwen3's per-head q/k norms, GQA everywhere):
// the folds the table derives leave the function unchanged.
TEST(Fold, EveryArchitectureLogitsUnchanged) {
  for (const ArchInfo& a : arch_table()) {
    SCOPED_TRACE(std::string(a.name));
    const ModelConfig c = synthetic_config(a.name, {.n_layers = 3, .head_dim = 24});
    const WeightStore ws = make_synthetic_model(c, 17);
    std::vector<int32_t> tokens(2 * 40);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % c.vocab_size);
    expect_fold_is_exact(ws, tokens, 2, 40);
  }
}

TEST(Fold, ChannelMapAndErrors) {
  const ModelConfig c = tiny_llama_config();  // 4 heads of 16, 2 kv heads
  const WeightStore ws = make_synthetic_model(c, 5);
  const ArchInfo& arch = require_arch(c.arch, "test");
  BlockWeights bw = BlockWeights::load(ws, 0);
  const LinearGroup* attn_out = nullptr;
  for (const auto& g : arch.linear_groups)
    if (g.channels == ChannelMap::kKvHeads) attn_out = &g;
  ASSERT_NE(attn_out, nullptr);
  int64_t n_prod = 0;
  const std::vector<int64_t> map = fold_channel_map(bw, c, *attn_out, &n_prod);
  ASSERT_EQ(map.size(), 64u);
  EXPECT_EQ(n_prod, 32);
  // q-heads 0,1 read kv-head 0; q-heads 2,3 read kv-head 1.
  EXPECT_EQ(map[5], 5);
  EXPECT_EQ(map[16 + 5], 5);
  EXPECT_EQ(map[32 + 5], 16 + 5);
  EXPECT_EQ(map[48 + 5], 16 + 5);
  std::vector<float> untied(64, 1.0f);
  untied[16 + 5] = 2.0f;
  EXPECT_THROW(fold_input_scale(bw, c, *attn_out, untied), ShapeError);
  EXPECT_THROW(fold_input_scale(bw, c, *attn_out, std::vector<float>(63, 1.0f)), ShapeError);
  std::vector<float> negative(64, 1.0f);
  negative[0] = -1.0f;
  EXPECT_THROW(fold_input_scale(bw, c, *attn_out, negative), ShapeError);
  // A quantized producer cannot absorb a scale; a quantized consumer cannot be rescaled.
  const Tensor wv = bw.linear("attn_v")->weight();
  *bw.linear("attn_v") = Linear::from_tensors("blk.0.attn_v.weight",
                                   quant::quantize_matrix_rtn(wv.data<float>(), wv.dim(0), wv.dim(1), QuantDesc{4, 32, false}));
  EXPECT_TRUE(fold_channel_map(bw, c, *attn_out, &n_prod).empty());
  EXPECT_THROW(fold_input_scale(bw, c, *attn_out, std::vector<float>(64, 1.0f)), ConfigError);
  EXPECT_THROW(fold_input_scale(bw, c, arch.linear_groups.front(), std::vector<float>(64, 1.0f)),
               ConfigError);
}

}  // namespace
}  // namespace dsq::model
