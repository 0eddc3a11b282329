// Running the built `dsq` binary from a test: exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/test_util.h"

namespace dsq::testing {

struct CliRun {
  int code;  // exit status (-1 when killed by a signal)
  std::string out, err;
};

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Runs `dsq <args>` (args go through the shell) with stdout/stderr captured in files of tmp;
// `launcher` goes before the binary (e.g. "mpirun -n 2 ").
inline CliRun run_dsq(const TempDir& tmp, const std::string& args,
                      const std::string& launcher = "") {
  const std::string o = tmp.file("stdout.txt"), e = tmp.file("stderr.txt");
  const int st =
      std::system((launcher + dsq_binary() + " " + args + " >" + o + " 2>" + e).c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_text(o), read_text(e)};
}

}  // namespace dsq::testing
