// `dsq prune` and `dsq sparsify` through the built binary on stories260K: the outputs are valid
// smaller .dsq files that `dsq eval`, `dsq generate` and `dsq quantize` accept; eval reports the
// activation sparsity a sparsified model reaches; bad flags are usage errors (exit 2).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

using testing::CliRun;
using testing::TempDir;

std::string slurp(const std::string& p) { return testing::read_text(p); }
CliRun run_cli(const TempDir& tmp, const std::string& args) { return testing::run_dsq(tmp, args); }

std::string calib(const std::string& shared) {
  return " --calib " + shared + "/data/tinystories-calib.stories260K.u32 --calib-samples 16 "
         "--calib-len 256 --drift-samples 4";
}

// Evaluates `model` against the FP32 stories260K on the first 4096 eval ids; returns eval's JSON.
nlohmann::json eval(const TempDir& tmp, const std::string& shared, const std::string& model) {
  const std::string j = tmp.file("eval.json");
  const CliRun r = run_cli(tmp, "-q eval " + model + " --ref " + shared + "/models/stories260K/hf --tokens " +
                             shared + "/data/tinystories-eval.stories260K.u32 --ctx 512 --bos "
                             "--max-tokens 4096 --json " + j);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(slurp(j));
}

TEST(CliPrune, PrunedModelIsSmallerAndEvalGenerateQuantizeAcceptIt) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string out = tmp.file("p.dsq"), rep = tmp.file("p.json");
  const CliRun r = run_cli(tmp, "-q prune " + shared + "/models/stories260K/hf -o " + out +
                             " --ffn 0.2 --heads 0.25 --drop-layers 1 --bias-compensation --json " +
                             rep + calib(shared));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(rep));
  EXPECT_EQ(j["params_before"], 260032);
  // 4 kept blocks: 2 of 8 q heads (one kv group of 4), 34 of 172 FFN channels removed.
  int64_t per_layer = 6 * 8 * 64 + 2 * 3 * 8 * 64 + 6 * 8 * 64 + 3 * 138 * 64 + 2 * 64 + 2 * 64;
  EXPECT_EQ(j["params_after"], 32768 + 64 + 4 * per_layer);
  int dropped = 0;
  for (const auto& l : j["layers"]) dropped += l["dropped"].get<bool>();
  EXPECT_EQ(dropped, 1);
  EXPECT_LT(j["drift"]["kld_mean"].get<double>(), 5.0);
  EXPECT_GT(j["drift"]["kld_mean"].get<double>(), 0.0);

  const auto e = eval(tmp, shared, out);
  EXPECT_GT(e["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(e["perplexity"].get<double>(), 100.0);  // still a language model (untrained: ~512)
  const CliRun g = run_cli(tmp, "-q generate " + out + " --prompt 'Once upon a time' -n 12");
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("Once upon a time"), std::string::npos) << g.out;
  const std::string q = tmp.file("q.dsq");
  const CliRun qr = run_cli(tmp, "-q quantize " + out + " -o " + q + " --bits 8 --group 32");
  ASSERT_EQ(qr.code, 0) << qr.err;
  const auto eq = eval(tmp, shared, q);
  EXPECT_NEAR(eq["perplexity"].get<double>(), e["perplexity"].get<double>(),
              0.05 * e["perplexity"].get<double>());
}

// `dsq sparsify` of stories260K's FFN inputs at 40% into `out` (any writable format).
CliRun sparsify_ffn(const TempDir& tmp, const std::string& shared, const std::string& out) {
  return run_cli(tmp, "-q sparsify " + shared + "/models/stories260K/hf -o " + out +
                          " --topk 0.4 --targets ffn" + calib(shared));
}

TEST(CliSparsify, EvalReportsTheSparsityReachedAndGenerateRuns) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string out = tmp.file("s.dsq");
  const CliRun r = sparsify_ffn(tmp, shared, out);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = eval(tmp, shared, out);
  ASSERT_TRUE(e.contains("sparsity")) << e.dump();
  EXPECT_EQ(e["sparsity"].size(), 5u * 3u);  // gate, up, down of 5 blocks
  // Thresholds from calibration text carry over to the eval text: about 40% zeroed.
  EXPECT_NEAR(e["sparsity_overall"].get<double>(), 0.4, 0.05) << e["sparsity"].dump();
  for (const auto& s : e["sparsity"]) EXPECT_NEAR(s["sparsity"].get<double>(), 0.4, 0.1) << s.dump();
  EXPECT_GT(e["kld_mean"].get<double>(), 0.0);
  const CliRun g = run_cli(tmp, "-q generate " + out + " --prompt 'Once upon a time' -n 12");
  EXPECT_EQ(g.code, 0) << g.err;
}

// GGUF has no place for activation thresholds: the export is the dense model, and says so.
TEST(CliSparsify, GgufOutputSaysTheThresholdsAreDropped) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string out = tmp.file("s.gguf");
  const CliRun r = sparsify_ffn(tmp, shared, out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("dropped from 15 tensor(s)"), std::string::npos) << r.err;
  const CliRun e = run_cli(tmp, "-q eval " + out + " --tokens " + shared +
                                    "/data/tinystories-eval.stories260K.u32 --ctx 256 --max-tokens 512 "
                                    "--json -");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_FALSE(nlohmann::json::parse(e.out.substr(0, e.out.rfind('}') + 1)).contains("sparsity"));
}

TEST(CliPrune, UsageErrors) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf", out = tmp.file("x.dsq");
  CliRun r = run_cli(tmp, "prune " + hf + " -o " + out + " --ffn 0.2");  // activation without --calib
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("dsq prune: error:"), std::string::npos) << r.err;
  r = run_cli(tmp, "prune " + hf + " -o " + out + " --ffn 0.2 --importance wanda");
  EXPECT_EQ(r.code, 2);
  r = run_cli(tmp, "sparsify " + hf + " -o " + out + " --topk 0.5");  // no --calib
  EXPECT_EQ(r.code, 2);
  r = run_cli(tmp, "sparsify " + hf + " -o " + out + " --topk 0.5 --targets mlp" + calib(shared));
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace dsq
