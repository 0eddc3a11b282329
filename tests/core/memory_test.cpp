// advise_huge_pages: a large advised buffer is really backed by transparent huge pages (read back
// from /proc/self/smaps), a small or null one is left alone.
#include "lib/core/memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace dsq {
namespace {

std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return s;
}

// AnonHugePages (kB) of the mapping that contains p, from /proc/self/smaps.
int64_t anon_huge_kb(const void* p) {
  std::ifstream f("/proc/self/smaps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(f, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= addr && addr < hi;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::stoll(line.substr(14));
  }
  return -1;
}

TEST(HugePages, LargeAdvisedBufferIsBackedByHugePages) {
  const std::string mode = thp_mode();
  if (mode.empty() || mode.find("[never]") != std::string::npos)
    GTEST_SKIP() << "transparent huge pages are disabled on this machine (" << mode << ")";
  constexpr size_t kBytes = size_t{64} << 20;
  // mmap, like glibc for blocks this size, so the mapping holds nothing else.
  void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  advise_huge_pages(p, kBytes);
  std::memset(p, 1, kBytes);
  const int64_t kb = anon_huge_kb(p);
  ::munmap(p, kBytes);
  // At least half the buffer in 2 MiB pages (the unaligned ends stay small; the kernel may be
  // short of free huge pages for a few).
  EXPECT_GE(kb, static_cast<int64_t>(kBytes / 2 / 1024)) << "THP mode: " << mode;
}

TEST(HugePages, SmallBuffersAndNullAreLeftAlone) {
  constexpr size_t kBytes = kHugePageMinBytes / 2;
  void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  advise_huge_pages(p, kBytes);
  std::memset(p, 1, kBytes);
  // "always" mode would give huge pages without any advice; only madvise mode shows the rule.
  if (thp_mode().find("[madvise]") != std::string::npos) {
    EXPECT_EQ(anon_huge_kb(p), 0);
  }
  ::munmap(p, kBytes);
  advise_huge_pages(nullptr, size_t{1} << 30);  // no effect, no crash
}

// ScratchFloats: zero-filled like a fresh vector, and the storage of a released buffer serves the
// next request it fits (no new allocation, so no new page faults), per thread.
TEST(ScratchFloats, ReusesReleasedStorageZeroFilled) {
  // No other test of core_tests takes scratch buffers, so this thread's pool holds only these.
  constexpr int64_t kN = 1237;
  float* first = nullptr;
  {
    ScratchFloats a(kN);
    ASSERT_EQ(a.size(), static_cast<size_t>(kN));
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i], 0.0f);
      a[i] = 1.0f;
    }
    first = a.data();
  }
  ScratchFloats b(kN);  // the smallest pooled buffer that fits: a's
  EXPECT_EQ(b.data(), first);
  for (float x : b) ASSERT_EQ(x, 0.0f);
  ScratchFloats c(kN);  // a's storage is in use by b
  EXPECT_NE(c.data(), first);
  ScratchFloats moved = std::move(c);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(moved.size(), static_cast<size_t>(kN));
  ScratchFloats empty;
  EXPECT_EQ(empty.size(), 0u);
  empty = std::move(moved);
  EXPECT_EQ(empty.size(), static_cast<size_t>(kN));
}

}  // namespace
}  // namespace dsq
