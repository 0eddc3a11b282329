// `dsq eval` and `dsq generate` through the built binary: the JSON report's keys and values on
// stories260K, the printed greedy continuation, and exit codes / messages for bad input.
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
CliRun dsq(const TempDir& tmp, const std::string& args) { return testing::run_dsq(tmp, args); }

TEST(CliEval, JsonReportOnStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf", js = tmp.file("e.json");
  const CliRun r = dsq(tmp, "-q eval " + hf + " --ref " + hf + " --tokens " + shared +
                             "/data/tinystories-eval.stories260K.u32 --ctx 512 --bos --batch 2 "
                             "--max-tokens 2048 --json " + js);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(js + ".tmp"));
  const auto j = nlohmann::json::parse(slurp(js));
  for (const char* k : {"perplexity", "tokens_scored", "ref_perplexity", "kld_mean", "kld_stderr",
                        "kld_p99", "kld_max", "top1_agreement", "tokens_per_second", "layers"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["tokens_scored"].get<int64_t>(), 4 * 511);
  EXPECT_EQ(j["kld_mean"].get<double>(), 0.0);
  EXPECT_EQ(j["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(j["perplexity"].get<double>(), j["ref_perplexity"].get<double>());
  EXPECT_GT(j["tokens_per_second"].get<double>(), 0.0);
  ASSERT_EQ(j["layers"].size(), 5u);
  EXPECT_EQ(j["layers"][4]["layer"].get<int>(), 4);
  EXPECT_EQ(j["layers"][4]["rel_l2"].get<double>(), 0.0);
}

TEST(CliGenerate, PrintsTheManifestGreedyContinuation) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const CliRun r = dsq(tmp, "generate " + shared +
                             "/models/stories260K/llama2c/stories260K.bin --prompt 'Once upon a "
                             "time' -n 30");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day,\n");
}

// The prompt as ids (what a model without a tokenizer needs) continues exactly as the text that
// encodes to them; --json carries the ids and the per-phase rates.
TEST(CliGenerate, PromptIdsAndJson) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string m = shared + "/models/stories260K/llama2c/stories260K.bin";
  CliRun r = dsq(tmp, "-q generate " + m + " --prompt 'Once upon a time' -n 12 --json " + tmp.file("a.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json a = nlohmann::json::parse(std::ifstream(tmp.file("a.json")));
  std::string ids;
  for (const auto& id : a["prompt_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
  r = dsq(tmp, "-q generate " + m + " --prompt-ids " + ids + " -n 12 --json " + tmp.file("b.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json b = nlohmann::json::parse(std::ifstream(tmp.file("b.json")));
  EXPECT_EQ(a["new_ids"], b["new_ids"]);
  EXPECT_EQ(a["text"], b["text"]);
  EXPECT_EQ(b["new_ids"].size(), 12u);
  EXPECT_EQ(b["decode_steps"].get<int>(), 11);  // no pass after the last id
  EXPECT_GT(b["decode_tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(b["prompt_tokens_per_second"].get<double>(), 0.0);
  r = dsq(tmp, "generate " + m + " --prompt-ids 1,99999");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("id 99999 is outside the model's vocabulary [0, 512)"), std::string::npos) << r.err;
  r = dsq(tmp, "generate " + m + " --prompt x --prompt-ids 1");
  EXPECT_EQ(r.code, 2) << r.err;
  r = dsq(tmp, "generate " + m);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no prompt"), std::string::npos) << r.err;
}

TEST(CliEval, BadInputsGiveClearErrorsAndExitCodes) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf";
  const std::string ids = shared + "/data/tinystories-eval.stories260K.u32";
  CliRun r = dsq(tmp, "eval " + hf + " --tokens " + ids + " --ctx 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("dsq eval: error: --ctx must be at least 2"), std::string::npos) << r.err;
  r = dsq(tmp, "eval " + hf);
  EXPECT_EQ(r.code, 2) << r.err;
  std::ofstream(tmp.file("empty.u32")).close();
  r = dsq(tmp, "eval " + hf + " --tokens " + tmp.file("empty.u32"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no tokens"), std::string::npos) << r.err;
  // ids of the 512-entry vocabulary read from a file of larger values
  const uint32_t big[4] = {1, 2, 3, 9999};
  std::ofstream(tmp.file("big.u32"), std::ios::binary).write(reinterpret_cast<const char*>(big), 16);
  r = dsq(tmp, "eval " + hf + " --tokens " + tmp.file("big.u32") + " --ctx 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("token id 9999 at position 3"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dsq
