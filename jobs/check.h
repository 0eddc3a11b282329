// `dsq check`: the CI gate. Evaluates MODEL against REF (or reads an eval report), checks the
// error budget (lib/report/budget.h) and writes the JSON and JUnit reports. Input errors of any
// kind (bad budget, missing model, unreadable data) are UsageErrors, so the CLI exits 2 for them
// and 1 only when a limit is exceeded: CI can tell "the model drifted" from "the job is
// misconfigured".
#pragma once

#include <string>
#include <vector>

#include "jobs/eval.h"
#include "lib/report/budget.h"

namespace dsq::jobs {

struct CheckOptions {
  EvalOptions eval;  // model, ref, text/tokens, ctx, bos, max_tokens, batch
  std::string budget, from_report, json_path, junit_path;
};

struct CheckResult {
  std::vector<report::LimitResult> results;
  std::string table;  // one row per limit (what the CLI prints)
  bool passed() const { return report::all_passed(results); }
};

CheckResult run_check(CheckOptions opts);

}  // namespace dsq::jobs
