#include "jobs/report.h"

namespace dsq::jobs {

std::vector<report::Run> run_report(const ReportJobOptions& opts) {
  report::ReportOptions r;
  r.out_path = opts.out_path;
  r.html.title = opts.title;
  for (const auto& a : opts.inputs) r.inputs.push_back(report::parse_run_argument(a));
  return report::write_report(r);
}

}  // namespace dsq::jobs
