// dsq report RUN.json... -o REPORT.html [--title TEXT]: one self-contained HTML page (inline CSS
// and SVG, no script, no network) comparing eval, check and quantize reports side by side.
#include <cstdio>
#include <string>
#include <vector>

#include "jobs/report.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

jobs::ReportJobOptions g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("runs", o.inputs,
                 "Reports from dsq eval/check/quantize --json; LABEL=FILE names the run (files "
                 "with the same label are merged into one run)")
      ->required();
  sub.add_option("-o,--output", o.out_path, "Output HTML file")->required();
  sub.add_option("--title", o.title, "Page title")->capture_default_str();
}

int run() {
  const std::vector<report::Run> runs = jobs::run_report(g_opts);
  std::string labels;
  for (const auto& r : runs) labels += (labels.empty() ? "" : ", ") + r.label;
  if (!quiet())
    std::printf("wrote '%s': %zu run%s (%s)\n", g_opts.out_path.c_str(), runs.size(),
                runs.size() == 1 ? "" : "s", labels.c_str());
  return 0;
}

}  // namespace

const Command kReportCommand = {
    "report", "Render eval/check/quantize JSON reports as one self-contained HTML page",
    add_options, run};

}  // namespace dsq::tools
