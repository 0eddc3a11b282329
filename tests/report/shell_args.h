// Quotes command-line arguments for tests/tools/cli_run.h's run_dsq (which goes through the shell),
// so paths and JSON with spaces, quotes or '=' arrive unchanged.
#pragma once

#include <string>
#include <vector>

namespace dsq::testing {

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string shell_args(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + shell_quote(a);
  return out;
}

}  // namespace dsq::testing
