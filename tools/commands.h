// The CLI's subcommand table. Each tools/cmd_<name>.cpp defines one `Command` and has four jobs:
// fill the library's <Name>Options, validate them, make one library call, print a summary.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace dsq::tools {

struct Command {
  const char* name;
  const char* help;
  // Binds the subcommand's flags to the command's options (which live in its .cpp file).
  void (*add_options)(CLI::App& sub);
  // Runs after parsing; returns the process exit code. Throws dsq::Error on bad input.
  int (*run)();
};

// Defined in each cmd_<name>.cpp.
extern const Command kConvertCommand;
extern const Command kInspectCommand;
extern const Command kQuantizeCommand;
extern const Command kCheckCommand;
extern const Command kReportCommand;
extern const Command kEvalCommand;
extern const Command kGenerateCommand;
extern const Command kPruneCommand;
extern const Command kSparsifyCommand;

}  // namespace dsq::tools
