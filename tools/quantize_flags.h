// `dsq quantize` flags of the methods' options: bound from the OptionSpec rows of the method table
// (calibration/methods.h, through jobs/quantize.h), so a method's new option is one row there and
// no code here. Output-changing options go to QuantizeOptions::method_options (recorded in the
// recipe), the pipeline's runtime options to method_runtime (not recorded).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "jobs/quantize.h"

namespace dsq::tools {

class MethodFlags {
 public:
  void bind(CLI::App& sub);
  // After parsing: the flags given, as the chosen method's options and the runtime options. A
  // flag the method does not take is a UsageError ("--damp does not apply to --method awq").
  void apply(jobs::QuantizeOptions& q) const;

 private:
  struct Slot {
    const jobs::OptionSpec* spec;
    CLI::Option* opt = nullptr;
    bool flag = false;
    int64_t i = 0;
    double d = 0.0;
    std::string s;
    std::vector<std::string> list;
  };
  std::vector<std::unique_ptr<Slot>> slots_;  // stable addresses for CLI11
};

}  // namespace dsq::tools
