// The calibrated pipeline on Mixture-of-Experts blocks (a synthetic DeepSeek-V3-shaped model: MLA
// attention, one dense layer, MoE layers with 6 routed experts + 1 shared): resume after kill -9
// inside a MoE block is byte-identical; each expert's statistics come from exactly its routed
// tokens (counted in the report and the statistics file) or are topped up / taken from every
// token by rule; saved statistics reproduce the run; nothing is NaN and no expert is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "calibration/pipeline.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "formats/hdf5/stats_file.h"
#include "jobs/quantize.h"
#include "lib/core/synthetic.h"
#include "lib/model/model.h"
#include "tests/calibration/kill_resume_util.h"
#include "tests/test_util.h"

namespace dsq::calibration {
namespace {

namespace fs = std::filesystem;
constexpr const char* kDirEnv = "DSQ_PIPELINE_MOE_TEST_DIR";

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

constexpr int64_t kSamples = 6, kLen = 48;

struct Fixture {
  std::string dir, model, calib;
  ModelConfig cfg;
  explicit Fixture(std::string d) : dir(std::move(d)) {
    model = dir + "/ds.dsq";
    calib = dir + "/calib.u32";
    cfg = synthetic_config("deepseek_v3", {.n_layers = 3, .d_model = 64, .n_heads = 2});
    formats::DsqWriteOptions wo;
    wo.progress = false;
    if (!fs::exists(model)) formats::write_dsq(make_synthetic_model(cfg, 31), model, wo);
    std::ofstream f(calib, std::ios::binary);
    uint64_t s = 9;
    for (int i = 0; i < 3000; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const uint32_t id = 3 + static_cast<uint32_t>((s >> 33) % 120);
      f.write(reinterpret_cast<const char*>(&id), 4);
    }
  }
  QuantizeOptions options(const std::string& out, const std::string& method = "gptq",
                          nlohmann::json extra = nlohmann::json::object()) const {
    QuantizeOptions o;
    o.model_path = model;
    o.out_path = out;
    o.method = method;
    o.desc = QuantDesc{4, 32, false};
    o.progress = false;
    o.method_options = {{"calib", calib}, {"calib_samples", kSamples}, {"calib_len", kLen}};
    o.method_options.update(extra);
    return o;
  }
};

std::string shared_test_dir(std::optional<testing::TempDir>& tmp) {
  return testing_util::shared_test_dir(kDirEnv, tmp);
}
using testing_util::run_killed;

class MoeMethod : public ::testing::TestWithParam<const char*> {};
INSTANTIATE_TEST_SUITE_P(Methods, MoeMethod, ::testing::Values("gptq", "awq", "awq+gptq"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n == "awq+gptq" ? std::string("awq_gptq") : n;
                         });

TEST_P(MoeMethod, ResumeAfterKillInsideAMoeBlockIsByteIdentical) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::optional<testing::TempDir> tmp;
  const Fixture fx(shared_test_dir(tmp));
  const std::string out = fx.dir + "/resumed_" + std::to_string(std::hash<std::string>{}(GetParam())) + ".dsq";
  QuantizeOptions o = fx.options(out, GetParam());
  // Killed inside MoE block 1 after its first routed expert was solved, then inside block 2.
  run_killed(o, "during-experts:1");
  EXPECT_FALSE(fs::exists(out));
  o.method_runtime = nlohmann::json{{"resume", true}};
  run_killed(o, "during-experts:2");
  ::unsetenv(kDirEnv);
  jobs::run_quantize(o);
  EXPECT_FALSE(fs::exists(out + ".partial"));
  const std::string straight = out + ".straight.dsq";
  jobs::run_quantize(fx.options(straight, GetParam()));
  const std::string a = read_file(straight), b = read_file(out);
  ASSERT_GT(a.size(), 10000u);
  EXPECT_TRUE(a == b) << "resumed output differs from an uninterrupted run";
}

// Per-expert report fields of a run, by (layer, expert).
struct ExpertRow {
  int64_t routed = -1, calib = -1;
  std::string fallback;
};
std::map<std::pair<int64_t, int64_t>, ExpertRow> expert_rows(const jobs::QuantizeReport& r) {
  std::map<std::pair<int64_t, int64_t>, ExpertRow> out;
  for (const auto& t : r.tensors) {
    int64_t l = 0;
    std::string s;
    if (!parse_block_name(t.name, &l, &s) || s.rfind("ffn_gate_exps.", 0) != 0) continue;
    const int64_t e = std::stoll(s.substr(14));
    out[{l, e}] = {t.extra.value("routed_tokens", int64_t{-1}), t.extra.value("calib_tokens", int64_t{-1}),
                   t.extra.value("expert_fallback", std::string())};
  }
  return out;
}

TEST(PipelineMoe, ExpertStatisticsComeFromTheirRoutedTokens) {
  testing::TempDir tmp;
  const Fixture fx(tmp.path().string());
  const int64_t rows = kSamples * kLen, K = fx.cfg.moe.n_experts_per_tok, E = fx.cfg.moe.n_experts;
  // min_tokens 1: statistics exactly from the routed rows.
  const jobs::QuantizeReport r = jobs::run_quantize(fx.options(
      fx.dir + "/a.dsq", "gptq",
      {{"expert_min_tokens", 1}}));
  const auto rowsof = expert_rows(r);
  ASSERT_EQ(static_cast<int64_t>(rowsof.size()), E * 2);  // layers 1 and 2
  for (int64_t l = 1; l <= 2; ++l) {
    int64_t total = 0;
    for (int64_t e = 0; e < E; ++e) {
      const ExpertRow& x = rowsof.at({l, e});
      total += x.routed;
      EXPECT_EQ(x.calib, std::max<int64_t>(x.routed, 1)) << l << " " << e;
    }
    EXPECT_EQ(total, rows * K) << "every routed (token, expert) pair counted once";
  }
  // Every linear of every expert is quantized, with finite errors.
  int64_t expert_linears = 0;
  for (const auto& t : r.tensors)
    if (t.name.find("_exps.") != std::string::npos) {
      EXPECT_TRUE(t.quantized) << t.name;
      EXPECT_TRUE(std::isfinite(t.error.rel())) << t.name;
      ++expert_linears;
    }
  EXPECT_EQ(expert_linears, 2 * E * 3);
  // A larger minimum tops the rare experts up; --expert-calib-all gives every expert every row.
  const jobs::QuantizeReport up = jobs::run_quantize(fx.options(fx.dir + "/b.dsq", "gptq",
                                                                {{"expert_min_tokens", 100}}));
  int64_t topped = 0;
  for (const auto& [k, x] : expert_rows(up)) {
    EXPECT_EQ(x.calib, std::max<int64_t>(x.routed, 100));
    EXPECT_EQ(x.fallback, x.routed < 100 ? "top-up" : "none");
    topped += x.routed < 100;
  }
  EXPECT_GT(topped, 0);
  const jobs::QuantizeReport all = jobs::run_quantize(fx.options(fx.dir + "/c.dsq", "gptq",
                                                                 {{"expert_calib_all", true}}));
  for (const auto& [k, x] : expert_rows(all)) {
    EXPECT_EQ(x.calib, rows);
    EXPECT_EQ(x.fallback, "all-tokens");
  }
  // The three models run and differ.
  for (const char* f : {"/a.dsq", "/b.dsq", "/c.dsq"}) {
    const model::Model m = model::Model::load(formats::open_model(fx.dir + f));
    std::vector<int32_t> ids(32);
    for (int i = 0; i < 32; ++i) ids[static_cast<size_t>(i)] = 3 + i;
    for (float v : m.forward(ids, 1, 32)) ASSERT_TRUE(std::isfinite(v)) << f;
  }
  EXPECT_NE(read_file(fx.dir + "/a.dsq"), read_file(fx.dir + "/c.dsq"));
}

TEST(PipelineMoe, SavedStatisticsHoldEveryExpertAndReproduceTheRun) {
  testing::TempDir tmp;
  const Fixture fx(tmp.path().string());
  for (const std::string method : {"gptq", "awq"}) {
    SCOPED_TRACE(method);
    QuantizeOptions o = fx.options(fx.dir + "/s_" + method + ".dsq", method);
    o.method_runtime = {{"save_stats", fx.dir + "/s_" + method + ".h5"}};
    const jobs::QuantizeReport a = jobs::run_quantize(o);
    const formats::hdf5::Reader h5(fx.dir + "/s_" + method + ".h5");
    int64_t routed = 0;
    for (int64_t e = 0; e < fx.cfg.moe.n_experts; ++e) {
      const auto st = formats::hdf5::read_input_stats(h5, 1, "exp_in." + std::to_string(e), fx.cfg.d_model);
      EXPECT_GE(st.routed_tokens, 0);
      EXPECT_GE(st.n_tokens, st.routed_tokens);
      routed += st.routed_tokens;
      const auto down = formats::hdf5::read_input_stats(h5, 1, "exp_out." + std::to_string(e), fx.cfg.moe.d_expert);
      EXPECT_EQ(down.n_tokens, st.n_tokens);
      for (double v : down.hessian) ASSERT_TRUE(std::isfinite(v));
    }
    EXPECT_EQ(routed, kSamples * kLen * fx.cfg.moe.n_experts_per_tok);
    // Quantizing from the file alone gives the same bytes.
    QuantizeOptions l = fx.options(fx.dir + "/l_" + method + ".dsq", method);
    l.method_options = nlohmann::json::object();
    l.method_runtime = {{"load_stats", fx.dir + "/s_" + method + ".h5"}};
    jobs::run_quantize(l);
    const WeightStore wa = formats::open_model(fx.dir + "/s_" + method + ".dsq");
    const WeightStore wb = formats::open_model(fx.dir + "/l_" + method + ".dsq");
    ASSERT_EQ(wa.names(), wb.names());
    for (const auto& name : wa.names()) {  // the headers differ (recipe), the tensors may not
      const Tensor ta = wa.get(name), tb = wb.get(name);
      ASSERT_EQ(ta.nbytes(), tb.nbytes()) << name;
      EXPECT_EQ(std::memcmp(ta.bytes(), tb.bytes(), ta.nbytes()), 0) << name;
    }
  }
}

}  // namespace
}  // namespace dsq::calibration
