// Mixed precision (jobs/quantize_mixed.cpp, docs/MIXED.md): --tensor-type / --keep pins with exact
// bits-per-weight accounting, --target-bpw on stories260K (within the target, better than the
// uniform scheme at or above it, the sensitivity table cached in the statistics file), and
// --budget (a model that passes and is smaller than every uniform scheme that passes).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "formats/format_table.h"
#include "jobs/eval.h"
#include "jobs/quantize.h"
#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/quant_layout.h"
#include "lib/model/eval.h"
#include "lib/report/budget.h"
#include "tests/jobs/quantize_options.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

using nlohmann::json;

struct Stories {
  std::string model, calib, eval;
};

Stories stories(const std::string& shared) {
  return {shared + "/models/stories260K/hf", shared + "/data/tinystories-calib.stories260K.u32",
          shared + "/data/tinystories-eval.stories260K.u32"};
}

QuantizeOptions gptq_options(const Stories& s, const std::string& out, QuantDesc d) {
  QuantizeOptions o = quiet_quantize_options(s.model, out, d);
  o.method = "gptq";
  o.method_options = {{"calib", s.calib}, {"calib_samples", 24}, {"calib_len", 256}};
  return o;
}

EvalOptions eval_options(const Stories& s, const std::string& model) {
  EvalOptions e;
  e.model = model;
  e.ref = s.model;
  e.tokens_file = s.eval;
  e.ctx = 256;
  e.max_tokens = 4096;
  e.bos = true;
  e.batch = 4;
  e.progress = false;
  return e;
}

// The bits of every block linear of a written model, from its layout: what the plan promised.
double stored_block_bpw(const std::string& path) {
  const WeightStore ws = formats::open_model(path);
  double bits = 0, params = 0;
  for (const auto& name : ws.names()) {
    if (!is_block_linear(ws.config, name)) continue;
    const auto& e = ws.entry(name);
    const int64_t rows = e.shape.at(0), cols = e.shape.at(1);
    if (e.dtype == DType::kQInt) {
      const QuantLayout L = quant_layout(e.quant, rows, cols);
      bits += 8.0 * static_cast<double>(L.codes_bytes + L.scales_bytes + L.zeros_bytes);
    } else {
      bits += 8.0 * static_cast<double>(dtype_size(e.dtype) * rows * cols);
    }
    params += static_cast<double>(rows * cols);
  }
  return bits / params;
}

TEST(MixedPrecision, PinsAreAppliedAndBitsAreCountedExactly) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const Stories s = stories(shared);
  const std::string out = tmp.file("pinned.dsq");
  QuantizeOptions o = quiet_quantize_options(s.model, out, make_quant_desc("int4_sym_g64"));
  MixedOptions m;
  m.rules.push_back(parse_tensor_type_rule("blk\\.0\\.attn_v=f16"));
  m.rules.push_back(parse_tensor_type_rule("ffn_down=int8_sym_g32"));
  m.rules.push_back(parse_tensor_type_rule("blk\\.1\\.=int3_asym_g128"));  // after ffn_down
  const QuantizeReport r = run_quantize(o, "", m);
  const WeightStore ws = formats::open_model(out);
  std::map<std::string, int> seen;
  for (const auto& name : ws.names()) {
    if (!is_block_linear(ws.config, name)) continue;
    const auto& e = ws.entry(name);
    if (name == "blk.0.attn_v.weight") {
      EXPECT_EQ(e.dtype, DType::kF16);
      ++seen["f16"];
      continue;
    }
    ASSERT_EQ(e.dtype, DType::kQInt) << name;
    const std::string want = name.find("ffn_down") != std::string::npos ? "int8_sym_g32"
                             : name.rfind("blk.1.", 0) == 0             ? "int3_asym_g128"
                                                                        : "int4_sym_g64";
    EXPECT_EQ(scheme_name(e.quant), want) << name;
    ++seen[want];
  }
  EXPECT_EQ(seen["f16"], 1);
  EXPECT_EQ(seen["int8_sym_g32"], 5);
  EXPECT_EQ(seen["int3_asym_g128"], 6);
  EXPECT_EQ(seen["int4_sym_g64"], 23);
  // One accounting everywhere: the report, dsq eval and the stored layouts.
  const double stored = stored_block_bpw(out);
  EXPECT_DOUBLE_EQ(r.block_bpw(), stored);
  EXPECT_DOUBLE_EQ(*model::block_linear_bits_per_weight(ws), stored);
  EXPECT_EQ(r.recipe["tensor_schemes"]["blk.0.attn_v.weight"], "f16");
  EXPECT_EQ(r.recipe["tensor_schemes"]["blk.3.ffn_down.weight"], "int8_sym_g32");
  EXPECT_EQ(r.recipe["tensor_schemes"].size(), 12u);
  // The f16 copy is the source rounded once.
  const Tensor kept = ws.entry("blk.0.attn_v.weight").load().to(DType::kF32);
  const WeightStore src = formats::open_model(s.model);
  const Tensor want = src.entry("blk.0.attn_v.weight").load().to(DType::kF16).to(DType::kF32);
  EXPECT_EQ(0, std::memcmp(kept.data<float>(), want.data<float>(), want.nbytes()));

  MixedOptions none;
  none.rules.push_back(parse_tensor_type_rule("no_such_linear=int8_sym_g32"));
  EXPECT_THROW(run_quantize(quiet_quantize_options(s.model, tmp.file("x.dsq"), o.desc), "", none),
               UsageError);
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x.dsq")));
  EXPECT_THROW(parse_tensor_type_rule("ffn_down"), UsageError);
  EXPECT_THROW(parse_tensor_type_rule("ffn_down=int7_sym_g32"), UsageError);
  EXPECT_THROW(parse_tensor_type_rule("(=f16"), UsageError);
}

// At 3.5 and 4.5 bits per weight the plan stays within the target and beats the uniform GPTQ
// scheme with the smallest bits per weight at or above it by at least 0.8x in KLD; a second
// search reads the sensitivity table from the statistics file the first one saved.
TEST(MixedPrecision, TargetBpwBeatsUniformOnStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const Stories s = stories(shared);
  struct Case {
    double target;
    const char* uniform;  // smallest uniform bits per weight >= target on stories260K
  };
  for (const Case c : {Case{3.5, "int3_sym_g32"}, Case{4.5, "int4_sym_g32"}}) {
    SCOPED_TRACE(c.target);
    const std::string u = tmp.file(std::string(c.uniform) + ".dsq");
    run_quantize(gptq_options(s, u, make_quant_desc(c.uniform)));
    const std::string mx = tmp.file("mixed.dsq"), stats = tmp.file("stats.h5");
    QuantizeOptions o = gptq_options(s, mx, QuantDesc{4, 128, false});
    o.method_runtime["save_stats"] = stats;
    MixedOptions m;
    m.target_bpw = c.target;
    const QuantizeReport r = run_quantize(o, "", m);
    EXPECT_LE(r.block_bpw(), c.target);
    EXPECT_DOUBLE_EQ(r.block_bpw(), stored_block_bpw(mx));
    EXPECT_GE(stored_block_bpw(u), c.target);
    EXPECT_EQ(r.mixed["sensitivity_source"], "probe");
    // The file holds what the report chose, and the recipe says so.
    const WeightStore ws = formats::open_model(mx);
    for (const auto& [name, scheme] : r.mixed["choices"].items()) {
      const auto& e = ws.entry(name);
      EXPECT_EQ(e.dtype == DType::kQInt ? scheme_name(e.quant) : std::string("f16"), scheme) << name;
      EXPECT_EQ(r.recipe["tensor_schemes"][name], scheme);
    }
    const double k_mixed = run_eval(eval_options(s, mx)).kld_mean;
    const double k_uniform = run_eval(eval_options(s, u)).kld_mean;
    std::printf("target %.1f: mixed %.4f bpw KLD %.5f; %s %.4f bpw KLD %.5f (%.2fx)\n", c.target,
                r.block_bpw(), k_mixed, c.uniform, stored_block_bpw(u), k_uniform,
                k_mixed / k_uniform);
    EXPECT_LE(k_mixed, 0.8 * k_uniform);
    // The second search: the table comes from the statistics file, the plan is the same.
    QuantizeOptions o2 = gptq_options(s, tmp.file("mixed2.dsq"), QuantDesc{4, 128, false});
    o2.method_runtime["load_stats"] = stats;
    const QuantizeReport r2 = run_quantize(o2, "", m);
    EXPECT_EQ(r2.mixed["sensitivity_source"], stats);
    EXPECT_EQ(r2.mixed["choices"], r.mixed["choices"]);
    for (const auto& f : {mx, stats, tmp.file("mixed2.dsq")}) std::filesystem::remove(f);
  }
  // Nothing left beside the outputs (probe model, sensitivity table, work directories).
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_TRUE(e.path().extension() == ".dsq") << e.path();
}

TEST(MixedPrecision, UnreachableTargetNamesTheSmallest) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const Stories s = stories(shared);
  MixedOptions m;
  m.target_bpw = 1.5;
  m.candidates = {make_quant_desc("int3_sym_g64"), make_quant_desc("int4_sym_g64")};
  m.kld_tokens = 0;
  const std::string out = tmp.file("x.dsq");
  try {
    run_quantize(gptq_options(s, out, QuantDesc{4, 64, true}), "", m);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    // int3_sym_g64 everywhere: 3 + 16/64 on the 64-wide rows, 3 + 48/172 on ffn_down.
    EXPECT_NE(std::string(e.what()).find("smallest reachable is 3.2"), std::string::npos) << e.what();
  }
  // Refused from the sizes alone, before the probe: nothing was written.
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
  m.target_bpw = 4.0;
  const QuantizeOptions rtn = quiet_quantize_options(s.model, out, QuantDesc{4, 64, true});
  EXPECT_THROW(run_quantize(rtn, "", m), UsageError);  // RTN has no calibration to weigh by
}

// DeepSeek-V3 (MLA + MoE): routed experts get their own choices, the KLD calibration measures all
// experts of one kind in a layer together, and the plan stays within the target.
TEST(MixedPrecision, DeepSeekExpertsAreAllocated) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const std::string src = shared + "/models/deepseek-v3-tiny", out = tmp.file("ds.dsq");
  QuantizeOptions o = quiet_quantize_options(src, out, QuantDesc{4, 128, false});
  o.method = "gptq";
  o.method_options = {{"calib", shared + "/data/wikitext-2-valid.tokens.txt"},
                      {"calib_samples", 8}, {"calib_len", 128}};
  MixedOptions m;
  m.target_bpw = 3.5;
  m.kld_tokens = 512;
  // Eight candidates keep the probe short (the default 61 are exercised on stories260K above).
  for (const char* c : {"int2_asym_g64", "int3_asym_g64", "int3_sym_g128", "int4_asym_g128",
                        "int4_sym_g64", "int5_asym_g128", "int8_sym_g128"})
    m.candidates.push_back(make_quant_desc(c));
  m.candidates.push_back(std::nullopt);  // f16
  const QuantizeReport r = run_quantize(o, "", m);
  EXPECT_LE(r.block_bpw(), 3.5);
  EXPECT_DOUBLE_EQ(r.block_bpw(), stored_block_bpw(out));
  std::set<std::string> expert_schemes;
  int experts = 0;
  for (const auto& [name, scheme] : r.mixed["choices"].items())
    if (name.find("_exps.") != std::string::npos) {
      ++experts;
      expert_schemes.insert(scheme.get<std::string>());
    }
  EXPECT_EQ(experts, 2 * 12 * 3);  // layers 1 and 2 are MoE: 12 experts x gate, up, down
  EXPECT_GT(expert_schemes.size(), 1u);
  const json& units = r.mixed["kld_calibration"]["units"];
  EXPECT_TRUE(units.contains("blk.1.ffn_up_exps"));   // one unit for the 12 experts
  EXPECT_FALSE(units.contains("blk.1.ffn_up_exps.0"));
}

// --tie-groups: the linears reading one input (q/k/v; gate/up) take one scheme.
TEST(MixedPrecision, TiedGroupsShareOneScheme) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const Stories s = stories(shared);
  MixedOptions m;
  m.target_bpw = 3.8;
  m.tie_groups = true;
  m.kld_tokens = 1024;
  const QuantizeReport r =
      run_quantize(gptq_options(s, tmp.file("tied.dsq"), QuantDesc{4, 128, false}), "", m);
  EXPECT_LE(r.block_bpw(), 3.8);
  const json& c = r.mixed["choices"];
  std::set<std::string> distinct;
  for (int l = 0; l < 5; ++l) {
    const auto at = [&](const char* kind) {
      return c.at("blk." + std::to_string(l) + "." + kind + ".weight").get<std::string>();
    };
    EXPECT_EQ(at("attn_q"), at("attn_k")) << l;
    EXPECT_EQ(at("attn_q"), at("attn_v")) << l;
    EXPECT_EQ(at("ffn_gate"), at("ffn_up")) << l;
    for (const char* k : {"attn_q", "attn_output", "ffn_gate", "ffn_down"}) distinct.insert(at(k));
  }
  EXPECT_GT(distinct.size(), 1u);  // still mixed across groups
}

// The 4-bit example budget (examples/budget-w4.json: KLD <= 0.06, top-1 >= 0.875, PPL within
// 6.5%): the search returns a model that passes and is smaller than every uniform scheme that
// passes (uniform GPTQ first passes at int4_asym_g32, 4.77 bits per weight): every uniform scheme
// at or below its size fails. (examples/budget.json, the near-lossless W8 gate, is decided by
// top-1 >= 0.99 within one token of 4,080 for the uniform int8 schemes themselves: a comparison
// there measures noise; docs/MIXED.md.)
TEST(MixedPrecision, BudgetFindsASmallerModelThanAnyUniformScheme) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const Stories s = stories(shared);
  const std::string budget = std::string(DSQ_SOURCE_DIR) + "/examples/budget-w4.json";
  const report::Budget b = report::load_budget(budget);
  const auto passes = [&](const std::string& model) {
    const json ej = model::to_json(run_eval(eval_options(s, model)));
    return report::all_passed(report::check_budget(b, ej, report::model_facts(model)));
  };
  const std::string out = tmp.file("budget.dsq");
  MixedOptions m;
  m.budget = budget;
  m.eval = eval_options(s, "");
  const QuantizeReport r = run_quantize(gptq_options(s, out, QuantDesc{4, 128, false}), "", m);
  EXPECT_TRUE(passes(out));
  const double bpw = stored_block_bpw(out);
  EXPECT_DOUBLE_EQ(r.block_bpw(), bpw);
  const int runs = r.mixed["quantize_eval_runs"].get<int>();
  std::printf("budget: %.4f bits per weight after %d quantize + eval runs\n", bpw, runs);
  EXPECT_LE(runs, 2 + m.budget_steps);
  // Every uniform scheme of the candidates at or below that size fails the budget.
  int checked = 0;
  for (const auto& c : default_mixed_candidates()) {
    if (!c) continue;
    const std::string u = tmp.file("u.dsq");
    run_quantize(quiet_quantize_options(s.model, u, *c));  // RTN: only the size matters here
    if (stored_block_bpw(u) > bpw) continue;
    run_quantize(gptq_options(s, u, *c));
    EXPECT_FALSE(passes(u)) << scheme_name(*c) << " passes at " << stored_block_bpw(u);
    ++checked;
  }
  EXPECT_GT(checked, 0);
  std::printf("%d uniform schemes at or below it fail\n", checked);
  // Nothing but the output (and the uniform scratch file) left.
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_TRUE(e.path() == out || e.path() == tmp.file("u.dsq")) << e.path();
}

}  // namespace
}  // namespace dsq::jobs
