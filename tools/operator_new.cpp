// The program's replaceable allocation functions: malloc and free as the standard library's own,
// plus a transparent-huge-page hint for large blocks (lib/core/memory.h), so that every large
// std::vector the calibration pipeline allocates is faulted in 2 MiB at a time. Linked into the
// dsq executable and the benchmarks only; sanitizer builds keep their own allocator.
#include <cstdlib>
#include <new>

#include "lib/core/memory.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define DSQ_KEEP_DEFAULT_NEW 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DSQ_KEEP_DEFAULT_NEW 1
#endif

#ifndef DSQ_KEEP_DEFAULT_NEW
namespace {
void* allocate(std::size_t n) noexcept {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p) dsq::advise_huge_pages(p, n);
  return p;
}
void* allocate_or_throw(std::size_t n) {
  while (true) {
    if (void* p = allocate(n)) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) throw std::bad_alloc();
    h();
  }
}
}  // namespace

void* operator new(std::size_t n) { return allocate_or_throw(n); }
void* operator new[](std::size_t n) { return allocate_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#endif
