// dsq check MODEL --ref REF --budget BUDGET.json (--text FILE | --tokens FILE) [--ctx N] [--bos]
//           [--max-tokens N] [--json OUT] [--junit OUT.xml]
//           dsq check [MODEL] --from-report EVAL.json --budget BUDGET.json ...
// The CI gate: evaluates MODEL against REF (or reads an eval report), checks the error budget and
// prints one row per limit. Exit 0 when every limit holds, 1 when any is exceeded, 2 for usage or
// input errors of any kind (bad budget, missing model, unreadable data), so CI can tell "the model
// drifted" from "the job is misconfigured".
#include <chrono>
#include <cstdio>
#include <string>

#include "calibration/eval.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/report/budget.h"
#include "lib/report/junit.h"
#include "lib/report/report_io.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

struct {
  calibration::EvalOptions eval;  // model, ref, text/tokens, ctx, bos, max_tokens
  std::string budget, from_report, json_path, junit_path;
} g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  auto& e = o.eval;
  sub.add_option("model", e.model, "Compressed model to check (any format dsq reads)");
  sub.add_option("--ref", e.ref, "Reference model (e.g. the f32/f16 original)");
  sub.add_option("--budget", o.budget, "Budget file (docs/BUDGET.md)")->required();
  auto* text = sub.add_option("--text", e.text_file, "Evaluation text, tokenized with MODEL's tokenizer");
  auto* tokens = sub.add_option("--tokens", e.tokens_file, "Evaluation token ids (.u32, little-endian)");
  text->excludes(tokens);
  sub.add_option("--ctx", e.ctx, "Window length in ids (as dsq eval)")->capture_default_str();
  sub.add_flag("--bos", e.bos, "The stream starts with BOS (as dsq eval)");
  sub.add_option("--max-tokens", e.max_tokens, "Use only the first N ids of the stream (0 = all)");
  sub.add_option("--batch", e.batch, "Windows per forward pass")->capture_default_str();
  sub.add_option("--from-report", o.from_report,
                 "Check this `dsq eval --json` report instead of running the evaluation (MODEL, "
                 "when given, still supplies the file size)");
  sub.add_option("--json", o.json_path, "Write the eval report plus a \"check\" section here");
  sub.add_option("--junit", o.junit_path, "Write JUnit XML here (one test case per limit)");
}

// The evaluation step: one call producing an eval report (keys as `dsq eval --json`).
nlohmann::json evaluate() {
  auto& o = g_opts;
  if (!o.from_report.empty()) return report::read_json_file(o.from_report);
  if (o.eval.model.empty() || o.eval.ref.empty())
    throw UsageError("MODEL and --ref are required (or --from-report EVAL.json)");
  if (o.eval.text_file.empty() == o.eval.tokens_file.empty())
    throw UsageError("give one of --text or --tokens");
  o.eval.progress = !quiet();
  return calibration::to_json(calibration::run_eval(o.eval));
}

int run() {
  const auto& o = g_opts;
  const auto t0 = std::chrono::steady_clock::now();
  report::Budget budget;
  nlohmann::json eval;
  report::ModelFacts facts;
  try {
    budget = report::load_budget(o.budget);
    eval = evaluate();
    if (!o.eval.model.empty()) facts = report::model_facts(o.eval.model);
  } catch (const Error& e) {
    throw UsageError(e.what());  // input errors exit 2: 1 is reserved for an exceeded budget
  }
  const auto results = report::check_budget(budget, eval, facts);
  const std::string table = report::format_results_table(results);
  std::fputs(table.c_str(), stdout);
  try {
    if (!o.json_path.empty()) {
      eval["check"] = report::results_to_json(budget, results);
      report::write_file_atomic(o.json_path, eval.dump(2) + "\n");
    }
    if (!o.junit_path.empty()) {
      report::JunitOptions j;
      if (!budget.name.empty()) j.suite_name = budget.name;
      j.time_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& [k, v] : {std::pair<const char*, const std::string*>{"model", &o.eval.model},
                                 {"ref", &o.eval.ref}, {"budget", &o.budget},
                                 {"from_report", &o.from_report}})
        if (!v->empty()) j.properties.emplace_back(k, *v);
      j.system_out = table;
      report::write_file_atomic(o.junit_path, report::junit_xml(results, j));
    }
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  return report::all_passed(results) ? 0 : 1;
}

}  // namespace

const Command kCheckCommand = {
    "check", "CI gate: evaluate against a reference and enforce an error budget (exit 1 if exceeded)",
    add_options, run};

}  // namespace dsq::tools
