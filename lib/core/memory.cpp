#include "lib/core/memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace dsq {

void advise_huge_pages(void* p, size_t bytes) noexcept {
  if (p == nullptr || bytes < kHugePageMinBytes) return;
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + bytes) & ~(kHuge - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

void configure_malloc() noexcept {
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_"))
    ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThresholdBytes));
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_"))
    ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThresholdBytes));
}

namespace {

struct ScratchPool {
  std::vector<std::pair<size_t, std::unique_ptr<float[]>>> free;  // (capacity, storage)
};

ScratchPool& scratch_pool() {
  thread_local ScratchPool pool;
  return pool;
}

}  // namespace

ScratchFloats::ScratchFloats(int64_t n) : n_(static_cast<size_t>(std::max<int64_t>(n, 0))) {
  auto& free = scratch_pool().free;
  size_t best = free.size();
  for (size_t i = 0; i < free.size(); ++i)
    if (free[i].first >= n_ && (best == free.size() || free[i].first < free[best].first)) best = i;
  if (best < free.size()) {
    cap_ = free[best].first;
    p_ = std::move(free[best].second);
    free.erase(free.begin() + static_cast<std::ptrdiff_t>(best));
  } else {
    cap_ = std::max<size_t>(n_, 1);
    p_.reset(new float[cap_]);
  }
  std::memset(p_.get(), 0, n_ * sizeof(float));
}

ScratchFloats::~ScratchFloats() { release(); }

ScratchFloats::ScratchFloats(ScratchFloats&& o) noexcept
    : p_(std::move(o.p_)), n_(std::exchange(o.n_, 0)), cap_(std::exchange(o.cap_, 0)) {}

ScratchFloats& ScratchFloats::operator=(ScratchFloats&& o) noexcept {
  if (this != &o) {
    release();
    p_ = std::move(o.p_);
    n_ = std::exchange(o.n_, 0);
    cap_ = std::exchange(o.cap_, 0);
  }
  return *this;
}

void ScratchFloats::release() noexcept {
  if (!p_) return;
  auto& free = scratch_pool().free;
  try {
    free.emplace_back(cap_, std::move(p_));
  } catch (...) {  // no room to remember it: the storage is freed
    p_.reset();
  }
  if (free.size() > kScratchPoolSize) {  // drop the smallest
    const auto it = std::min_element(
        free.begin(), free.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    free.erase(it);
  }
  n_ = cap_ = 0;
}

}  // namespace dsq
