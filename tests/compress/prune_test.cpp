// Structured pruning on synthetic models: a pruned model must compute what the unpruned model
// computes with the removed structures' weights zeroed (slicing, renumbering and the q -> kv
// mapping are then right), block dropping must pick an identity block first, and bias
// compensation must cancel the mean error of the removed channels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "lib/compress/prune.h"
#include "lib/core/error.h"
#include "lib/model/model.h"
#include "lib/core/synthetic.h"
#include "lib/quant/rtn.h"

namespace dsq::compress {
namespace {

using model::Model;

std::vector<int32_t> tokens(int64_t n, int64_t vocab, int64_t salt = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + salt * 11 + 5) % vocab);
  return t;
}

ModelConfig config4() {
  ModelConfig c = tiny_llama_config();
  c.n_layers = 4;
  return c;
}

// Calibration statistics of `ws` on two windows of 48 tokens.
PruneStats collect(const WeightStore& ws) {
  const Model m = Model::load(ws);
  PruneStatsObserver obs(arch_of(ws.config), ws.config.n_layers);
  for (int64_t s = 0; s < 2; ++s) m.forward(tokens(48, ws.config.vocab_size, s), 1, 48, &obs);
  return obs.take();
}

std::vector<float> logits(const WeightStore& ws) {
  return Model::load(ws).forward(tokens(40, ws.config.vocab_size, 7), 1, 40);
}

// Zeroes rows (axis 0) or columns (axis 1) of tensor `name` in place.
void zero(WeightStore& ws, const std::string& name, const std::vector<int64_t>& idx, int axis) {
  Tensor t = ws.get_f32(name).clone();
  float* p = t.mutable_data<float>();
  const int64_t cols = t.ndim() > 1 ? t.dim(1) : 1;
  for (int64_t i : idx) {
    if (axis == 0)
      for (int64_t c = 0; c < cols; ++c) p[i * cols + c] = 0.0f;
    else
      for (int64_t r = 0; r < t.dim(0); ++r) p[r * cols + i] = 0.0f;
  }
  ws.replace(name, t);
}

std::string blk(int64_t l, const char* s) { return "blk." + std::to_string(l) + "." + s; }

void expect_close(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  ASSERT_GT(scale, 0.1);
  // Only summation order differs (fewer zero terms): f32 rounding, d_model-sized dot products.
  EXPECT_LE(worst, 1e-5 * scale) << "max |pruned - zeroed| over " << want.size() << " logits";
}

TEST(PruneFfn, MatchesZeroedChannelsForBothImportances) {
  const WeightStore ws = make_synthetic_model(config4(), 3);
  const PruneStats stats = collect(ws);
  for (Importance imp : {Importance::kMagnitude, Importance::kActivation}) {
    PruneOptions o;
    o.ffn_ratio = 0.25;
    o.importance = imp;
    const PruneResult r = prune_weights(ws, o, &stats);
    ASSERT_EQ(r.store.config.d_ff, 72);  // 96 - round(0.25 * 96)
    EXPECT_TRUE(r.store.config.layers.empty());
    EXPECT_EQ(r.store.entry("blk.2.ffn_down.weight").shape, (Shape{64, 72}));
    EXPECT_EQ(r.params_before - r.params_after, 4 * 24 * 3 * 64);
    WeightStore zeroed = make_synthetic_model(config4(), 3);
    for (const auto& lr : r.layers) {
      ASSERT_EQ(lr.ffn_removed, 24);
      // Recover the removed channels: those of the source whose gate rows are not in the output.
      const Tensor src_gate = ws.get_f32(blk(lr.source_layer, "ffn_gate.weight"));
      const Tensor out_gate = r.store.get_f32(blk(lr.layer, "ffn_gate.weight"));
      std::vector<int64_t> removed;
      int64_t k = 0;
      for (int64_t ch = 0; ch < 96; ++ch) {
        if (k < 72 && src_gate.data<float>()[ch * 64] == out_gate.data<float>()[k * 64]) ++k;
        else removed.push_back(ch);
      }
      ASSERT_EQ(removed.size(), 24u);
      zero(zeroed, blk(lr.source_layer, "ffn_gate.weight"), removed, 0);
    }
    expect_close(logits(r.store), logits(zeroed));
  }
}

TEST(PruneFfn, ImportanceKindsChooseDifferentChannels) {
  const WeightStore ws = make_synthetic_model(config4(), 3);
  const PruneStats stats = collect(ws);
  PruneOptions o;
  o.ffn_ratio = 0.25;
  o.importance = Importance::kMagnitude;
  const Tensor mag = prune_weights(ws, o, &stats).store.get_f32("blk.1.ffn_up.weight");
  o.importance = Importance::kActivation;
  const Tensor act = prune_weights(ws, o, &stats).store.get_f32("blk.1.ffn_up.weight");
  EXPECT_NE(0, std::memcmp(mag.bytes(), act.bytes(), mag.nbytes()));
}

// Head pruning in both GQA modes equals zeroing the removed heads' attn_output columns.
void check_heads(HeadMode mode, double ratio, int64_t want_heads, int64_t want_kv) {
  const WeightStore ws = make_synthetic_model(config4(), 5);
  const PruneStats stats = collect(ws);
  PruneOptions o;
  o.head_ratio = ratio;
  o.head_mode = mode;
  const PruneResult r = prune_weights(ws, o, &stats);
  EXPECT_EQ(r.store.config.n_heads, want_heads);
  EXPECT_EQ(r.store.config.n_kv_heads, want_kv);
  WeightStore zeroed = make_synthetic_model(config4(), 5);
  for (const auto& lr : r.layers) {
    ASSERT_EQ(static_cast<int64_t>(lr.removed_heads.size()), 4 - want_heads);
    ASSERT_EQ(static_cast<int64_t>(lr.removed_kv_heads.size()), 2 - want_kv);
    std::vector<int64_t> cols;
    for (int64_t h : lr.removed_heads)
      for (int64_t i = 0; i < 16; ++i) cols.push_back(h * 16 + i);
    zero(zeroed, blk(lr.source_layer, "attn_output.weight"), cols, 1);
  }
  expect_close(logits(r.store), logits(zeroed));
}

TEST(PruneHeads, KvGroupsKeepsTheQToKvMapping) { check_heads(HeadMode::kKvGroups, 0.5, 2, 1); }
TEST(PruneHeads, PerGroupKeepsEveryKvHead) { check_heads(HeadMode::kPerGroup, 0.5, 2, 2); }

TEST(PruneGlobal, NonUniformWidthsValidateAndRun) {
  const WeightStore ws = make_synthetic_model(config4(), 9);
  const PruneStats stats = collect(ws);
  PruneOptions o;
  o.ffn_ratio = 0.3;
  o.head_ratio = 0.5;
  o.uniform = false;
  const PruneResult r = prune_weights(ws, o, &stats);
  const ModelConfig& c = r.store.config;
  ASSERT_EQ(c.layers.size(), 4u);
  int64_t total = 0;
  bool differ = false;
  for (int64_t l = 0; l < 4; ++l) {
    total += c.layer(l).d_ff;
    differ |= c.layer(l).d_ff != c.layer(0).d_ff || c.layer(l).n_heads != c.layer(0).n_heads;
  }
  EXPECT_EQ(total, 4 * 96 - std::llround(0.3 * 4 * 96));
  EXPECT_TRUE(differ) << "global ranking gave uniform widths";
  EXPECT_EQ(c.d_ff, std::max({c.layer(0).d_ff, c.layer(1).d_ff, c.layer(2).d_ff, c.layer(3).d_ff}));
  validate_against_config(r.store, "test");
  EXPECT_EQ(logits(r.store).size(), 40u * 128u);
}

TEST(PruneLayers, IdentityBlockIsDroppedFirstAndNamesAreRenumbered) {
  WeightStore ws = make_synthetic_model(config4(), 11);
  std::vector<int64_t> all(64);
  for (int64_t i = 0; i < 64; ++i) all[static_cast<size_t>(i)] = i;
  zero(ws, "blk.1.attn_output.weight", all, 0);
  zero(ws, "blk.1.ffn_down.weight", all, 0);
  const PruneStats stats = collect(ws);
  EXPECT_EQ(stats.influence(1), 0.0);  // h_out == h_in exactly
  for (int64_t l : {0, 2, 3}) EXPECT_GT(stats.influence(l), 0.0);
  PruneOptions o;
  o.drop_layers = 1;
  const PruneResult r = prune_weights(ws, o, &stats);
  EXPECT_EQ(r.store.config.n_layers, 3);
  EXPECT_EQ(r.layers[1].layer, -1);
  EXPECT_EQ(r.layers[2].layer, 1);
  EXPECT_FALSE(r.store.has("blk.3.attn_q.weight"));
  const Tensor a = ws.get_f32("blk.2.ffn_up.weight"), b = r.store.get_f32("blk.1.ffn_up.weight");
  EXPECT_EQ(0, std::memcmp(a.bytes(), b.bytes(), a.nbytes()));
  EXPECT_EQ(logits(r.store), logits(ws));  // an identity block: bit-identical output
}

TEST(PruneBias, CompensationCancelsTheMeanErrorOfRemovedChannels) {
  const WeightStore ws = make_synthetic_model(config4(), 13);
  const PruneStats stats = collect(ws);
  PruneOptions o;
  o.ffn_ratio = 0.25;
  o.head_ratio = 0.5;
  o.bias_compensation = true;
  const PruneResult r = prune_weights(ws, o, &stats);
  for (const auto& lr : r.layers) {
    EXPECT_TRUE(lr.bias_added);
    const auto l = lr.source_layer;
    // bias = W[:, removed] * mean(X[removed]), checked on one output row directly.
    const Tensor down = ws.get_f32(blk(l, "ffn_down.weight"));
    const Tensor bias = r.store.get_f32(blk(lr.layer, "ffn_down.bias"));
    ASSERT_EQ(bias.shape(), (Shape{64}));
    const ChannelStats& x = stats.ffn_out[static_cast<size_t>(l)];
    // Removed channels: magnitude of the FLAP score is smallest; recover them from the kept ones
    // by the column count, then compare the full-minus-kept mean output with the bias.
    const Tensor kept = r.store.get_f32(blk(lr.layer, "ffn_down.weight"));
    for (int64_t row : {0, 17, 63}) {
      double full = 0.0, part = 0.0;
      for (int64_t j = 0; j < 96; ++j) full += down.data<float>()[row * 96 + j] * x.mean(j);
      // Kept columns appear in source order; match them to source columns by value.
      int64_t k = 0;
      for (int64_t j = 0; j < 96 && k < 72; ++j)
        if (down.data<float>()[row * 96 + j] == kept.data<float>()[row * 72 + k]) {
          part += kept.data<float>()[row * 72 + k] * x.mean(j);
          ++k;
        }
      ASSERT_EQ(k, 72);
      EXPECT_NEAR(bias.data<float>()[row], full - part, 1e-5 * (1.0 + std::fabs(full)));
    }
    EXPECT_EQ(r.store.entry(blk(lr.layer, "attn_output.bias")).shape, (Shape{64}));
    EXPECT_EQ(r.store.config.layer(lr.layer).d_ff, 72);
  }
  validate_against_config(r.store, "test");
}

TEST(PruneErrors, BadRatiosMissingStatsAndQuantizedInputs) {
  const WeightStore ws = make_synthetic_model(config4(), 1);
  PruneOptions o;
  o.ffn_ratio = 1.0;
  EXPECT_THROW(prune_weights(ws, o, nullptr), UsageError);
  o.ffn_ratio = 0.2;  // activation importance without statistics
  EXPECT_THROW(prune_weights(ws, o, nullptr), UsageError);
  o.importance = Importance::kMagnitude;
  EXPECT_NO_THROW(prune_weights(ws, o, nullptr));
  o.drop_layers = 4;
  EXPECT_THROW(prune_weights(ws, o, nullptr), UsageError);
  EXPECT_THROW(parse_importance("wanda"), UsageError);
  EXPECT_EQ(parse_head_mode("per-group"), HeadMode::kPerGroup);
  WeightStore q = make_synthetic_model(config4(), 1);
  q.replace("blk.0.ffn_up.weight",
            quant::quantize_tensor_rtn(q.get_f32("blk.0.ffn_up.weight"), QuantDesc{4, 32, false}));
  o.drop_layers = 0;
  try {
    prune_weights(q, o, nullptr);
    ADD_FAILURE() << "pruned a quantized model";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.ffn_up.weight' is qint"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace dsq::compress
