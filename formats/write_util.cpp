#include "formats/write_util.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lib/core/error.h"

namespace dsq::formats {

void pwrite_all(int fd, const void* p, size_t n, uint64_t at, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, c, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw IoError("'" + path + "': write failed: " + std::strerror(errno));
    c += w;
    n -= static_cast<size_t>(w);
    at += static_cast<uint64_t>(w);
  }
}

std::string name_sample(const std::vector<std::string>& names, size_t shown) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < shown; ++i) list += (i ? ", " : "") + names[i];
  if (names.size() > shown) list += " and " + std::to_string(names.size() - shown) + " more";
  return list;
}

}  // namespace dsq::formats
