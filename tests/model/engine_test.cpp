#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "lib/core/dtype.h"
#include "lib/core/error.h"
#include "lib/core/parallel.h"
#include "lib/core/quant_layout.h"
#include "lib/model/block.h"
#include "lib/model/model.h"
#include "lib/core/synthetic.h"
#include "tests/model/naive_reference.h"

namespace dsq::model {
namespace {

std::vector<int32_t> ramp_tokens(int64_t n, int64_t vocab, int64_t salt = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + salt * 11 + 5) % vocab);
  return t;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// f32 engine vs f64 reference: each of the n_layers+1 residual updates adds rounding of relative
// size ~ FLT_EPSILON * sqrt(fan_in) (pairwise-ish accumulation); allow 16x that on the largest
// logit magnitude.
double logit_tolerance(const ModelConfig& c, double logit_scale) {
  int64_t fan_in = c.d_model;
  for (int64_t l = 0; l < c.n_layers; ++l)
    fan_in = std::max({fan_in, c.layer(l).d_ff, c.layer(l).n_heads * c.head_dim});
  return 16.0 * FLT_EPSILON * std::sqrt(static_cast<double>(fan_in)) *
         static_cast<double>(c.n_layers + 1) * std::max(1.0, logit_scale);
}

void expect_matches_naive(const WeightStore& ws, int64_t T) {
  const Model m = Model::load(ws);
  const auto toks = ramp_tokens(T, ws.config.vocab_size);
  const auto got = m.forward(toks, 1, T);
  const auto want = dsq::testing::naive_forward(ws, toks);
  ASSERT_EQ(got.size(), want.size());
  const double tol = logit_tolerance(ws.config, max_abs(want));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LE(worst, tol) << "max |engine - naive| over " << want.size() << " logits";
  EXPECT_GT(max_abs(want), 0.5);  // the comparison is not between near-zero vectors
}

TEST(Engine, MatchesNaiveReferenceLlama) {
  expect_matches_naive(make_synthetic_model(tiny_llama_config(), 1), 37);
}

// Qwen3: per-head q/k norms and a head_dim that is not d_model / n_heads (4 heads of 24 on a
// d_model of 64, as qwen3-tiny's 4 heads of 96 on 256).
TEST(Engine, MatchesNaiveReferenceQwen3WithHeadNorms) {
  const ModelConfig c = synthetic_config("qwen3", {.n_layers = 2, .d_model = 64, .n_heads = 4,
                                                   .n_kv_heads = 2, .head_dim = 24, .d_ff = 96});
  WeightStore ws = make_synthetic_model(c, 21);
  expect_matches_naive(ws, 33);
  // The norms are really applied: a different q norm changes the logits.
  const auto toks = ramp_tokens(16, c.vocab_size);
  const auto before = Model::load(ws).forward(toks, 1, 16);
  Tensor qn = ws.get_f32("blk.1.attn_q_norm.weight").clone();
  qn.mutable_data<float>()[3] *= 3.0f;
  ws.replace("blk.1.attn_q_norm.weight", qn);
  const auto after = Model::load(ws).forward(toks, 1, 16);
  double moved = 0;
  for (size_t i = 0; i < before.size(); ++i) moved = std::max(moved, double(std::fabs(before[i] - after[i])));
  EXPECT_GT(moved, 1e-3);
}

TEST(Engine, MatchesNaiveReferenceQwen2WithBiases) {
  ModelConfig c = synthetic_config("qwen2");
  c.rope_theta = 1e6;
  c.tied_embeddings = true;
  expect_matches_naive(make_synthetic_model(c, 2), 29);
}

TEST(Engine, MatchesNaiveReferenceNonUniformWidths) {
  ModelConfig c = tiny_llama_config();
  c.n_layers = 4;
  // Pruned-style widths: fewer heads, a whole attention removed, an FFN removed.
  c.layers = {{4, 2, 96}, {2, 1, 40}, {0, 0, 64}, {2, 2, 0}};
  WeightStore ws = make_synthetic_model(c, 3);
  expect_matches_naive(ws, 21);
  // Bias compensation of pruned channels: output biases, also on fully removed sub-blocks.
  std::vector<float> b(64);
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
  for (const char* n : {"blk.1.attn_output.bias", "blk.2.attn_output.bias", "blk.0.ffn_down.bias",
                        "blk.3.ffn_down.bias"})
    ws.add_tensor(n, Tensor::from_f32({64}, b));
  expect_matches_naive(ws, 21);
}

TEST(Engine, BatchedEqualsOneWindowAtATime) {
  const ModelConfig c = tiny_llama_config();
  const Model m = Model::load(make_synthetic_model(c, 4));
  const int64_t B = 3, T = 150;  // T spans two attention query chunks
  std::vector<int32_t> all;
  for (int64_t b = 0; b < B; ++b) {
    const auto w = ramp_tokens(T, c.vocab_size, b);
    all.insert(all.end(), w.begin(), w.end());
  }
  const auto batched = m.forward(all, B, T);
  double scale = 0;
  for (float x : batched) scale = std::max(scale, static_cast<double>(std::fabs(x)));
  for (int64_t b = 0; b < B; ++b) {
    const std::span<const int32_t> win(all.data() + b * T, static_cast<size_t>(T));
    const auto one = m.forward(win, 1, T);
    for (int64_t i = 0; i < T * c.vocab_size; ++i)
      ASSERT_NEAR(batched[static_cast<size_t>(b * T * c.vocab_size + i)], one[static_cast<size_t>(i)],
                  logit_tolerance(c, scale))
          << "window " << b << " element " << i;
  }
}

TEST(Engine, KvCacheDecodeMatchesFullForward) {
  const ModelConfig c = synthetic_config("qwen2");
  const Model m = Model::load(make_synthetic_model(c, 5));
  const int64_t T = 40;
  const auto toks = ramp_tokens(T, c.vocab_size);
  const auto full = m.forward(toks, 1, T);
  double scale = 0;
  for (float x : full) scale = std::max(scale, static_cast<double>(std::fabs(x)));
  KVCache cache = m.new_cache(T);
  // A multi-token prefill, then one token at a time.
  const int64_t prefill = 7;
  auto check = [&](const std::vector<float>& logits, int64_t pos) {
    for (int64_t j = 0; j < c.vocab_size; ++j)
      ASSERT_NEAR(logits[static_cast<size_t>(j)], full[static_cast<size_t>(pos * c.vocab_size + j)],
                  logit_tolerance(c, scale))
          << "position " << pos << " id " << j;
  };
  check(m.decode(std::span<const int32_t>(toks.data(), prefill), cache), prefill - 1);
  for (int64_t t = prefill; t < T; ++t)
    check(m.decode(std::span<const int32_t>(toks.data() + t, 1), cache), t);
  EXPECT_EQ(cache.len, T);
  EXPECT_THROW(m.decode(std::span<const int32_t>(toks.data(), 1), cache), UsageError);
}

// Large enough that every parallel path (GEMM tiles, attention heads, norms, RoPE, SwiGLU)
// passes its work threshold and really runs on 2 threads.
ModelConfig parallel_config() {
  ModelConfig c = tiny_llama_config();
  c.d_model = 256;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  c.d_ff = 688;
  return c;
}

// The same values as `half`, widened to f32 up front.
WeightStore widened(const WeightStore& half) {
  WeightStore wide;
  wide.config = half.config;
  wide.has_config = true;
  for (const auto& n : half.names()) wide.add_tensor(n, half.get(n).to(DType::kF32));
  return wide;
}

TEST(Engine, ThreadCountDoesNotChangeLogits) {
  ModelConfig c = parallel_config();
  c.vocab_size = 1100;
  c.max_ctx = 1024;
  const Model m = Model::load(make_synthetic_model(c, 6));
  const int64_t B = 2, T = 520;
  std::vector<int32_t> toks = ramp_tokens(B * T, c.vocab_size);
  const int before = num_threads();
  set_num_threads(1);
  const auto one = m.forward(toks, B, T);
  set_num_threads(2);
  const auto two = m.forward(toks, B, T);
  set_num_threads(before);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
}

TEST(Engine, HalfPrecisionWeightsAreConvertedExactly) {
  const ModelConfig c = tiny_llama_config();
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const WeightStore half = make_synthetic_model(c, 7, dt);
    const WeightStore wide = widened(half);
    const auto toks = ramp_tokens(33, c.vocab_size);
    const auto a = Model::load(half).forward(toks, 1, 33);
    const auto b = Model::load(wide).forward(toks, 1, 33);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << dtype_name(dt);
  }
}

// f16/bf16 weights are never widened as a whole (the engine's memory is the file plus
// activations): the linears and the embedding keep the store's bytes, the GEMM widens tiles and a
// single-token pass reads them through a fused dot, within f32 rounding of the widened model and
// bit-identical for any thread count.
TEST(Engine, HalfPrecisionWeightsStayInTheirStoredType) {
  const ModelConfig c = parallel_config();  // linears above the parallel threshold
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const WeightStore half = make_synthetic_model(c, 9, dt);
    const WeightStore wide = widened(half);
    const Model mh = Model::load(half), mw = Model::load(wide);
    const Tensor& w = mh.block(1).lin("ffn_up").weight();
    EXPECT_EQ(w.dtype(), dt);
    EXPECT_EQ(w.bytes(), half.get("blk.1.ffn_up.weight").bytes());
    EXPECT_EQ(mh.embedding().table.dtype(), dt);
    const auto prompt = ramp_tokens(9, c.vocab_size);
    auto decode_all = [&](const Model& m) {  // the prompt, then one id at a time
      KVCache cache = m.new_cache(16);
      std::vector<float> out = m.decode(std::span<const int32_t>(prompt.data(), 5), cache);
      for (size_t i = 5; i < prompt.size(); ++i) {
        const auto l = m.decode(std::span<const int32_t>(&prompt[i], 1), cache);
        out.insert(out.end(), l.begin(), l.end());
      }
      return out;
    };
    const int before = num_threads();
    set_num_threads(1);
    const auto one = decode_all(mh);
    set_num_threads(2);
    const auto two = decode_all(mh);
    set_num_threads(before);
    EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0) << dtype_name(dt);
    const auto ref = decode_all(mw);
    ASSERT_EQ(ref.size(), one.size());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(ref[i]) - one[i]));
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(ref[i])));
    }
    EXPECT_LT(max_diff, 1e-5 * max_abs) << dtype_name(dt);
    EXPECT_GT(max_abs, 0.0);
  }
}

TEST(Engine, F32WeightsAreBorrowedNotCopied) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 8);
  const Model m = Model::load(ws);
  EXPECT_EQ(m.block(1).lin("ffn_up").weight().data<float>(), ws.get("blk.1.ffn_up.weight").data<float>());
  EXPECT_EQ(m.head().classifier.weight().data<float>(), ws.get("output.weight").data<float>());
}

// Records the order of hooks and checks the shapes they see.
class TraceObserver : public Observer {
 public:
  std::vector<std::string> events;
  void on_linear_input(int64_t l, std::string_view n, ActView x) override {
    events.push_back(std::to_string(l) + ":" + std::string(n) + ":in:" + std::to_string(x.rows) + "x" + std::to_string(x.cols));
  }
  void on_linear_output(int64_t l, std::string_view n, ActView y) override {
    events.push_back(std::to_string(l) + ":" + std::string(n) + ":out:" + std::to_string(y.cols));
  }
  void on_block_input(int64_t l, ActView) override { events.push_back("block_in:" + std::to_string(l)); }
  void on_block_output(int64_t l, ActView) override { events.push_back("block_out:" + std::to_string(l)); }
};

TEST(Engine, ObserverSeesEveryLinearInForwardOrder) {
  ModelConfig c = tiny_llama_config();
  c.layers = {{4, 2, 96}, {0, 0, 50}};
  const Model m = Model::load(make_synthetic_model(c, 9));
  TraceObserver obs;
  const auto toks = ramp_tokens(2 * 5, c.vocab_size);
  m.forward(toks, 2, 5, &obs);
  const std::vector<std::string> want = {
      "block_in:0",
      "0:attn_q:in:10x64", "0:attn_q:out:64", "0:attn_k:in:10x64", "0:attn_k:out:32",
      "0:attn_v:in:10x64", "0:attn_v:out:32", "0:attn_output:in:10x64", "0:attn_output:out:64",
      "0:ffn_gate:in:10x64", "0:ffn_gate:out:96", "0:ffn_up:in:10x64", "0:ffn_up:out:96",
      "0:ffn_down:in:10x96", "0:ffn_down:out:64",
      "block_out:0",
      "block_in:1",  // no attention in layer 1
      "1:ffn_gate:in:10x64", "1:ffn_gate:out:50", "1:ffn_up:in:10x64", "1:ffn_up:out:50",
      "1:ffn_down:in:10x50", "1:ffn_down:out:64",
      "block_out:1",
      "-1:output:in:10x64", "-1:output:out:128"};
  EXPECT_EQ(obs.events, want);
}

// The calibration pipeline's way: embed, one block at a time loaded on its own, head.
TEST(Engine, OneBlockAtATimeEqualsModelForward) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 10);
  const ModelConfig& c = ws.config;
  const int64_t B = 2, T = 24;
  const auto toks = ramp_tokens(B * T, c.vocab_size);
  std::vector<float> h(static_cast<size_t>(B * T * c.d_model));
  Embedding::load(ws).lookup(toks, h.data());
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const BlockWeights bw = BlockWeights::load(ws, l);
    block_forward(bw, c, h.data(), B, T);
  }
  std::vector<float> logits(static_cast<size_t>(B * T * c.vocab_size));
  Head::load(ws).forward(h.data(), B * T, logits.data());
  const auto want = Model::load(ws).forward(toks, B, T);
  EXPECT_EQ(std::memcmp(logits.data(), want.data(), want.size() * sizeof(float)), 0);
}

// Packs W with round-to-nearest asymmetric 4-bit groups of 32 (written here from the layout
// contract in quant_layout.h) and returns the packed tensor and its exact dequantisation.
std::pair<Tensor, Tensor> pack_q4(const Tensor& w) {
  const QuantDesc desc{4, 32, false};
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const QuantLayout L = quant_layout(desc, rows, cols);
  Tensor q(DType::kQInt, {rows, cols}, &desc);
  Tensor deq(DType::kF32, {rows, cols});
  std::byte* base = q.mutable_bytes();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < L.n_groups; ++g) {
      const int64_t c0 = g * L.group, c1 = std::min(cols, c0 + L.group);
      float lo = 0, hi = 0;
      for (int64_t c = c0; c < c1; ++c) lo = std::min(lo, w.data<float>()[r * cols + c]), hi = std::max(hi, w.data<float>()[r * cols + c]);
      const uint16_t sh = f32_to_f16((hi - lo) / 15.0f);
      const float s = f16_to_f32(sh);
      const int zero = s > 0 ? static_cast<int>(std::lround(-lo / s)) : 0;
      std::memcpy(base + L.scales_offset + static_cast<size_t>(r * L.n_groups + g) * 2, &sh, 2);
      base[L.zeros_offset + static_cast<size_t>(r * L.n_groups + g)] = static_cast<std::byte>(zero);
      for (int64_t c = c0; c < c1; ++c) {
        const float x = w.data<float>()[r * cols + c];
        const int code = std::clamp(s > 0 ? static_cast<int>(std::lround(x / s)) + zero : zero, 0, 15);
        quant_code_set(reinterpret_cast<uint8_t*>(base) + r * L.row_code_bytes, c, 4, static_cast<uint32_t>(code));
        deq.mutable_data<float>()[r * cols + c] = s * static_cast<float>(code - zero);
      }
    }
  return {q, deq};
}

TEST(Engine, QuantizedWeightsRunThroughQmatmul) {
  const ModelConfig c = tiny_llama_config();
  const WeightStore base = make_synthetic_model(c, 11);
  WeightStore qs, ds;  // quantized linears / their dequantised f32 values
  for (WeightStore* s : {&qs, &ds}) s->config = c, s->has_config = true;
  for (const auto& n : base.names()) {
    if (is_block_linear(c, n)) {
      auto [q, deq] = pack_q4(base.get(n));
      qs.add_tensor(n, q);
      ds.add_tensor(n, deq);
    } else {
      qs.add_tensor(n, base.get(n));
      ds.add_tensor(n, base.get(n));
    }
  }
  const Model mq = Model::load(qs);
  EXPECT_TRUE(mq.block(0).lin("attn_q").quantized());
  const auto toks = ramp_tokens(19, c.vocab_size);
  const auto a = mq.forward(toks, 1, 19);
  const auto b = Model::load(ds).forward(toks, 1, 19);
  double scale = 0, worst = 0, moved = 0;
  const auto orig = Model::load(base).forward(toks, 1, 19);
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    moved = std::max(moved, static_cast<double>(std::fabs(orig[i] - b[i])));
  }
  EXPECT_LE(worst, logit_tolerance(c, scale));
  EXPECT_GT(moved, 100 * worst);  // quantization itself changed the logits far more than that
}

// The calibration pipeline completes a sub-block from the inputs of its last linear, kept from the
// pass that collected them (add_residual_linear): that must add exactly what block_forward adds,
// for the attention of both kinds (GQA, MLA's dense layer 0) and the dense FFN.
class KeepInputs : public Observer {
 public:
  std::map<std::string, std::vector<float>, std::less<>> seen;
  void on_linear_input(int64_t, std::string_view name, ActView x) override {
    auto& v = seen[std::string(name)];
    v.insert(v.end(), x.data, x.data + x.rows * x.cols);
  }
};

TEST(Engine, SubBlocksFromKeptInputsEqualBlockForward) {
  ModelConfig mla = synthetic_config("deepseek_v3", {.n_layers = 2, .d_model = 48, .n_heads = 3});
  mla.max_ctx = 4096;
  for (const ModelConfig& c : {tiny_llama_config(), mla}) {
    SCOPED_TRACE(c.arch);
    const WeightStore ws = make_synthetic_model(c, 21);
    const int64_t B = 2, T = 20, rows = B * T;
    std::vector<float> h0(static_cast<size_t>(rows * c.d_model));
    Embedding::load(ws).lookup(ramp_tokens(rows, c.vocab_size), h0.data());
    const BlockWeights bw = BlockWeights::load(ws, 0);
    ASSERT_FALSE(bw.is_moe());
    KeepInputs kept;
    std::vector<float> full = h0;
    block_forward(bw, c, full.data(), B, T, &kept);
    std::vector<float> attn = h0;
    block_forward(bw, c, attn.data(), B, T, nullptr, nullptr, 0, BlockPart::kAttn);
    std::vector<float> h = h0;
    add_residual_linear(bw, c, names::kAttnOutput, kept.seen.at("attn_output").data(), h.data(),
                        rows, nullptr);
    EXPECT_EQ(std::memcmp(h.data(), attn.data(), h.size() * sizeof(float)), 0);
    add_residual_linear(bw, c, names::kFfnDown, kept.seen.at("ffn_down").data(), h.data(), rows,
                        nullptr);
    EXPECT_EQ(std::memcmp(h.data(), full.data(), h.size() * sizeof(float)), 0);
    EXPECT_NE(std::memcmp(h.data(), h0.data(), h.size() * sizeof(float)), 0);
  }
}

// softmax_causal_rows runs the first keys of a row in vector lanes and the last seen % 16 in
// scalar code: a score repeated in both parts must get the same bits, and every row is a
// distribution over exactly the keys it sees.
TEST(Engine, CausalSoftmaxLanesMatchTheScalarTail) {
  constexpr int64_t kRows = 40, kKeys = 64;
  std::vector<float> sc(kRows * kKeys);
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<int64_t>(state >> 40) % 20000) / 500.0f - 20.0f;
  };
  for (auto& v : sc) v = next();
  for (int64_t i = 0; i < kRows; ++i) {  // row i sees 17 + i keys: 16 in lanes, the rest scalar
    float* row = sc.data() + i * kKeys;
    for (int64_t j = 16; j < 17 + i && j < kKeys; ++j) row[j] = row[(j * 7 + i) % 16];
    if (i == 3) row[20] = -1000.0f;  // underflows to 0 in both parts
  }
  std::vector<float> out = sc;
  softmax_causal_rows(out.data(), kRows, kKeys, 16);
  for (int64_t i = 0; i < kRows; ++i) {
    const float* row = out.data() + i * kKeys;
    const int64_t seen = 17 + i;
    double sum = 0.0;
    for (int64_t j = 0; j < kKeys; ++j) {
      if (j >= seen) {
        EXPECT_EQ(row[j], 0.0f) << i << "," << j;
        continue;
      }
      sum += row[j];
      if (j >= 16) {
        EXPECT_EQ(row[j], row[(j * 7 + i) % 16]) << "row " << i << " key " << j;
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << i;
  }
  EXPECT_EQ(out[3 * kKeys + 20], 0.0f);
}

TEST(Engine, RejectsOutOfRangeTokensAndBadShapes) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 12);
  const Model m = Model::load(ws);
  std::vector<int32_t> toks = {1, 2, 128};
  try {
    m.forward(toks, 1, 3);
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 128 at position 2"), std::string::npos) << e.what();
  }
  WeightStore bad;
  bad.config = ws.config;
  bad.has_config = true;
  for (const auto& n : ws.names())
    bad.add_tensor(n, n == "blk.1.ffn_up.weight" ? Tensor(DType::kF32, {95, 64}) : ws.get(n), "m.safetensors");
  try {
    Model::load(bad);
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'m.safetensors': tensor 'blk.1.ffn_up.weight' has shape [95, 64]"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsq::model
