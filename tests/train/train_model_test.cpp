// The trainable model: its logits equal the inference engine's, its whole-model gradient matches
// finite differences in float64 (Llama, Qwen2 with biases, Qwen3 with per-head norms, a pruned
// layer, tied embeddings), and its float gradients are bit-identical for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lib/core/parallel.h"
#include "lib/core/quant_scheme.h"
#include "lib/core/quant_view.h"
#include "lib/core/synthetic.h"
#include "lib/model/model.h"
#include "lib/quant/rtn.h"
#include "lib/train/adamw.h"
#include "lib/train/loss.h"
#include "lib/train/train_model.h"

namespace dsq::train {
namespace {

SyntheticShape small_shape() {
  SyntheticShape s;
  s.n_layers = 2;
  s.d_model = 8;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 2;
  s.d_ff = 6;
  s.vocab = 11;
  s.max_ctx = 16;
  return s;
}

std::vector<int32_t> some_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

// Teacher rows from fixed random logits (top 4 of the vocabulary).
struct Targets {
  std::vector<int32_t> ids;
  std::vector<float> logp;
  std::vector<double> rest;
  int64_t k = 4;
};
Targets make_targets(int64_t rows, int64_t vocab, double tau) {
  Targets t;
  std::mt19937_64 rng(99);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  t.ids.resize(static_cast<size_t>(rows * t.k));
  t.logp.resize(t.ids.size());
  t.rest.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& x : logits) x = n(rng);
    teacher_topk(logits.data(), vocab, t.k, tau, t.ids.data() + r * t.k, t.logp.data() + r * t.k,
                 &t.rest[static_cast<size_t>(r)]);
  }
  return t;
}

// The mean loss over all rows, through forward_backward / forward_loss (the chunked head).
template <class T>
double model_loss(TrainModel<T>& m, const std::vector<int32_t>& ids, int64_t B, int64_t seq,
                  const Targets& tg, const LossSpec& spec, bool backward) {
  const int64_t rows = B * seq, vocab = m.config().vocab_size;
  auto loss = [&](int64_t row0, int64_t n, const T* logits, T* dl) {
    double s = 0;
    for (int64_t r = row0; r < row0 + n; ++r) {
      const TeacherRow row{tg.ids.data() + r * tg.k, tg.logp.data() + r * tg.k, tg.k,
                           tg.rest[static_cast<size_t>(r)]};
      s += distill_row<T>(logits + (r - row0) * vocab, vocab, row, spec,
                          dl ? dl + (r - row0) * vocab : nullptr, 1.0 / rows);
    }
    return s;
  };
  return (backward ? m.forward_backward(ids, B, seq, loss) : m.forward_loss(ids, B, seq, loss)) / rows;
}

void check_store_gradient(const WeightStore& ws, int64_t head_chunk = 0, bool tune_zeros = false) {
  const ModelConfig& c = ws.config;
  auto m = TrainModel<double>::from_store(ws, "synthetic", tune_zeros);
  m.set_head_chunk(head_chunk);
  m.set_round_scales(false);
  const int64_t B = 2, seq = 5;
  const auto ids = some_ids(B * seq, c.vocab_size, 3);
  const Targets tg = make_targets(B * seq, c.vocab_size, 1.5);
  const LossSpec spec{LossKind::kForwardKl, 1.5, 0.5};
  m.zero_grad();
  model_loss(m, ids, B, seq, tg, spec, true);
  std::mt19937_64 rng(5);
  int checked = 0;
  for (auto& p : m.params()) {
    if (!p.trainable) continue;
    // A few entries of every parameter tensor.
    for (int s = 0; s < 4; ++s) {
      const size_t i = static_cast<size_t>(rng() % p.w.size());
      const double keep = p.w[i], h = 1e-5;
      p.w[i] = keep + h;
      const double lp = model_loss(m, ids, B, seq, tg, spec, false);
      p.w[i] = keep - h;
      const double lm = model_loss(m, ids, B, seq, tg, spec, false);
      p.w[i] = keep;
      const double num = (lp - lm) / (2 * h);
      EXPECT_NEAR(p.g[i], num, 1e-7 * std::max(1.0, std::abs(num)))
          << c.arch << " " << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

void check_model_gradient(const ModelConfig& c, int64_t head_chunk = 0) {
  check_store_gradient(make_synthetic_model(c, 7), head_chunk);
}

// Two tensors of a synthetic Qwen2 quantized (int4 asymmetric, group 32: attn_q's 8 columns are
// one short group, ffn_down's 40 columns a full group and a ragged one of 8).
WeightStore quantized_store() {
  SyntheticShape s = small_shape();
  s.d_ff = 40;
  WeightStore ws = make_synthetic_model(synthetic_config("qwen2", s), 7);
  for (const char* name : {"blk.0.attn_q.weight", "blk.1.ffn_down.weight"})
    ws.replace(name, quant::quantize_tensor_rtn(ws.get_f32(name), make_quant_desc(4, 32, false)));
  return ws;
}

TEST(TrainModel, WholeModelGradientMatchesFiniteDifferences) {
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    check_model_gradient(synthetic_config(arch, small_shape()));
  }
}

TEST(TrainModel, PrunedLayerAndTiedEmbeddings) {
  ModelConfig c = synthetic_config("llama", small_shape());
  c.tied_embeddings = true;
  c.layers = {LayerDims{2, 1, 6}, LayerDims{4, 2, 3}};  // per-layer widths, as dsq prune writes
  check_model_gradient(c, 3);  // the classifier in chunks of 3 rows (10 rows: 3+3+3+1)
}

TEST(TrainModel, QuantizedStudentTrainsItsScalesNormsAndBiases) {
  const WeightStore ws = quantized_store();
  {
    auto m = TrainModel<double>::from_store(ws, "synthetic");
    ASSERT_TRUE(m.scale_tuning());
    int scales = 0;
    for (const auto& p : m.params()) {
      const bool quant_weight = p.name == "blk.0.attn_q.weight" || p.name == "blk.1.ffn_down.weight";
      if (p.name.ends_with(".scales")) {
        ++scales;
        EXPECT_TRUE(p.trainable);
      } else if (p.shape.size() == 2 || quant_weight) {
        EXPECT_FALSE(p.trainable) << p.name;  // float matrices and the codes stay
      } else {
        EXPECT_TRUE(p.trainable) << p.name;   // norms and biases
      }
    }
    EXPECT_EQ(scales, 2);
  }
  check_store_gradient(ws);  // the scales' gradients (through W = s (code - zero))
}

// A few AdamW steps of a quantized student on fixed ids and targets, its tensors stored back into
// ws, and a check that the engine reading ws computes the trainer's logits.
void tune_and_store(TrainModel<float>& m, WeightStore& ws, int steps, double lr) {
  const auto ids = some_ids(2 * 5, ws.config.vocab_size, 3);
  const Targets tg = make_targets(10, ws.config.vocab_size, 1.0);
  AdamWOptions o;
  o.lr = lr;
  AdamW opt(o, m.params());
  for (int i = 0; i < steps; ++i) {
    m.zero_grad();
    model_loss(m, ids, 2, 5, tg, LossSpec{}, true);
    opt.step(m.params());
  }
  m.store_into(ws);
  const model::Model em = model::Model::load(ws);
  std::vector<float> tl(static_cast<size_t>(10 * ws.config.vocab_size));
  m.forward(ids, 2, 5, tl.data());
  const std::vector<float> el = em.forward(ids, 2, 5);
  for (size_t i = 0; i < tl.size(); ++i) EXPECT_NEAR(tl[i], el[i], 1e-4);
}

// --tune-zeros: the asymmetric tensors' zero points are parameters too (their gradient through
// W = s (code - zero) checked by finite differences); after training, the codes are the same,
// some zeros moved by whole codes within [0, 15], and the engine reads the model the trainer ran.
TEST(TrainModel, ZeroTuningTrainsIntegerZeroPoints) {
  WeightStore ws = quantized_store();
  check_store_gradient(ws, 0, true);
  auto m = TrainModel<float>::from_store(ws, "synthetic", true);
  ASSERT_TRUE(m.zero_tuning());
  int zero_params = 0;
  for (const auto& p : m.params())
    if (p.name.ends_with(".zeros")) {
      ++zero_params;
      EXPECT_TRUE(p.trainable);
      EXPECT_EQ(p.lr_scale, kZeroLrScale);
    }
  EXPECT_EQ(zero_params, 2);
  const Tensor before = ws.get("blk.1.ffn_down.weight").clone();
  tune_and_store(m, ws, 4, 0.05);  // zeros move by up to kZeroLrScale x 0.05 = half a code per step
  const Tensor after = ws.get("blk.1.ffn_down.weight");
  const GroupedIntView a(before), b(after);
  int moved = 0;
  for (int64_t r = 0; r < a.L.rows; ++r) {
    for (int64_t c = 0; c < a.L.cols; ++c) EXPECT_EQ(a.code(r, c), b.code(r, c));
    for (int64_t g = 0; g < a.L.n_groups; ++g) {
      moved += a.zero(r, g) != b.zero(r, g);
      EXPECT_LE(b.zero(r, g), 15);
    }
  }
  EXPECT_GT(moved, 0);
  // Symmetric rows and f16-min rows (GGUF Q4_1's exact min) keep their zeros.
  WeightStore sym = quantized_store();
  const WeightStore fl = make_synthetic_model(sym.config, 7);
  sym.replace("blk.0.attn_q.weight",
              quant::quantize_tensor_rtn(fl.get_f32("blk.0.attn_q.weight"), make_quant_desc(4, 32, true)));
  sym.replace("blk.1.ffn_down.weight", quant::quantize_tensor_rtn(fl.get_f32("blk.1.ffn_down.weight"),
                                                                  QuantDesc(QuantScheme::kInt4AsymF, 32)));
  EXPECT_FALSE(TrainModel<float>::from_store(sym, "synthetic", true).zero_tuning());
}

TEST(TrainModel, ScaleTuningKeepsCodesAndZerosExactly) {
  WeightStore ws = quantized_store();
  auto m = TrainModel<float>::from_store(ws, "synthetic");
  const Tensor before = ws.get("blk.1.ffn_down.weight").clone();
  tune_and_store(m, ws, 3, 0.05);  // the engine reads the tuned model: its logits are the trainer's
  const Tensor after = ws.get("blk.1.ffn_down.weight");
  ASSERT_EQ(after.dtype(), DType::kQInt);
  const GroupedIntView a(before), b(after);
  int changed = 0;
  for (int64_t r = 0; r < after.dim(0); ++r) {
    for (int64_t c = 0; c < after.dim(1); ++c) EXPECT_EQ(a.code(r, c), b.code(r, c));
    for (int64_t g = 0; g < a.L.n_groups; ++g) {
      EXPECT_EQ(a.zero(r, g), b.zero(r, g));
      changed += a.scale_bits(r, g) != b.scale_bits(r, g);
    }
  }
  EXPECT_GT(changed, 0);
}

TEST(TrainModel, LogitsEqualTheInferenceEngine) {
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    SyntheticShape s = kTinyShape;
    const ModelConfig c = synthetic_config(arch, s);
    const WeightStore ws = make_synthetic_model(c, 11);
    auto tm = TrainModel<float>::from_store(ws, "synthetic");
    const model::Model em = model::Model::load(ws);
    const int64_t B = 2, seq = 33;
    const auto ids = some_ids(B * seq, c.vocab_size, 4);
    std::vector<float> a(static_cast<size_t>(B * seq * c.vocab_size));
    tm.forward(ids, B, seq, a.data());
    const std::vector<float> b = em.forward(ids, B, seq);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    EXPECT_LT(worst, 2e-4);
  }
}

TEST(TrainModel, GradientsAreBitIdenticalForAnyThreadCount) {
  const ModelConfig c = synthetic_config("qwen3", kTinyShape);
  const WeightStore ws = make_synthetic_model(c, 12);
  const int64_t B = 3, seq = 40;
  const auto ids = some_ids(B * seq, c.vocab_size, 6);
  const Targets tg = make_targets(B * seq, c.vocab_size, 1.0);
  const LossSpec spec;
  std::vector<std::vector<float>> grads[2];
  const int saved = num_threads();
  for (int run = 0; run < 2; ++run) {
    set_num_threads(run == 0 ? 1 : 2);
    auto m = TrainModel<float>::from_store(ws, "synthetic");
    m.zero_grad();
    model_loss(m, ids, B, seq, tg, spec, true);
    for (const auto& p : m.params()) grads[run].push_back(p.g);
  }
  set_num_threads(saved);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << i;
}

}  // namespace
}  // namespace dsq::train
