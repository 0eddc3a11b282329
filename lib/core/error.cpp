#include "lib/core/error.h"

#include <cstdarg>
#include <vector>

namespace dsq {

std::string one_line_message(const std::string& msg) {
  std::string s = msg;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (s.size() <= kMaxErrorChars) return s;
  // Cut between UTF-8 characters, never inside one: reports serialize messages as JSON.
  const auto continuation = [&](size_t i) {
    return (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
  };
  constexpr size_t kTail = 300;
  const std::string cut = " ... ";
  size_t head = kMaxErrorChars - kTail - cut.size(), tail = s.size() - kTail;
  while (head > 0 && continuation(head)) --head;
  while (tail < s.size() && continuation(tail)) ++tail;
  return s.substr(0, head) + cut + s.substr(tail);
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
