// Budget files: validation with JSON-pointer messages, and checking eval reports against limits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "lib/core/error.h"
#include "lib/report/budget.h"
#include "lib/report/report_io.h"
#include "tests/test_util.h"

namespace dsq::report {
namespace {

using nlohmann::json;

// An eval report shaped like `dsq eval --json` output: five blocks whose drift grows with depth.
json eval_fixture() {
  json layers = json::array();
  const double rel[] = {0.004, 0.009, 0.015, 0.022, 0.031};
  for (int i = 0; i < 5; ++i)
    layers.push_back({{"layer", i}, {"rel_l2", rel[i]}, {"cosine", 1 - rel[i] * rel[i] / 2}});
  return {{"perplexity", 3.8301},   {"ref_perplexity", 3.7698}, {"tokens_scored", 4087},
          {"kld_mean", 0.00412},    {"kld_stderr", 0.00011},    {"kld_p99", 0.0457},
          {"kld_max", 0.3125},      {"top1_agreement", 0.9713}, {"tokens_per_second", 15321.0},
          {"bits_per_weight", 4.5}, {"layers", layers}};
}

// A budget that the fixture meets, with every kind of limit.
json passing_budget() {
  return {{"name", "stories260K w4"},
          {"limits",
           {{"max_kld_mean", 0.005},
            {"max_kld_p99", 0.05},
            {"min_top1_agreement", 0.97},
            {"max_ppl_ratio", 1.02},
            {"max_bits_per_weight", 4.5},
            {"max_file_bytes", 500000},
            {"max_layer_rel_error",
             json::array({{{"pattern", "blk.*"}, {"max", 0.05}},
                          {{"pattern", "blk.0"}, {"max", 0.004}}})}}}};
}

ModelFacts facts() {
  ModelFacts f;
  f.file_bytes = 400000;
  return f;
}

std::string parse_error(const json& j) {
  try {
    parse_budget(j, "budget.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Budget, ParsesEveryLimit) {
  const Budget b = parse_budget(passing_budget(), "b.json");
  EXPECT_EQ(b.name, "stories260K w4");
  EXPECT_DOUBLE_EQ(*b.max_kld_mean, 0.005);
  EXPECT_DOUBLE_EQ(*b.max_kld_p99, 0.05);
  EXPECT_DOUBLE_EQ(*b.min_top1_agreement, 0.97);
  EXPECT_DOUBLE_EQ(*b.max_ppl_ratio, 1.02);
  EXPECT_DOUBLE_EQ(*b.max_bits_per_weight, 4.5);
  EXPECT_EQ(*b.max_file_bytes, 500000);
  ASSERT_EQ(b.max_layer_rel_error.size(), 2u);
  EXPECT_EQ(b.max_layer_rel_error[1].pattern, "blk.0");
  EXPECT_DOUBLE_EQ(b.max_layer_rel_error[1].max, 0.004);
  // Integers written as floats are accepted for byte counts.
  EXPECT_EQ(*parse_budget(json::parse(R"({"limits":{"max_file_bytes":2e6}})"), "b").max_file_bytes,
            2000000);
}

TEST(Budget, MalformedFieldsNameTheirJsonPointer) {
  const struct {
    const char* doc;
    const char* message;
  } cases[] = {
      {R"({"limits":{"max_kld_mean":"0.1"}})",
       "'budget.json': /limits/max_kld_mean: expected a number, got string"},
      {R"({"limits":{"max_kld_maen":0.1}})", "/limits/max_kld_maen: unknown key 'max_kld_maen'"},
      {R"({"limts":{"max_kld_mean":0.1}})", "/limts: unknown key 'limts'"},
      {R"({"name":"x"})", "'budget.json': /: missing required key 'limits'"},
      {R"([1,2])", "/: expected an object, got array"},
      {R"({"limits":[]})", "/limits: expected an object, got array"},
      {R"({"limits":{}})", "/limits: no limits set"},
      {R"({"name":3,"limits":{"max_kld_mean":0.1}})", "/name: expected a string, got number"},
      {R"({"limits":{"max_kld_p99":-1}})", "/limits/max_kld_p99: expected a number >= 0, got -1"},
      {R"({"limits":{"min_top1_agreement":1.5}})",
       "/limits/min_top1_agreement: expected a number in [0, 1], got 1.5"},
      {R"({"limits":{"max_ppl_ratio":null}})", "/limits/max_ppl_ratio: expected a number, got null"},
      {R"({"limits":{"max_bits_per_weight":true}})",
       "/limits/max_bits_per_weight: expected a number, got boolean"},
      {R"({"limits":{"max_file_bytes":1.5}})",
       "/limits/max_file_bytes: expected an integer, got 1.5"},
      {R"({"limits":{"max_layer_rel_error":{"pattern":"blk.*","max":1}}})",
       "/limits/max_layer_rel_error: expected an array, got object"},
      {R"({"limits":{"max_layer_rel_error":[]}})", "/limits/max_layer_rel_error: expected at least"},
      {R"({"limits":{"max_layer_rel_error":[{"pattern":"a","max":1},{"pattern":"b"}]}})",
       "/limits/max_layer_rel_error/1: missing required key 'max'"},
      {R"({"limits":{"max_layer_rel_error":[{"pattern":7,"max":1}]}})",
       "/limits/max_layer_rel_error/0/pattern: expected a string, got number"},
      {R"({"limits":{"max_layer_rel_error":[{"pattern":"","max":1}]}})",
       "/limits/max_layer_rel_error/0/pattern: expected a non-empty string"},
      {R"({"limits":{"max_layer_rel_error":[{"pattern":"a","max":"0.1"}]}})",
       "/limits/max_layer_rel_error/0/max: expected a number, got string"},
      {R"({"limits":{"max_layer_rel_error":[{"pattern":"a","max":1,"min":0}]}})",
       "/limits/max_layer_rel_error/0/min: unknown key 'min'"},
      {R"({"limits":{"max_layer_rel_error":["blk.*"]}})",
       "/limits/max_layer_rel_error/0: expected an object, got string"},
      // JSON pointer escaping (RFC 6901): '/' -> ~1, '~' -> ~0.
      {R"({"limits":{"a/b~c":1}})", "/limits/a~1b~0c: unknown key 'a/b~c'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.doc);
    EXPECT_NE(parse_error(json::parse(c.doc)).find(c.message), std::string::npos)
        << parse_error(json::parse(c.doc));
  }
}

TEST(Budget, LoadReportsFileErrors) {
  testing::TempDir tmp;
  EXPECT_THROW(load_budget(tmp.file("missing.json")), IoError);
  const std::string bad = tmp.file("bad.json");
  std::ofstream(bad) << "{\n  \"limits\": {\n    \"max_kld_mean\": 0.1,\n  }\n}\n";
  try {
    load_budget(bad);
    FAIL() << "no error for invalid JSON";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON at line 4, column 3"), std::string::npos)
        << e.what();
  }
  const std::string good = tmp.file("good.json");
  std::ofstream(good) << passing_budget().dump(2);
  EXPECT_EQ(load_budget(good).source, good);
}

TEST(Budget, PassingReportPassesEveryLimit) {
  const Budget b = parse_budget(passing_budget(), "b.json");
  const auto results = check_budget(b, eval_fixture(), facts());
  ASSERT_EQ(results.size(), 8u);
  for (const auto& r : results) EXPECT_TRUE(r.passed) << r.name << ": " << r.message;
  EXPECT_TRUE(all_passed(results));
  // Order: scalar limits in table order, then layer limits in file order.
  const char* names[] = {"max_kld_mean",        "max_kld_p99",    "min_top1_agreement",
                         "max_ppl_ratio",       "max_bits_per_weight", "max_file_bytes",
                         "max_layer_rel_error[blk.*]", "max_layer_rel_error[blk.0]"};
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i].name, names[i]);
  EXPECT_NEAR(*results[3].measured, 3.8301 / 3.7698, 1e-12);  // ppl ratio derived
  EXPECT_DOUBLE_EQ(*results[5].measured, 400000);
  EXPECT_DOUBLE_EQ(*results[6].measured, 0.031);
  EXPECT_EQ(results[6].detail, "worst blk.4 of 5");
  EXPECT_EQ(results[7].detail, "worst blk.0 of 1");
}

// Tightens one limit just below the fixture's value: only that limit fails, and says why.
TEST(Budget, EachExceededLimitFailsAlone) {
  const struct {
    const char* key;
    json value;
    const char* name;
    const char* message;
  } cases[] = {
      {"max_kld_mean", 0.0041, "max_kld_mean", "kld_mean = 0.00412 > budget 0.0041"},
      {"max_kld_p99", 0.045, "max_kld_p99", "kld_p99 = 0.0457 > budget 0.045"},
      {"min_top1_agreement", 0.98, "min_top1_agreement", "top1_agreement = 0.9713 < budget 0.98"},
      {"max_ppl_ratio", 1.01, "max_ppl_ratio", "ppl_ratio = 1.016 > budget 1.01"},
      {"max_bits_per_weight", 4.25, "max_bits_per_weight", "bits_per_weight = 4.5 > budget 4.25"},
      {"max_file_bytes", 399999, "max_file_bytes", "file_bytes = 400000 > budget 399999"},
      {"max_layer_rel_error", json::array({{{"pattern", "blk.*"}, {"max", 0.03}}}),
       "max_layer_rel_error[blk.*]", "layer blk.4 rel_l2 = 0.031 > budget 0.03"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    json bj = passing_budget();
    bj["limits"][c.key] = c.value;
    const auto results = check_budget(parse_budget(bj, "b.json"), eval_fixture(), facts());
    EXPECT_EQ(count_failed(results), 1);
    for (const auto& r : results) {
      if (r.name != c.name) {
        EXPECT_TRUE(r.passed) << r.name;
        continue;
      }
      EXPECT_FALSE(r.passed);
      EXPECT_NE(r.message.find(c.message), std::string::npos) << r.message;
    }
    const std::string table = format_results_table(results);
    const std::string summary = "1 of " + std::to_string(results.size()) + " limits exceeded";
    EXPECT_NE(table.find(summary), std::string::npos) << table;
    EXPECT_NE(table.find("FAIL"), std::string::npos);
  }
}

TEST(Budget, LimitsAreInclusive) {
  const json bj = {{"limits",
                    {{"max_kld_mean", 0.00412},
                     {"min_top1_agreement", 0.9713},
                     {"max_layer_rel_error", json::array({{{"pattern", "blk.4"}, {"max", 0.031}}})}}}};
  EXPECT_TRUE(all_passed(check_budget(parse_budget(bj, "b"), eval_fixture(), {})));
}

TEST(Budget, MissingOrNanMetricsFailClosed) {
  json report = eval_fixture();
  report.erase("kld_p99");
  report.erase("bits_per_weight");
  report["kld_mean"] = nullptr;  // what nlohmann writes for NaN
  report["layers"][2]["rel_l2"] = nullptr;
  const Budget b = parse_budget(passing_budget(), "b.json");
  const auto results = check_budget(b, report, {});  // no file facts either
  std::map<std::string, std::string> failed;
  for (const auto& r : results)
    if (!r.passed) failed[r.name] = r.message;
  EXPECT_EQ(failed.size(), 5u);
  EXPECT_EQ(failed["max_kld_mean"], "kld_mean is not in the eval report");
  EXPECT_EQ(failed["max_kld_p99"], "kld_p99 is not in the eval report");
  EXPECT_EQ(failed["max_bits_per_weight"], "bits_per_weight is not in the eval report");
  EXPECT_EQ(failed["max_file_bytes"], "file_bytes unknown (no model file given)");
  EXPECT_EQ(failed["max_layer_rel_error[blk.*]"], "layer blk.2 rel_l2 is missing or NaN");

  // The model facts fill in what the report lacks; a NaN measured value fails.
  ModelFacts f;
  f.bits_per_weight = 4.4;
  f.file_bytes = 10;
  report = eval_fixture();
  report.erase("bits_per_weight");
  for (const auto& r : check_budget(b, report, f))
    EXPECT_TRUE(r.passed) << r.name;
  f.bits_per_weight = std::numeric_limits<double>::quiet_NaN();
  for (const auto& r : check_budget(b, report, f)) {
    if (r.name == "max_bits_per_weight") {
      EXPECT_EQ(r.message, "bits_per_weight is NaN");
    }
  }
}

TEST(Budget, LayerPatternsMatchWholeNames) {
  json report = eval_fixture();
  for (int i = 5; i < 12; ++i)
    report["layers"].push_back({{"layer", i}, {"rel_l2", 0.04 + i * 0.001}, {"cosine", 0.99}});
  const auto check = [&](const char* pattern, double max) {
    const json bj = {{"limits",
                      {{"max_layer_rel_error",
                        json::array({{{"pattern", pattern}, {"max", max}}})}}}};
    return check_budget(parse_budget(bj, "b"), report, {}).at(0);
  };
  EXPECT_EQ(check("blk.1?", 1).detail, "worst blk.11 of 2");  // blk.10, blk.11
  EXPECT_EQ(check("blk.1*", 1).detail, "worst blk.11 of 3");  // blk.1, blk.10, blk.11
  EXPECT_EQ(check("*", 1).detail, "worst blk.11 of 12");
  EXPECT_EQ(check("blk.[0-2]", 1).message, "pattern 'blk.[0-2]' matches none of the 12 layers");
  EXPECT_FALSE(check("blk", 1).passed);  // not a prefix match
  // String layer names are used as they are.
  report["layers"] = json::array({{{"layer", "output_norm"}, {"rel_l2", 0.2}}});
  EXPECT_FALSE(check("output_*", 0.1).passed);
  EXPECT_TRUE(check("output_*", 0.2).passed);
  report.erase("layers");
  EXPECT_EQ(check("*", 1).message, "the eval report has no per-layer drift");
}

TEST(Budget, GlobMatch) {
  EXPECT_TRUE(glob_match("blk.*", "blk.3"));
  EXPECT_TRUE(glob_match("blk.*", "blk."));
  EXPECT_FALSE(glob_match("blk.*", "blk"));
  EXPECT_TRUE(glob_match("*.ffn_*", "blk.3.ffn_down"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("?", "x"));
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_TRUE(glob_match("**", ""));
  EXPECT_FALSE(glob_match("blk.3", "blk.30"));
}

TEST(Budget, ResultsJson) {
  json bj = passing_budget();
  bj["limits"]["max_kld_mean"] = 0.001;
  const Budget b = parse_budget(bj, "b.json");
  const json j = results_to_json(b, check_budget(b, eval_fixture(), facts()));
  EXPECT_EQ(j["budget"], "b.json");
  EXPECT_EQ(j["name"], "stories260K w4");
  EXPECT_FALSE(j["passed"].get<bool>());
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["limits"].size(), 8u);
  EXPECT_EQ(j["limits"][0]["name"], "max_kld_mean");
  EXPECT_EQ(j["limits"][0]["op"], "<=");
  EXPECT_DOUBLE_EQ(j["limits"][0]["measured"].get<double>(), 0.00412);
  EXPECT_FALSE(j["limits"][0]["passed"].get<bool>());
  EXPECT_EQ(j["limits"][2]["op"], ">=");
}

// The schema in docs/ and the parser accept the same limit names; the example budget parses.
TEST(Budget, SchemaAndExampleMatchTheParser) {
  const json schema = read_json_file(std::string(DSQ_SOURCE_DIR) + "/docs/budget.schema.json");
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_FALSE(schema["additionalProperties"].get<bool>());
  const json& props = schema["properties"]["limits"]["properties"];
  std::vector<std::string> names;
  for (auto it = props.begin(); it != props.end(); ++it) names.push_back(it.key());
  std::vector<std::string> expected(kScalarLimitNames.begin(), kScalarLimitNames.end());
  expected.push_back("max_layer_rel_error");
  std::sort(names.begin(), names.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected);
  EXPECT_FALSE(schema["properties"]["limits"]["additionalProperties"].get<bool>());
  const Budget ex = load_budget(std::string(DSQ_SOURCE_DIR) + "/examples/budget.json");
  EXPECT_TRUE(ex.max_kld_mean && ex.min_top1_agreement && !ex.max_layer_rel_error.empty());
}

}  // namespace
}  // namespace dsq::report
