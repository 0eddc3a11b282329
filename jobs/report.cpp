#include "jobs/report.h"

#include "jobs/job_util.h"

namespace dsq::jobs {

std::vector<report::Run> run_report(const ReportJobOptions& opts) {
  report::ReportOptions r;
  IoPlan io;
  r.out_path = opts.out_path;
  r.html.title = opts.title;
  for (const auto& a : opts.inputs) {
    r.inputs.push_back(report::parse_run_argument(a));
    io.input(r.inputs.back().path);
  }
  io.output(opts.out_path, "-o");
  io.check();
  return report::write_report(r);
}

}  // namespace dsq::jobs
