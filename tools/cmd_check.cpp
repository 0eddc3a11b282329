// dsq check MODEL --ref REF --budget BUDGET.json (--text FILE | --tokens FILE) [--ctx N] [--bos]
//           [--max-tokens N] [--json OUT] [--junit OUT.xml]
//           dsq check [MODEL] --from-report EVAL.json --budget BUDGET.json ...
// The CI gate: exit 0 when every limit holds, 1 when any is exceeded, 2 for usage or input errors
// of any kind (jobs/check.h).
#include <cstdio>
#include <string>

#include "jobs/check.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

jobs::CheckOptions g_opts;

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

int run() {
  g_opts.eval.progress = !quiet();
  const jobs::CheckResult r = jobs::run_check(g_opts);
  std::fputs(r.table.c_str(), stdout);
  return r.passed() ? 0 : 1;
}

}  // namespace

const Command kCheckCommand = {
    "check", "CI gate: evaluate against a reference and enforce an error budget (exit 1 if exceeded)",
    add_options, run};

}  // namespace dsq::tools
