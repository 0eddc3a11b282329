// `dsq report`: one self-contained HTML page (inline CSS and SVG, no script, no network) comparing
// eval, check and quantize reports side by side (lib/report/html_report.h renders it).
#pragma once

#include <string>
#include <vector>

#include "lib/report/html_report.h"

namespace dsq::jobs {

struct ReportJobOptions {
  std::vector<std::string> inputs;  // FILE or LABEL=FILE (files with one label merge into a run)
  std::string out_path;             // the HTML file (written atomically)
  std::string title = "dsq report";
};

// Returns the runs rendered, in page order.
std::vector<report::Run> run_report(const ReportJobOptions& opts);

}  // namespace dsq::jobs
