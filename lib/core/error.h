// Errors: bad input throws a dsq::Error subclass; bugs abort through DSQ_ASSERT.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dsq {

// A message as every Error carries it: one line (control characters become spaces) of at most
// kMaxErrorChars (the middle of a longer one is cut to " ... "). The backstop for values an input
// puts into a message (a 5,000-byte shard name, a megabyte-long tensor name): readers quote short
// excerpts (lib/core/json_io.h), and whatever they miss still prints as one readable line.
inline constexpr size_t kMaxErrorChars = 2000;
std::string one_line_message(const std::string& msg);
// The first / last bytes of s, at most max, cut between UTF-8 characters, never inside one
// (messages are serialized as JSON, which rejects a broken sequence).
std::string_view utf8_prefix(std::string_view s, size_t max);
std::string_view utf8_suffix(std::string_view s, size_t max);

// Base of every input error. Messages start lower case, have no final period, and quote the
// file and tensor involved (see docs/STYLE in ../shared/docs/STYLE.md, section 3).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(one_line_message(msg)) {}
};
// A file whose bytes do not follow its format (bad magic, truncation, bad offsets, unknown dtype).
class FormatError : public Error {
 public:
  using Error::Error;
};
// Shapes that disagree with each other or with a config.
class ShapeError : public Error {
 public:
  using Error::Error;
};
// A config (config.json, recipe, budget) that is missing fields or contradicts itself.
class ConfigError : public Error {
 public:
  using Error::Error;
};
// The operating system refused: missing file, permission, disk full.
class IoError : public Error {
 public:
  using Error::Error;
};
// Bad command-line usage that is only detectable inside the library (exit code 2).
class UsageError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void assert_fail(const char* file, int line, const char* cond, const std::string& msg);

// printf-style formatting into a std::string.
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dsq

// Always-on invariant check for bugs (never for bad input). Aborts with file:line.
#define DSQ_ASSERT(cond, ...)                                                                   \
  do {                                                                                          \
    if (!(cond)) ::dsq::assert_fail(__FILE__, __LINE__, #cond, ::dsq::strprintf("" __VA_ARGS__)); \
  } while (0)

#ifdef NDEBUG
#define DSQ_DASSERT(cond, ...) ((void)0)
#else
#define DSQ_DASSERT(cond, ...) DSQ_ASSERT(cond, __VA_ARGS__)
#endif
