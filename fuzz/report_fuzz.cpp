// The JSON dsq reads back from users: error budgets (`dsq check --budget`) and the eval / check /
// quantize reports `dsq report` renders.
#include "fuzz/fuzz_util.h"
#include "lib/core/json_io.h"
#include "lib/report/budget.h"
#include "lib/report/html_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean([&] {
    const nlohmann::json j = parse_json(text, "input.json");
    fuzz::expect_clean([&] {
      const report::Budget b = report::parse_budget(j, "budget.json");
      (void)report::check_budget(b, j, report::ModelFacts{});
    });
    fuzz::expect_clean([&] {
      report::Run run;
      report::merge_report(run, j, "report.json");
      (void)report::render_report_html({run}, {});
    });
  });
  return 0;
}
