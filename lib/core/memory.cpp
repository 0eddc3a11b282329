#include "lib/core/memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

namespace dsq {

void advise_huge_pages(void* p, size_t bytes) noexcept {
  if (p == nullptr || bytes < kHugePageMinBytes) return;
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + bytes) & ~(kHuge - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

void return_large_blocks_to_os() noexcept {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_")) return;
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThresholdBytes));
}

}  // namespace dsq
