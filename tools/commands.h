// The CLI's subcommand table. Each tools/cmd_<name>.cpp defines one `Command` and has four jobs:
// fill the library's <Name>Options, validate them, make one library call, print a summary.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "jobs/convert.h"

namespace dsq::tools {

struct Command {
  const char* name;
  const char* help;
  // Binds the subcommand's flags to the command's options (which live in its .cpp file).
  void (*add_options)(CLI::App& sub);
  // Runs after parsing; returns the process exit code. Throws dsq::Error on bad input.
  int (*run)();
};

// Numeric flag checks whose messages print the bounds as written ("must be in [0, 1]", not
// CLI11's "0.000000 to 1.797693e+308" spelled out in 309 digits).
inline std::string bound_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
inline CLI::Validator range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(s, &used);
          if (used != s.size()) return "'" + s + "' is not a number";
        } catch (...) {
          return "'" + s + "' is not a number";
        }
        if (!(v >= lo && v <= hi))
          return "must be in [" + bound_str(lo) + ", " + bound_str(hi) + "], got " + s;
        return "";
      },
      "[" + bound_str(lo) + ", " + bound_str(hi) + "]");
}
inline CLI::Validator at_least(double lo) {
  return CLI::Validator(
      [lo](std::string& s) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(s, &used);
          if (used != s.size()) return "'" + s + "' is not a number";
        } catch (...) {
          return "'" + s + "' is not a number";
        }
        if (!(v >= lo)) return "must be at least " + bound_str(lo) + ", got " + s;
        return "";
      },
      ">= " + bound_str(lo));
}

// Defined in each cmd_<name>.cpp.
extern const Command kConvertCommand;
extern const Command kExportCommand;
extern const Command kInspectCommand;
extern const Command kQuantizeCommand;
extern const Command kCheckCommand;
extern const Command kReportCommand;
extern const Command kEvalCommand;
extern const Command kGenerateCommand;
extern const Command kPruneCommand;
extern const Command kSparsifyCommand;
extern const Command kDistillCommand;
extern const Command kTrainCommand;

// The summary convert and export print ("converted" / "exported").
void print_convert_summary(const jobs::ConvertReport& r, const char* verb);

}  // namespace dsq::tools
