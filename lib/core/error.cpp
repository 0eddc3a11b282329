#include "lib/core/error.h"

#include <cstdarg>
#include <vector>

namespace dsq {

std::string one_line_message(const std::string& msg) {
  std::string s = msg;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (s.size() <= kMaxErrorChars) return s;
  constexpr size_t kTail = 300;
  const std::string_view cut = " ... ";
  return std::string(utf8_prefix(s, kMaxErrorChars - kTail - cut.size())) + std::string(cut) +
         std::string(utf8_suffix(s, kTail));
}

namespace {
bool utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
}  // namespace

std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && utf8_continuation(s[n])) --n;
  return s.substr(0, n);
}

std::string_view utf8_suffix(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t start = s.size() - max;
  while (start < s.size() && utf8_continuation(s[start])) ++start;
  return s.substr(start);
}

void assert_fail(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "dsq: internal error at %s:%d: %s%s%s\n", file, line, cond,
               msg.empty() ? "" : ": ", msg.c_str());
  std::abort();
}

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::vector<char> buf(static_cast<size_t>(n > 0 ? n : 0) + 1);
  std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
  va_end(ap2);
  return std::string(buf.data(), buf.size() - 1);
}

}  // namespace dsq
