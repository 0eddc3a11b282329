#include "lib/report/junit.h"

#include "lib/core/error.h"
#include "lib/report/report_io.h"

namespace dsq::report {

std::string junit_xml(const std::vector<LimitResult>& results, const JunitOptions& opt) {
  const auto attr = [](const std::string& s) { return escape_markup(s, true); };
  const int failed = count_failed(results);
  const std::string counts = strprintf("tests=\"%zu\" failures=\"%d\" errors=\"0\" skipped=\"0\"",
                                       results.size(), failed);
  const std::string time = strprintf("time=\"%.3f\"", opt.time_seconds);
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<testsuites name=\"" + attr(opt.suite_name) + "\" " + counts + " " + time + ">\n";
  x += "  <testsuite name=\"" + attr(opt.suite_name) + "\" " + counts + " " + time + ">\n";
  if (!opt.properties.empty()) {
    x += "    <properties>\n";
    for (const auto& [k, v] : opt.properties)
      x += "      <property name=\"" + attr(k) + "\" value=\"" + attr(v) + "\"/>\n";
    x += "    </properties>\n";
  }
  for (const auto& r : results) {
    x += "    <testcase classname=\"" + attr(opt.classname) + "\" name=\"" + attr(r.name) +
         "\" time=\"0\"";
    if (r.passed) {
      x += "/>\n";
      continue;
    }
    std::string body = "limit: " + r.name + " (" + r.metric + " " + (r.at_least ? ">=" : "<=") +
                       " " + format_number(r.budget, 6) + ")\nmeasured: " +
                       (r.measured ? format_number(*r.measured, 6) : std::string("missing"));
    if (!r.detail.empty()) body += "\ndetail: " + r.detail;
    x += ">\n      <failure message=\"" + attr(r.message) + "\" type=\"limit_exceeded\">" +
         escape_markup(body) + "</failure>\n    </testcase>\n";
  }
  if (!opt.system_out.empty())
    x += "    <system-out>" + escape_markup(opt.system_out) + "</system-out>\n";
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

}  // namespace dsq::report
