// Error budgets for CI: parse and validate a budget file, then check an eval report against it.
//
// A budget file is a JSON object (schema: docs/budget.schema.json, guide: docs/BUDGET.md):
//   {"$schema": "...", "name": "...", "description": "...",
//    "limits": {"max_kld_mean": 0.01, "max_kld_p99": 0.1, "min_top1_agreement": 0.95,
//               "max_ppl_ratio": 1.05, "max_bits_per_weight": 4.6, "max_file_bytes": 2000000,
//               "max_layer_rel_error": [{"pattern": "blk.*", "max": 0.05}]}}
// Every limit is optional but at least one must be set; unknown keys anywhere are errors.
// Limits are inclusive: a measured value equal to its budget passes. A metric the report does
// not contain, a NaN, or a layer pattern that matches no layer fails its limit (the gate fails
// closed), so a CI job never passes because a number went missing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsq::report {

// One per-layer limit: the largest relative L2 error (||h - h_ref|| / ||h_ref|| of a block's
// output hidden state) allowed for every layer whose name matches `pattern`.
struct LayerLimit {
  std::string pattern;  // glob over the whole layer name: '*' any run, '?' one character
  double max = 0;       // >= 0
};

struct Budget {
  std::string source;       // file name used in messages ("budget.json")
  std::string name;         // optional; names the JUnit test suite
  std::string description;  // optional, free text
  std::optional<double> max_kld_mean;
  std::optional<double> max_kld_p99;
  std::optional<double> min_top1_agreement;  // in [0, 1]
  std::optional<double> max_ppl_ratio;       // perplexity / ref_perplexity
  std::optional<double> max_bits_per_weight;
  std::optional<int64_t> max_file_bytes;
  std::vector<LayerLimit> max_layer_rel_error;  // in file order
};

// Validates `j` as a budget and returns it. Throws ConfigError whose message names the source
// and the JSON pointer of the bad field, e.g.
//   'budget.json': /limits/max_kld_mean: expected a number, got string
Budget parse_budget(const nlohmann::json& j, const std::string& source);
// Reads and parses a budget file (IoError when unreadable, FormatError when not JSON).
Budget load_budget(const std::string& path);

// The names of the scalar limits, in the order results are reported.
extern const std::vector<std::string_view> kScalarLimitNames;

// Facts about the checked model that the eval report may not carry.
struct ModelFacts {
  std::optional<int64_t> file_bytes;       // size of the model file (or directory contents)
  std::optional<double> bits_per_weight;   // used when the report has no "bits_per_weight"
};

// The size of a model on disk: a file's size, or the total of the regular files under a
// directory (an HF model directory). IoError when the path does not exist.
ModelFacts model_facts(const std::string& path);

struct LimitResult {
  std::string name;    // "max_kld_mean", or "max_layer_rel_error[blk.*]" for a layer limit
  std::string metric;  // what was measured: "kld_mean", "rel_l2 of blk.*"
  bool at_least = false;  // true: measured >= budget passes; false: measured <= budget passes
  double budget = 0;
  std::optional<double> measured;  // absent when the report lacks the metric
  std::string detail;  // e.g. "worst layer blk.3" (layer limits), empty otherwise
  bool passed = false;
  std::string message;  // why it failed; empty when passed
};

// Checks every limit of `budget` against an eval report (the JSON of `dsq eval --json`, keys
// kld_mean, kld_p99, top1_agreement, perplexity, ref_perplexity, ppl_ratio, bits_per_weight,
// layers [{layer, rel_l2, cosine}]) and the model facts. Results follow kScalarLimitNames order,
// then layer limits in file order. Layer names: an integer `layer` L is named "blk.L", a string
// `layer` (or `name`) is used as is.
std::vector<LimitResult> check_budget(const Budget& budget, const nlohmann::json& eval_report,
                                      const ModelFacts& facts);

bool all_passed(const std::vector<LimitResult>& results);
int count_failed(const std::vector<LimitResult>& results);

// A fixed-width text table: limit, measured, comparison, budget, pass/FAIL, detail; then a
// summary line ("all 6 limits hold" / "2 of 6 limits exceeded").
std::string format_results_table(const std::vector<LimitResult>& results);

// {"budget": source, "passed": bool, "failed": n, "limits": [{name, metric, op, budget,
// measured|null, passed, detail, message}]}: the "check" section of a `dsq check --json` report.
nlohmann::json results_to_json(const Budget& budget, const std::vector<LimitResult>& results);

// Glob match of the whole `name`: '*' matches any run of characters (dots included), '?' one.
bool glob_match(std::string_view pattern, std::string_view name);

}  // namespace dsq::report
