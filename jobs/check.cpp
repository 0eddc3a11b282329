#include "jobs/check.h"

#include <chrono>
#include <utility>

#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/report/junit.h"
#include "lib/report/report_io.h"

namespace dsq::jobs {
namespace {

// The evaluation step: one call producing an eval report (keys as `dsq eval --json`).
nlohmann::json evaluate(CheckOptions& o) {
  if (!o.from_report.empty()) {
    nlohmann::json j = report::read_json_file(o.from_report);
    if (!j.is_object())
      throw FormatError("'" + o.from_report + "': not an eval report (expected a JSON object)");
    return j;
  }
  if (o.eval.model.empty() || o.eval.ref.empty())
    throw UsageError("MODEL and --ref are required (or --from-report EVAL.json)");
  if (o.eval.text_file.empty() == o.eval.tokens_file.empty())
    throw UsageError("give one of --text or --tokens");
  return model::to_json(run_eval(o.eval));
}

}  // namespace

CheckResult run_check(CheckOptions o) {
  const auto t0 = std::chrono::steady_clock::now();
  {  // every input and destination before the evaluation (which may take long)
    IoPlan io;
    io.input(o.eval.model);
    io.input(o.eval.ref);
    io.input(o.eval.tokens_file);
    io.input(o.eval.text_file);
    io.input(o.budget);
    io.input(o.from_report);
    io.output(o.json_path, "--json");
    io.output(o.junit_path, "--junit");
    io.check();
  }
  const report::Budget budget = report::load_budget(o.budget);
  nlohmann::json eval = evaluate(o);
  report::ModelFacts facts;
  if (!o.eval.model.empty()) facts = report::model_facts(o.eval.model);
  CheckResult r;
  r.results = report::check_budget(budget, eval, facts);
  r.table = report::format_results_table(r.results);
  {
    if (!o.json_path.empty()) {
      eval["check"] = report::results_to_json(budget, r.results);
      write_json_file(o.json_path, eval);
    }
    if (!o.junit_path.empty()) {
      report::JunitOptions j;
      if (!budget.name.empty()) j.suite_name = budget.name;
      j.time_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& [k, v] : {std::pair<const char*, const std::string*>{"model", &o.eval.model},
                                 {"ref", &o.eval.ref}, {"budget", &o.budget},
                                 {"from_report", &o.from_report}})
        if (!v->empty()) j.properties.emplace_back(k, *v);
      j.system_out = r.table;
      report::write_file_atomic(o.junit_path, report::junit_xml(r.results, j));
    }
  }
  return r;
}

}  // namespace dsq::jobs
