// The DeepSeek block kinds on synthetic models: MLA's weight-absorbed decoding agrees with the
// expanded attention (with and without a q LoRA, under YaRN with mscale != mscale_all_dim), the
// router follows the noaux_tc rules of transformers' DeepseekV3TopkRouter (checked against a
// direct transcription), and the gathered, batched MoE FFN equals a per-token loop over experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "lib/core/synthetic.h"
#include "lib/model/mla.h"
#include "lib/model/model.h"
#include "lib/model/moe.h"
#include "lib/model/rope.h"

namespace dsq::model {
namespace {

ModelConfig deepseek(bool q_lora) {
  ModelConfig c = synthetic_config("deepseek_v3", {.n_layers = 3, .d_model = 48, .n_heads = 3});
  if (!q_lora) c.mla.q_lora_rank = 0;  // DeepSeek-V2-Lite: a plain q projection
  c.rope_scaling = {"yarn", 40.0, 64, 32.0, 1.0, 0.707, 1.0, 0.0, true};
  c.max_ctx = 4096;
  return c;
}

std::vector<int32_t> ids(int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return t;
}

TEST(Mla, AbsorbedDecodingMatchesExpandedAttention) {
  for (const bool q_lora : {true, false}) {
    SCOPED_TRACE(q_lora ? "q LoRA" : "plain q");
    const ModelConfig c = deepseek(q_lora);
    const WeightStore ws = make_synthetic_model(c, 21);
    EXPECT_EQ(ws.has("blk.0.attn_q.weight"), !q_lora);
    EXPECT_EQ(ws.has("blk.0.attn_q_a.weight"), q_lora);
    const Model m = Model::load(ws);
    const int64_t T = 70;
    const auto tok = ids(T, c.vocab_size);
    const std::vector<float> full = m.forward(tok, 1, T);
    KVCache cache = m.new_cache(T);
    std::vector<float> last = m.decode(std::span<const int32_t>(tok.data(), 33), cache);
    double worst = 0, scale = 0;
    for (int64_t t = 33; t <= T; ++t) {
      const size_t V = last.size();
      for (size_t v = 0; v < V; ++v) {
        worst = std::max(worst, std::fabs(double(last[v]) - full[static_cast<size_t>(t - 1) * V + v]));
        scale = std::max(scale, std::fabs(double(last[v])));
      }
      if (t < T) last = m.decode(std::span<const int32_t>(&tok[static_cast<size_t>(t)], 1), cache);
    }
    EXPECT_GT(scale, 0.1);
    EXPECT_LE(worst, 1e-4 * std::max(1.0, scale));
  }
}

TEST(Mla, YarnFrequenciesAndSoftmaxScaleAreTransformers) {
  // The tiny release values (../shared/models/MANIFEST.md): 16 rope dims, factor 40, original
  // 4096, beta 32/1, mscale = mscale_all_dim = 1.
  ModelConfig c = synthetic_config("deepseek_v3", {.qk_nope_head_dim = 32, .qk_rope_head_dim = 16});
  c.rope_scaling = {"yarn", 40.0, 4096, 32.0, 1.0, 1.0, 1.0, 0.0, true};
  const std::vector<double> want = {1.0, 0.316227766, 0.1, 0.0239147248, 0.005125, 0.000849862121,
                                    2.5e-05, 7.90569415e-06};
  const std::vector<double> got = rope_inv_freq(c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9 * want[i] + 1e-12) << i;
  EXPECT_DOUBLE_EQ(rope_attention_factor(c), 1.0);
  EXPECT_NEAR(mla_softmax_scale(c), 0.2704675577, 1e-9);
  c.rope_scaling.mscale = 0.5;  // attention factor = mscale(40, 0.5) / mscale(40, 1)
  EXPECT_NEAR(rope_attention_factor(c), (0.05 * std::log(40.0) + 1) / (0.1 * std::log(40.0) + 1), 1e-12);
}

// transformers' DeepseekV3TopkRouter + route_tokens_to_experts, transcribed: sigmoid, bias for
// selection only, group score = sum of the top-2 biased scores, top groups, masked top-k, weights
// from the unbiased scores.
void reference_route(const std::vector<float>& logits, const std::vector<float>& bias,
                     const MoeConfig& m, std::vector<int32_t>* idx, std::vector<float>* w) {
  const int64_t E = m.n_experts, per = E / m.n_group;
  std::vector<float> s(static_cast<size_t>(E)), b(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    s[static_cast<size_t>(e)] = 1.0f / (1.0f + std::exp(-logits[static_cast<size_t>(e)]));
    b[static_cast<size_t>(e)] = s[static_cast<size_t>(e)] + bias[static_cast<size_t>(e)];
  }
  std::vector<std::pair<float, int64_t>> groups;
  for (int64_t g = 0; g < m.n_group; ++g) {
    std::vector<float> v(b.begin() + g * per, b.begin() + (g + 1) * per);
    std::sort(v.rbegin(), v.rend());
    groups.push_back({v[0] + v[1], g});
  }
  std::sort(groups.begin(), groups.end(), [](auto x, auto y) { return x.first > y.first; });
  std::vector<float> masked(static_cast<size_t>(E), -std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < m.topk_group; ++i)
    for (int64_t e = groups[static_cast<size_t>(i)].second * per; e < (groups[static_cast<size_t>(i)].second + 1) * per; ++e)
      masked[static_cast<size_t>(e)] = b[static_cast<size_t>(e)];
  std::vector<int64_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return masked[static_cast<size_t>(x)] > masked[static_cast<size_t>(y)];
  });
  double sum = 0;
  idx->clear();
  w->clear();
  for (int64_t k = 0; k < m.n_experts_per_tok; ++k) {
    idx->push_back(static_cast<int32_t>(order[static_cast<size_t>(k)]));
    w->push_back(s[static_cast<size_t>(order[static_cast<size_t>(k)])]);
    sum += w->back();
  }
  for (auto& x : *w) x = static_cast<float>(x / (sum + 1e-20) * m.routed_scaling_factor);
}

TEST(Moe, RouterFollowsNoauxTc) {
  MoeConfig m;
  m.n_experts = 16;
  m.n_experts_per_tok = 4;
  m.n_group = 4;
  m.topk_group = 2;
  m.norm_topk_prob = true;
  m.routed_scaling_factor = 2.5;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.5f);
  int64_t outside_best_groups = 0;
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<float> logits(16), bias(16);
    for (auto& x : logits) x = nd(rng);
    for (auto& x : bias) x = 0.3f * nd(rng);
    std::vector<int32_t> want_idx;
    std::vector<float> want_w;
    reference_route(logits, bias, m, &want_idx, &want_w);
    int32_t got_idx[4];
    float got_w[4];
    route_row(logits.data(), bias.data(), m, got_idx, got_w);
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(got_idx[k], want_idx[static_cast<size_t>(k)]);
      EXPECT_NEAR(got_w[k], want_w[static_cast<size_t>(k)], 1e-6);
    }
    // The group limit matters: the plain top-4 by biased score differs in some trials.
    std::vector<int64_t> order(16);
    std::iota(order.begin(), order.end(), 0);
    auto biased = [&](int64_t e) { return 1.0f / (1.0f + std::exp(-logits[static_cast<size_t>(e)])) + bias[static_cast<size_t>(e)]; };
    std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return biased(x) > biased(y); });
    for (int k = 0; k < 4; ++k)
      if (std::find(got_idx, got_idx + 4, order[static_cast<size_t>(k)]) == got_idx + 4) {
        ++outside_best_groups;
        break;
      }
  }
  EXPECT_GT(outside_best_groups, 0);
}

TEST(Moe, GatheredFfnEqualsPerTokenLoop) {
  const ModelConfig c = deepseek(true);
  const WeightStore ws = make_synthetic_model(c, 9);
  const BlockWeights bw = BlockWeights::load(ws, 1);  // a MoE layer
  ASSERT_TRUE(bw.is_moe());
  const int64_t rows = 57, d = c.d_model;
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  std::vector<float> xn(static_cast<size_t>(rows * d));
  for (auto& x : xn) x = nd(rng);
  std::vector<float> h(static_cast<size_t>(rows * d), 0.0f);
  ffn_moe(bw, c, xn.data(), h.data(), rows, nullptr);
  // Token by token: route, run each selected expert on the single row, weight, add the shared one.
  const Routing r = moe_route(bw, c, xn.data(), rows, nullptr);
  double worst = 0;
  for (int64_t t = 0; t < rows; ++t) {
    std::vector<float> y(static_cast<size_t>(d), 0.0f), tmp(static_cast<size_t>(d));
    swiglu(bw.lin(names::kFfnGateShexp), bw.lin(names::kFfnUpShexp), bw.lin(names::kFfnDownShexp),
           xn.data() + t * d, 1, y.data(), nullptr, 1, "", "", "");
    for (int64_t k = 0; k < c.moe.n_experts_per_tok; ++k) {
      const int32_t e = r.experts[static_cast<size_t>(t * c.moe.n_experts_per_tok + k)];
      const ExpertHandle x = bw.expert(e);
      swiglu(x->gate, x->up, x->down, xn.data() + t * d, 1, tmp.data(), nullptr, 1, "", "", "");
      for (int64_t j = 0; j < d; ++j)
        y[static_cast<size_t>(j)] += r.weights[static_cast<size_t>(t * c.moe.n_experts_per_tok + k)] * tmp[static_cast<size_t>(j)];
    }
    for (int64_t j = 0; j < d; ++j)
      worst = std::max(worst, std::fabs(double(y[static_cast<size_t>(j)]) - h[static_cast<size_t>(t * d + j)]));
  }
  EXPECT_LE(worst, 1e-5);
  // Every expert served some row, and each row went to exactly K experts.
  int64_t served = 0;
  for (int64_t e = 0; e < c.moe.n_experts; ++e) served += r.count(e) > 0;
  EXPECT_GE(served, 3);
  EXPECT_EQ(r.offsets.back(), rows * c.moe.n_experts_per_tok);
}

TEST(Moe, StreamedExpertsGiveTheSameBlockOutput) {
  const ModelConfig c = deepseek(true);
  const WeightStore ws = make_synthetic_model(c, 10);
  const BlockWeights resident = BlockWeights::load(ws, 2);
  const BlockWeights streamed = BlockWeights::load(ws, 2, {.f32 = true, .stream_experts = true});
  for (int64_t e = 0; e < c.moe.n_experts; ++e) EXPECT_EQ(streamed.linear(expert_name(names::kFfnUpExps, e)), nullptr);
  const int64_t T = 20;
  std::vector<float> a(static_cast<size_t>(2 * T * c.d_model)), b;
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  for (auto& x : a) x = nd(rng);
  b = a;
  block_forward(resident, c, a.data(), 2, T);
  block_forward(streamed, c, b.data(), 2, T);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace dsq::model
