// The whole command line on the trained Qwen2 and Qwen3 checkpoints of ../shared: quantize with
// every method (calibrated on the TinyStories calibration part and WikiText-2 text, mixed, through
// the model's own tokenizer), prune and sparsify; every output is a valid model that `dsq eval`
// scores against the source, and GPTQ W4 g128 drifts at most 0.8x as much as RTN.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

using testing::CliRun;
using testing::read_text;
using testing::run_dsq;
using testing::TempDir;

// The TinyStories calibration part (bytes [0, 712780) of the excerpt, ../shared/models/MANIFEST.md)
// and WikiText-2 valid, 16 windows of 256 ids.
std::string calib(const TempDir& tmp, const std::string& shared) {
  const std::string part = tmp.file("tinystories-calib.txt");
  std::ofstream(part, std::ios::binary)
      << read_text(shared + "/data/tinystories-train-excerpt.txt").substr(0, 712780);
  return " --calib " + part + " --calib " + shared +
         "/data/wikitext-2-valid.tokens.txt --calib-samples 16 --calib-len 256";
}

// KLD of `model` against `src` on the first 2048 TinyStories ids.
double kld(const TempDir& tmp, const std::string& shared, const std::string& model,
           const std::string& src) {
  const std::string j = tmp.file("eval.json");
  const CliRun r = run_dsq(tmp, "-q eval " + model + " --ref " + src + " --tokens " + shared +
                                    "/models/tiny-references/tinystories.qwen-tok.u32 --ctx 256 "
                                    "--max-tokens 2048 --batch 4 --json " + j);
  EXPECT_EQ(r.code, 0) << r.err;
  const auto e = nlohmann::json::parse(read_text(j));
  return e["kld_mean"].get<double>();
}

class CliTinyModel : public ::testing::TestWithParam<const char*> {};

TEST_P(CliTinyModel, EveryMethodQuantizesAndEvalScoresIt) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string src = shared + "/models/" + GetParam();
  std::map<std::string, double> klds;
  for (const std::string method : {"rtn", "gptq", "awq", "awq+gptq"}) {
    SCOPED_TRACE(method);
    const std::string out = tmp.file(method + ".dsq"), rep = tmp.file(method + ".json");
    const CliRun r = run_dsq(tmp, "-q quantize " + src + " -o " + out + " --scheme int4_asym_g128 --method " +
                                      method + (method == "rtn" ? "" : calib(tmp, shared)) + " --json " + rep);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto q = nlohmann::json::parse(read_text(rep));
    EXPECT_EQ(q["recipe"]["scheme"], "int4_asym_g128");
    int quantized = 0;
    for (const auto& t : q["tensors"]) quantized += t["quantized"].get<bool>();
    EXPECT_EQ(quantized, 4 * 7);  // 4 blocks x 7 linears; Qwen3's q/k norms stay f32
    klds[method] = kld(tmp, shared, out, src);
    EXPECT_GT(klds[method], 0.0);
  }
  EXPECT_LE(klds["gptq"], 0.8 * klds["rtn"]);
  EXPECT_LE(klds["awq+gptq"], 0.8 * klds["rtn"]);
  EXPECT_LT(klds["awq"], klds["rtn"]);
}

TEST_P(CliTinyModel, PruneAndSparsifyGiveModelsEvalAccepts) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string src = shared + "/models/" + GetParam();
  const std::string pruned = tmp.file("p.dsq"), sparse = tmp.file("s.dsq");
  CliRun r = run_dsq(tmp, "-q prune " + src + " -o " + pruned + " --ffn 0.25 --heads 0.5" +
                              calib(tmp, shared) + " --drift-samples 2 --json " + tmp.file("p.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto p = nlohmann::json::parse(read_text(tmp.file("p.json")));
  EXPECT_EQ(p["layers"][0]["after"]["d_ff"], 576);     // 768 - 25%
  EXPECT_EQ(p["layers"][0]["after"]["n_kv_heads"], 1);  // one of two kv groups
  EXPECT_LT(p["params_after"].get<int64_t>(), p["params_before"].get<int64_t>());
  EXPECT_GT(kld(tmp, shared, pruned, src), 0.0);
  r = run_dsq(tmp, "-q sparsify " + src + " -o " + sparse + " --topk 0.3" + calib(tmp, shared) +
                       " --drift-samples 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const double k = kld(tmp, shared, sparse, src);
  EXPECT_GT(k, 0.0);
  EXPECT_LT(k, 0.5);
}

INSTANTIATE_TEST_SUITE_P(Shared, CliTinyModel, ::testing::Values("qwen2-tiny", "qwen3-tiny"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace dsq
