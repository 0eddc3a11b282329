// `dsq check` end to end through the binary: exit codes 0 / 1 / 2, the table, --json and --junit.
// Budget logic runs on an eval report fixture (--from-report); the real-model test evaluates
// stories260K.
#include <gtest/gtest.h>

#include <fstream>

#include "lib/report/report_io.h"
#include "tests/report/shell_args.h"
#include "tests/report/report_fixtures.h"
#include "tests/report/xml_check.h"
#include "tests/test_util.h"
#include "tests/tools/cli_run.h"

namespace dsq::testing {
namespace {

using nlohmann::json;

// eval_fixture_for("gptq"): kld_mean 0.02, kld_p99 0.18, top1 0.96, ppl_ratio 1.02,
// bits_per_weight 9.1, layers blk.0..4 with rel_l2 0.01..0.05; the "model" file has 1000 bytes.
json passing_limits() {
  return {{"max_kld_mean", 0.025},
          {"max_kld_p99", 0.2},
          {"min_top1_agreement", 0.95},
          {"max_ppl_ratio", 1.03},
          {"max_bits_per_weight", 9.5},
          {"max_file_bytes", 1000},
          {"max_layer_rel_error", json::array({{{"pattern", "blk.*"}, {"max", 0.06}}})}};
}

class CliCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    report_ = tmp_.file("eval.json");
    model_ = tmp_.file("model.dsq");
    report::write_file_atomic(report_, eval_fixture_for("gptq").dump(2));
    report::write_file_atomic(model_, std::string(1000, 'x'));
  }
  std::string budget(const json& limits, const std::string& name = "budget.json") {
    const std::string p = tmp_.file(name);
    report::write_file_atomic(p, json{{"name", "fixture gate"}, {"limits", limits}}.dump(2));
    return p;
  }
  CliRun check(const std::string& budget_path, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"check", model_, "--from-report", report_, "--budget",
                                     budget_path};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_dsq(tmp_, shell_args(args));
  }
  TempDir tmp_;
  std::string report_, model_;
};

TEST_F(CliCheck, PassingBudgetExitsZero) {
  const std::string junit = tmp_.file("gate.xml"), out = tmp_.file("check.json");
  const CliRun r = check(budget(passing_limits()), {"--json", out, "--junit", junit});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all 7 limits hold"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos);
  const json j = report::read_json_file(out);
  EXPECT_TRUE(j["check"]["passed"].get<bool>());
  EXPECT_EQ(j["check"]["limits"].size(), 7u);
  EXPECT_DOUBLE_EQ(j["kld_mean"].get<double>(), 0.02);  // the eval report is kept whole
  const auto root = XmlParser::parse(read_text(junit));
  EXPECT_EQ(root->all("testcase").size(), 7u);
  EXPECT_TRUE(root->all("failure").empty());
  EXPECT_EQ(root->all("testsuite").at(0)->attr("name"), "fixture gate");
  EXPECT_FALSE(std::filesystem::exists(junit + ".tmp"));
}

TEST_F(CliCheck, EachExceededLimitExitsOneNamingIt) {
  const struct {
    const char* key;
    json value;
    const char* name;
  } cases[] = {
      {"max_kld_mean", 0.019, "max_kld_mean"},
      {"max_kld_p99", 0.17, "max_kld_p99"},
      {"min_top1_agreement", 0.97, "min_top1_agreement"},
      {"max_ppl_ratio", 1.01, "max_ppl_ratio"},
      {"max_bits_per_weight", 9.0, "max_bits_per_weight"},
      {"max_file_bytes", 999, "max_file_bytes"},
      {"max_layer_rel_error", json::array({{{"pattern", "blk.*"}, {"max", 0.04}}}),
       "max_layer_rel_error[blk.*]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    json limits = passing_limits();
    limits[c.key] = c.value;
    const std::string junit = tmp_.file("gate.xml");
    const CliRun r = check(budget(limits), {"--junit", junit});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    // Exactly one FAIL row, and it is this limit's.
    size_t fails = 0, at = 0;
    while ((at = r.out.find("FAIL", at)) != std::string::npos) ++fails, ++at;
    EXPECT_EQ(fails, 1u) << r.out;
    const size_t row = r.out.find(std::string(c.name) + " ");
    ASSERT_NE(row, std::string::npos) << r.out;
    const std::string line = r.out.substr(row, r.out.find('\n', row) - row);
    EXPECT_NE(line.find("FAIL"), std::string::npos) << line;
    EXPECT_NE(r.out.find("1 of 7 limits exceeded"), std::string::npos) << r.out;
    const auto root = XmlParser::parse(read_text(junit));
    const auto failures = root->all("failure");
    ASSERT_EQ(failures.size(), 1u);
    for (const XmlNode* tc : root->all("testcase"))
      EXPECT_EQ(tc->child("failure") != nullptr, tc->attr("name") == c.name) << tc->attr("name");
  }
}

TEST_F(CliCheck, MalformedBudgetExitsOneWithJsonPath) {
  json limits = passing_limits();
  limits["max_kld_mean"] = "0.02";
  const std::string junit = tmp_.file("gate.xml");
  CliRun r = check(budget(limits, "bad.json"), {"--junit", junit});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("dsq check: error: '" + tmp_.file("bad.json") +
                       "': /limits/max_kld_mean: expected a number, got string"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(junit));  // nothing measured, nothing written

  limits = passing_limits();
  limits["max_layer_rel_error"][0].erase("max");
  r = check(budget(limits));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/limits/max_layer_rel_error/0: missing required key 'max'"),
            std::string::npos)
      << r.err;

  r = check(budget({{"max_kld_mean", 0.1}, {"max_kld_mean_typo", 0.1}}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/limits/max_kld_mean_typo: unknown key"), std::string::npos) << r.err;

  const std::string broken = tmp_.file("broken.json");
  report::write_file_atomic(broken, "{\"limits\": {\"max_kld_mean\": 0.1,}}");
  r = check(broken);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("invalid JSON at line 1, column 33"), std::string::npos) << r.err;
}

TEST_F(CliCheck, InputErrorsExitOneUsageErrorsTwo) {
  const std::string b = budget(passing_limits());
  // A bad input is exit 1 like in every command (the message names it); 2 is a usage error.
  CliRun r = check(tmp_.file("missing-budget.json"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("missing-budget.json"), std::string::npos) << r.err;
  r = run_dsq(tmp_, shell_args({"check", tmp_.file("no-model.dsq"), "--from-report", report_, "--budget", b}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no-model.dsq': no such file or directory"), std::string::npos) << r.err;
  r = run_dsq(tmp_, shell_args({"check", model_, "--from-report", tmp_.file("none.json"), "--budget", b}));
  EXPECT_EQ(r.code, 1);
  r = run_dsq(tmp_, shell_args({"check", model_, "--from-report", report_}));  // no --budget
  EXPECT_EQ(r.code, 2);
  r = run_dsq(tmp_, shell_args({"check", model_, "--budget", b, "--tokens", "a.u32", "--text", "a.txt"}));
  EXPECT_EQ(r.code, 2);
}

TEST_F(CliCheck, MissingMetricFailsClosed) {
  json j = eval_fixture_for("gptq");
  j.erase("kld_p99");
  report::write_file_atomic(report_, j.dump());
  // No MODEL: the file size is unknown too.
  const CliRun r = run_dsq(tmp_, shell_args({"check", "--from-report", report_, "--budget",
                                     budget(passing_limits())}));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("kld_p99 is not in the eval report"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("file_bytes unknown"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 of 7 limits exceeded"), std::string::npos) << r.out;
}

// The real model: stories260K checked against itself (other format) passes a zero budget; its
// W3 g32 RTN quantization passes a loose budget and fails a tight KLD limit.
TEST(CliCheckStories260K, GatesARealQuantizedModel) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf";
  const std::string gguf = shared + "/models/stories260K/stories260K.gguf";
  const std::vector<std::string> data = {
      "--tokens", shared + "/data/tinystories-eval.stories260K.u32", "--ctx", "512", "--bos",
      "--max-tokens", "1536"};
  const auto gate = [&](const std::string& model, const json& limits) {
    const std::string b = tmp.file("budget.json");
    report::write_file_atomic(b, json{{"limits", limits}}.dump());
    std::vector<std::string> args = {"-q", "check", model, "--ref", hf, "--budget", b,
                                     "--junit", tmp.file("gate.xml")};
    args.insert(args.end(), data.begin(), data.end());
    return run_dsq(tmp, shell_args(args));
  };
  CliRun r = gate(gguf, {{"max_kld_mean", 0},
                         {"min_top1_agreement", 1},
                         {"max_ppl_ratio", 1},
                         {"max_layer_rel_error", json::array({{{"pattern", "blk.*"}, {"max", 0}}})}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all 4 limits hold"), std::string::npos) << r.out;

  const std::string w3 = tmp.file("w3.dsq");
  r = run_dsq(tmp, shell_args({"-q", "quantize", hf, "-o", w3, "--bits", "3", "--group", "32"}));
  ASSERT_EQ(r.code, 0) << r.err;
  json loose = {{"max_kld_mean", 2.0},        {"max_kld_p99", 20.0},
                {"min_top1_agreement", 0.3},  {"max_ppl_ratio", 3.0},
                {"max_bits_per_weight", 4.0}, {"max_file_bytes", 400000},
                {"max_layer_rel_error", json::array({{{"pattern", "blk.*"}, {"max", 1.0}}})}};
  r = gate(w3, loose);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  loose["max_kld_mean"] = 0.05;  // W3 RTN drifts far more than this (about 0.5 nats/token)
  r = gate(w3, loose);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  const size_t row = r.out.find("max_kld_mean ");
  ASSERT_NE(row, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(row, r.out.find('\n', row) - row).find("FAIL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 of 7 limits exceeded"), std::string::npos) << r.out;
  const auto root = XmlParser::parse(read_text(tmp.file("gate.xml")));
  EXPECT_EQ(root->all("testcase").size(), 7u);
  ASSERT_EQ(root->all("failure").size(), 1u);
}

}  // namespace
}  // namespace dsq::testing
