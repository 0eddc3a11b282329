// JUnit XML for `dsq check`: one <testcase> per budget limit, so CI systems (GitHub Actions test
// reporters, GitLab's junit artifacts, Jenkins) list each limit with its pass/fail state.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "lib/report/budget.h"

namespace dsq::report {

struct JunitOptions {
  std::string suite_name = "dsq check";  // <testsuite name>; the budget's "name" when it has one
  std::string classname = "dsq.check";   // <testcase classname>
  double time_seconds = 0;               // wall time of the whole check (eval included)
  // <properties>: e.g. {"model", "q4.dsq"}, {"ref", "f32.gguf"}, {"budget", "budget.json"}.
  std::vector<std::pair<std::string, std::string>> properties;
  std::string system_out;  // the printed table, kept in <system-out>
};

// A well-formed UTF-8 XML document: <testsuites> with one <testsuite> holding one <testcase> per
// result; a failed limit has <failure message="..." type="limit_exceeded"> with the measured
// value, budget and detail as text. All text and attribute values are escaped (escape_markup).
std::string junit_xml(const std::vector<LimitResult>& results, const JunitOptions& opt);

}  // namespace dsq::report
