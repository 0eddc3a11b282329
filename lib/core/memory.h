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

// glibc serves a block above its mmap threshold with its own mapping, unmapped on free, but raises
// the threshold to the size of each such block freed (up to 32 MiB): from then on blocks of a few
// MiB come from the heap, and a streaming job that allocates one tensor after another leaves
// hundreds of MB of freed heap resident (RTN of a 1.1B model at 8 bits: 787 MB of anonymous memory
// for 17 MB live). Fixing the threshold at kMmapThresholdBytes returns every large block on free.
// Called once at program start (tools/main.cpp); MALLOC_MMAP_THRESHOLD_ in the environment wins.
inline constexpr size_t kMmapThresholdBytes = size_t{4} << 20;
void return_large_blocks_to_os() noexcept;

}  // namespace dsq
