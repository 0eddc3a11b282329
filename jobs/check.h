// `dsq check`: the CI gate. Evaluates MODEL against REF (or reads an eval report), checks the
// error budget (lib/report/budget.h) and writes the JSON and JUnit reports. Exit codes follow every
// command's convention: 0 all limits hold, 1 a limit is exceeded or an input is bad (its one-line
// message says which), 2 a usage error. The JUnit file, written only when the check ran, tells CI
// which limit failed.
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
