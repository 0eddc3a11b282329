// Thresholded linears (TEAL-style activation sparsity): Linear::forward zeroes |x| <= t on every
// path (single-token sparse kernel, batched GEMM, quantized), Linear::load takes the threshold
// from the weight's attrs, the incremental decoder agrees with the batched forward, and the
// SparsityMeter counts exactly the zeroed entries.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lib/core/error.h"
#include "lib/model/act_sparsity.h"
#include "lib/model/model.h"
#include "lib/model/sparse_gemv.h"
#include "lib/core/synthetic.h"
#include "lib/quant/rtn.h"

namespace dsq::model {
namespace {

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = scale * std::sin(0.7f * static_cast<float>(i) + 0.3f);
  return v;
}

TEST(ThresholdedLinear, EveryPathEqualsTheDenseLinearOnThresholdedInput) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 4);
  for (bool quantized : {false, true}) {
    Tensor w = ws.get_f32("blk.0.ffn_down.weight");  // [64, 96]
    if (quantized) w = quant::quantize_tensor_rtn(w, QuantDesc{8, 32, false});
    const Linear dense = Linear::from_tensors("w", w);
    Linear sparse = Linear::from_tensors("w", w);
    sparse.set_act_threshold(0.5f);
    for (int64_t m : {1, 3}) {
      const std::vector<float> x = ramp(m * 96, 1.0f);
      std::vector<float> xt(x.size());
      const int64_t nnz = threshold_activations(x.data(), m * 96, 0.5f, xt.data());
      ASSERT_GT(nnz, m * 96 / 4);
      ASSERT_LT(nnz, m * 96);
      std::vector<float> want(static_cast<size_t>(m * 64)), got(want.size());
      dense.forward(xt.data(), m, want.data());
      sparse.forward(x.data(), m, got.data());
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i]))) << "m=" << m << " i=" << i;
    }
  }
}

TEST(ThresholdedLinear, LoadReadsTheAttrAndRejectsBadValues) {
  WeightStore ws = make_synthetic_model(tiny_llama_config(), 4);
  ws.entry("blk.1.attn_output.weight").attrs["act_threshold"] = 0.25;
  const Model m = Model::load(ws);
  EXPECT_FLOAT_EQ(m.block(1).lin("attn_output").act_threshold(), 0.25f);
  EXPECT_EQ(m.block(1).lin("attn_q").act_threshold(), 0.0f);
  ws.entry("blk.1.attn_output.weight").attrs["act_threshold"] = -1.0;
  EXPECT_THROW(Model::load(ws), FormatError);
  ws.entry("blk.1.attn_output.weight").attrs["act_threshold"] = "big";
  EXPECT_THROW(Model::load(ws), FormatError);
}

// Keeps the inputs of every linear of the last forward.
struct InputRecorder : Observer {
  std::vector<std::pair<std::string, std::vector<float>>> inputs;
  void on_linear_input(int64_t layer, std::string_view name, ActView x) override {
    if (layer >= 0)
      inputs.emplace_back(std::to_string(layer) + "." + std::string(name),
                          std::vector<float>(x.data, x.data + x.rows * x.cols));
  }
};

TEST(SparsityMeter, CountsTheZeroedEntriesAndDecodeMatchesForward) {
  WeightStore ws = make_synthetic_model(tiny_llama_config(), 6);
  for (int64_t l = 0; l < 2; ++l)
    for (const char* s : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      ws.entry(linear_name(l, s)).attrs["act_threshold"] = s[0] == 'a' ? 0.3 : 0.05;
  const Model m = Model::load(ws);
  std::vector<int32_t> toks;
  for (int32_t i = 0; i < 24; ++i) toks.push_back((i * 29 + 3) % 128);
  InputRecorder rec;
  SparsityMeter meter(m, &rec);
  ASSERT_TRUE(meter.active());
  const std::vector<float> full = m.forward(toks, 1, 24, &meter);
  ASSERT_EQ(meter.result().size(), 14u);
  ASSERT_EQ(rec.inputs.size(), 14u);  // chained observer saw every call
  for (size_t k = 0; k < 14; ++k) {
    const LinearSparsity& e = meter.result()[k];
    const auto& x = rec.inputs[k].second;
    EXPECT_EQ(rec.inputs[k].first, std::to_string(e.layer) + "." + e.name);
    int64_t zeros = 0;
    for (float v : x) zeros += std::fabs(v) <= e.threshold;
    EXPECT_EQ(e.zeros, zeros);
    EXPECT_EQ(e.total, static_cast<int64_t>(x.size()));
    EXPECT_GT(e.sparsity(), 0.0);
    EXPECT_LT(e.sparsity(), 1.0);
  }
  // Token-by-token decoding (m == 1: the sparse W^T kernel) gives the batched logits.
  KVCache cache = m.new_cache(24);
  std::vector<float> last;
  for (int32_t t : toks) last = m.decode(std::span<const int32_t>(&t, 1), cache);
  const float* want = full.data() + 23 * 128;
  for (int64_t i = 0; i < 128; ++i) ASSERT_NEAR(last[static_cast<size_t>(i)], want[i], 1e-4) << i;
}

}  // namespace
}  // namespace dsq::model
