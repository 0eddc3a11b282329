// The companion runtime (examples/runtime/dsq_run.cpp: the standalone reader and C++17 only)
// continues a prompt greedily with the same ids as `dsq generate` on the same .dsq file: floats,
// grouped-integer schemes of every shape (symmetric and asymmetric, 4 and 8 bits, groups and per
// channel), a pruned model with per-layer widths, for llama (stories260K), qwen2 and qwen3.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "jobs/convert.h"
#include "jobs/generate.h"
#include "jobs/quantize.h"
#include "tests/jobs/quantize_options.h"
#include "tests/tools/cli_run.h"

namespace dsq::jobs {
namespace {

using dsq::testing::CliRun;
using dsq::testing::TempDir;

std::string runtime_binary() { return std::string(DSQ_BINARY_DIR) + "/bin/dsq_run"; }

// Runs dsq_run on `model` with `ids`, returns the generated ids (exit status checked).
std::vector<int32_t> run_runtime(const TempDir& tmp, const std::string& model,
                                 const std::vector<int32_t>& ids, int64_t n) {
  std::string cmd = runtime_binary() + " " + model + " -n " + std::to_string(n);
  for (const int32_t id : ids) cmd += " " + std::to_string(id);
  const std::string out = tmp.file("rt.out"), err = tmp.file("rt.err");
  const int st = std::system((cmd + " >" + out + " 2>" + err).c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd << ": " << testing::read_text(err);
  std::istringstream in(testing::read_text(out));
  std::vector<int32_t> got;
  for (int32_t v; in >> v;) got.push_back(v);
  return got;
}

void expect_same_continuation(const TempDir& tmp, const std::string& model, const std::string& what) {
  GenerateOptions g;
  g.model = model;
  g.prompt = "Once upon a time";
  g.n_new = 24;
  const GenerateResult want = run_generate(g);
  ASSERT_FALSE(want.new_ids.empty()) << what;
  EXPECT_EQ(run_runtime(tmp, model, want.prompt_ids, g.n_new), want.new_ids) << what;
}


TEST(CompanionRuntime, SameGreedyIdsAsDsqGenerate) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  for (const std::string m : {"stories260K/hf", "qwen2-tiny", "qwen3-tiny"}) {
    const std::string src = shared + "/models/" + m, f = tmp.file("f.dsq"), q = tmp.file("q.dsq");
    ConvertOptions c;
    c.src = src;
    c.out = f;
    c.progress = false;
    run_convert(c);
    expect_same_continuation(tmp, f, m + " as stored");
    for (const QuantDesc d : {QuantDesc{4, 32, true}, QuantDesc{4, 128, false}, QuantDesc{8, 0, true},
                              QuantDesc{3, 64, false}}) {
      run_quantize(quiet_quantize_options(src, q, d));
      expect_same_continuation(tmp, q, m + " " + scheme_name(d));
    }
  }
}

TEST(CompanionRuntime, PrunedModelWithPerLayerWidths) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string p = tmp.file("p.dsq");
  const CliRun r = testing::run_dsq(tmp, "-q prune " + shared + "/models/stories260K/hf -o " + p +
                                             " --ffn 0.25 --heads 0.25 --global --importance magnitude");
  ASSERT_EQ(r.code, 0) << r.err;
  const CliRun i = testing::run_dsq(tmp, "inspect " + p + " --json -");
  ASSERT_EQ(i.code, 0) << i.err;
  const auto layers = nlohmann::json::parse(i.out)["config"]["layers"];
  ASSERT_EQ(layers.size(), 5u);
  EXPECT_NE(layers[0]["d_ff"], layers[2]["d_ff"]);  // --global: the widths differ per layer
  expect_same_continuation(tmp, p, "pruned stories260K");
}

TEST(CompanionRuntime, RefusesWhatItDoesNotRunInOneLine) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string ds = tmp.file("ds.dsq");
  ConvertOptions c;
  c.src = shared + "/models/deepseek-v3-tiny";
  c.out = ds;
  c.progress = false;
  run_convert(c);
  const std::string err = tmp.file("e.txt");
  const int st = std::system((runtime_binary() + " " + ds + " 1 2 3 2>" + err).c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1);
  const std::string msg = testing::read_text(err);
  EXPECT_NE(msg.find("architecture 'deepseek_v3' is not supported"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), msg.size() - 1) << msg;
}

}  // namespace
}  // namespace dsq::jobs
