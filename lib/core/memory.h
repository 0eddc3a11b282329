// Large buffers on transparent huge pages.
//
// Calibration allocates and drops gigabyte buffers all the time (Hessians, factors, token
// activations, dequantized experts). With 4 KiB pages every fresh GiB costs 262,144 page faults:
// on this project's 2-core VM about 2.9 s per GiB touched, against 0.11 s with 2 MiB pages
// (bench/RESULTS.md, "Fresh buffers and huge pages"). The kernel's default THP mode is
// "madvise", so a buffer gets huge pages only when asked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

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
// Fixing it also fixes glibc's trim threshold (the free memory kept at the top of the heap) at
// its default of 128 KiB, so every free of a block of a few hundred KB at the top returned the
// pages and the next allocation faulted them in again: a calibration pass allocates its
// activations chunk by chunk, and 27% of a GPTQ run on a small model was page faults and
// brk/munmap (bench/RESULTS.md, issue 19). The trim threshold is kTrimThresholdBytes.
// Called once at program start (tools/main.cpp); MALLOC_MMAP_THRESHOLD_ and
// MALLOC_TRIM_THRESHOLD_ in the environment win.
inline constexpr size_t kMmapThresholdBytes = size_t{4} << 20;
inline constexpr size_t kTrimThresholdBytes = size_t{32} << 20;
void configure_malloc() noexcept;

// A zero-filled float buffer for one step of a forward pass, whose storage comes from and returns
// to a small per-thread pool. The engine allocates the same activation buffers for every chunk
// of rows and every block (q, k, v, gate, up, ...); fresh ones cost page faults each time (above
// glibc's mmap threshold every allocation is a new mapping: the 12 MB gate and up buffers of
// qwen2-tiny's calibration chunks, faulted in and cleared, were ~8% of a GPTQ run's samples,
// bench/RESULTS.md, issue 19). The pool keeps the kScratchPoolSize largest buffers released on
// this thread; a request takes the smallest one that fits.
class ScratchFloats {
 public:
  ScratchFloats() = default;
  explicit ScratchFloats(int64_t n);
  ~ScratchFloats();
  ScratchFloats(ScratchFloats&& o) noexcept;
  ScratchFloats& operator=(ScratchFloats&& o) noexcept;
  ScratchFloats(const ScratchFloats&) = delete;
  ScratchFloats& operator=(const ScratchFloats&) = delete;

  float* data() noexcept { return p_.get(); }
  const float* data() const noexcept { return p_.get(); }
  size_t size() const noexcept { return n_; }
  float* begin() noexcept { return p_.get(); }
  float* end() noexcept { return p_.get() + n_; }
  const float* begin() const noexcept { return p_.get(); }
  const float* end() const noexcept { return p_.get() + n_; }
  float& operator[](size_t i) noexcept { return p_[i]; }
  float operator[](size_t i) const noexcept { return p_[i]; }

 private:
  void release() noexcept;
  std::unique_ptr<float[]> p_;
  size_t n_ = 0, cap_ = 0;
};
inline constexpr size_t kScratchPoolSize = 12;

}  // namespace dsq
