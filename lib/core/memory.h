// Large buffers on transparent huge pages.
//
// Calibration allocates and drops gigabyte buffers all the time (Hessians, factors, token
// activations, dequantized experts). With 4 KiB pages every fresh GiB costs 262,144 page faults:
// on this project's 2-core VM about 2.9 s per GiB touched, against 0.11 s with 2 MiB pages
// (bench/RESULTS.md, "Fresh buffers and huge pages"). The kernel's default THP mode is
// "madvise", so a buffer gets huge pages only when asked.
#pragma once

#include <cstddef>

namespace dsq {

// Buffers at least this large are advised; smaller ones would not fill a huge page.
inline constexpr size_t kHugePageMinBytes = size_t{8} << 20;

// Advises the kernel to back the whole 2 MiB-aligned pages inside [p, p + bytes) with
// transparent huge pages. Call it before first touching the memory; a no-op below
// kHugePageMinBytes, where THP is disabled, or on failure (it is only a hint).
void advise_huge_pages(void* p, size_t bytes) noexcept;

}  // namespace dsq
