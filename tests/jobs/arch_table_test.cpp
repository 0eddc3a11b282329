// The architecture table is the single source of truth: this test loops over every row and every
// consumer of it (reader name maps, expected shapes, the engine, calibration groups, pruning,
// sparsify targets and thresholds, the quantize driver, inspect's breakdown) and checks each one
// sees exactly the tensors the row declares. A new row must pass it unchanged.
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/dsq/dsq_writer.h"
#include "formats/hf/reader_util.h"
#include "jobs/inspect.h"
#include "jobs/quantize.h"
#include "lib/compress/act_threshold.h"
#include "lib/compress/prune.h"
#include "lib/compress/prune_stats.h"
#include "lib/core/error.h"
#include "lib/core/synthetic.h"
#include "lib/model/model.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

std::vector<int32_t> ramp(int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 29 + 3) % vocab);
  return t;
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

class ArchRow : public ::testing::TestWithParam<const ArchInfo*> {};

TEST_P(ArchRow, RowIsConsistent) {
  const ArchInfo& a = *GetParam();
  // Groups partition the block linears; each linear's group reads its input width.
  std::multiset<std::string_view> grouped;
  for (const LinearGroup& g : a.linear_groups) {
    EXPECT_NE(g.channels, ChannelMap::kNone) << g.name;
    for (auto l : g.linears) grouped.insert(l);
  }
  std::multiset<std::string_view> linears;
  for (const ArchTensor* t : a.block_rows(TensorRole::kLinear)) linears.insert(t->short_name());
  EXPECT_EQ(grouped, linears);
  // Source names are unique in every input format and map back to their canonical names.
  const ModelConfig c = synthetic_config(a.name);
  for (const auto col : {formats::detail::NameColumn::kHf, formats::detail::NameColumn::kGguf}) {
    const auto map = formats::detail::source_name_map(a, c, col);
    size_t n = 0;
    for (const auto& t : a.tensors)
      if (!(col == formats::detail::NameColumn::kHf ? t.hf : t.gguf).empty())
        for_each_instance(t, c, [&](int64_t, int64_t) { ++n; });
    EXPECT_EQ(map.size(), n);
    for (const auto& [src, target] : map) EXPECT_TRUE(expected_shape(c, target.canonical)) << src;
  }
}

// Rows present in layer l of c, of a role, without the routed experts (which BlockWeights keeps
// apart).
size_t rows_in_layer(const ArchInfo& a, const ModelConfig& c, int64_t l, TensorRole role) {
  size_t n = 0;
  for (const ArchTensor* t : a.block_rows(role)) n += row_in_layer(*t, c, l) && !t->per_expert();
  return n;
}

TEST_P(ArchRow, EveryConsumerSeesTheRowsTensors) {
  const ArchInfo& a = *GetParam();
  const ModelConfig c = synthetic_config(a.name, {.n_layers = 3, .d_model = 64, .n_heads = 4,
                                                  .n_kv_heads = 2, .head_dim = 24, .d_ff = 96});
  const WeightStore ws = make_synthetic_model(c, 7);
  validate_against_config(ws, "synthetic");
  // Shapes and block linears come from the row.
  int64_t n_linears = 0;
  for (const auto& name : ws.names()) {
    EXPECT_EQ(expected_shape(c, name), ws.entry(name).shape) << name;
    const ArchTensor* row = find_tensor_row(c, name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(is_block_linear(c, name), row->per_layer() && row->role == TensorRole::kLinear);
    n_linears += is_block_linear(c, name);
  }
  int64_t want_linears = 0;
  for (const ArchTensor* t : a.block_rows(TensorRole::kLinear))
    for_each_instance(*t, c, [&](int64_t, int64_t) { ++want_linears; });
  EXPECT_EQ(n_linears, want_linears);

  // Engine: every linear and norm of the row is loaded; the forward pass is finite.
  const model::Model m = model::Model::load(ws);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    EXPECT_EQ(m.block(l).linears.size(), rows_in_layer(a, c, l, TensorRole::kLinear));
    EXPECT_EQ(m.block(l).norms.size(), rows_in_layer(a, c, l, TensorRole::kNorm));
    EXPECT_EQ(m.block(l).is_moe(), c.is_moe_layer(l));
    if (m.block(l).is_moe()) {
      for (int64_t e = 0; e < c.moe.n_experts; ++e)
        EXPECT_NE(m.block(l).linear(expert_name(names::kFfnDownExps, e)), nullptr);
    }
  }
  const auto toks = ramp(48, c.vocab_size);
  EXPECT_TRUE(all_finite(m.forward(toks, 2, 24)));
  const bool structured = a.attn == AttnKind::kGqa && a.ffn == FfnKind::kDense;

  // Calibration statistics and sparsify thresholds: every group, every linear. Rows outside the
  // GQA + dense-FFN families are refused by name (pruning DeepSeek is not supported yet).
  if (!structured) {
    EXPECT_THROW(compress::require_structured_support(c, "prune", "synthetic"), ConfigError);
    compress::PruneOptions po;
    po.ffn_ratio = 0.25;
    EXPECT_THROW(compress::prune_weights(ws, po, nullptr), ConfigError);
  }
  compress::PruneStatsObserver stats(a, c.n_layers);
  const std::vector<std::string> targets = compress::parse_sparsify_targets(a, "attn,ffn");
  EXPECT_EQ(targets.size(), a.linear_groups.size());
  compress::ThresholdObserver thr(c, targets);
  struct Both : model::Observer {
    model::Observer* a;
    model::Observer* b;
    void on_linear_input(int64_t l, std::string_view n, model::ActView x) override {
      a->on_linear_input(l, n, x), b->on_linear_input(l, n, x);
    }
    void on_block_input(int64_t l, model::ActView h) override { a->on_block_input(l, h); }
    void on_block_output(int64_t l, model::ActView h) override { a->on_block_output(l, h); }
  } both;
  both.a = &stats;
  both.b = &thr;
  if (structured) {
    m.forward(toks, 2, 24, &both);
    EXPECT_EQ(static_cast<int64_t>(thr.thresholds(0.5).size()), n_linears);

    // Pruning FFN channels and kv groups (activation importance, bias compensation) gives a valid,
    // smaller model of the same family that runs.
    compress::PruneOptions po;
    po.ffn_ratio = 0.25;
    po.head_ratio = 0.5;
    po.bias_compensation = true;
    const compress::PruneStats st = stats.take();
    const compress::PruneResult pr = compress::prune_weights(ws, po, &st);
    validate_against_config(pr.store, "pruned");
    EXPECT_EQ(pr.store.config.layer(0).d_ff, 72);
    EXPECT_EQ(pr.store.config.layer(0).n_kv_heads, 1);
    EXPECT_LT(pr.params_after, pr.params_before);
    EXPECT_TRUE(all_finite(model::Model::load(pr.store).forward(toks, 2, 24)));
  }

  // The quantize driver touches exactly the block linears; inspect's breakdown adds up.
  ::dsq::testing::TempDir dir;
  formats::DsqWriteOptions wo;
  wo.progress = false;
  formats::write_dsq(ws, dir.file("m.dsq"), wo);
  QuantizeOptions qo;
  qo.model_path = dir.file("m.dsq");
  qo.out_path = dir.file("q.dsq");
  qo.desc = QuantDesc{4, 32, false};
  qo.progress = false;
  const QuantizeReport qr = run_quantize(qo);
  int64_t quantized = 0;
  for (const auto& t : qr.tensors) quantized += t.quantized;
  EXPECT_EQ(quantized, n_linears);
  InspectOptions io;
  io.path = qo.out_path;
  const nlohmann::json j = run_inspect(io);
  const auto& b = j["parameter_breakdown"];
  EXPECT_EQ(b["embedding"].get<int64_t>() + b["attention"].get<int64_t>() + b["ffn"].get<int64_t>() +
                b["head"].get<int64_t>(),
            j["parameters"].get<int64_t>());
  EXPECT_EQ(b["block_linears"].get<int64_t>(), qr.quantized_params);
  if (a.ffn == FfnKind::kMoe) {
    // Experts are quantized, routers are not; inspect counts the active parameters.
    for (const auto& t : qr.tensors) {
      const bool router = t.name.find("ffn_gate_inp") != std::string::npos ||
                          t.name.find("exp_probs_b") != std::string::npos;
      if (router) {
        EXPECT_FALSE(t.quantized) << t.name;
      }
    }
    const auto& st = j["structure"];
    EXPECT_EQ(st["moe"]["routed_experts"].get<int64_t>(), c.moe.n_experts);
    EXPECT_LT(st["active_parameters_per_token"].get<int64_t>(), j["parameters"].get<int64_t>());
  }
}

std::vector<const ArchInfo*> rows() {
  std::vector<const ArchInfo*> out;
  for (const auto& a : arch_table()) out.push_back(&a);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Table, ArchRow, ::testing::ValuesIn(rows()),
                         [](const auto& info) { return std::string(info.param->name); });

}  // namespace
}  // namespace dsq::jobs
