// The cost of touching freshly allocated memory, with and without the transparent-huge-page hint
// that dsq's allocation functions give large blocks (lib/core/memory.h, tools/operator_new.cpp).
// Calibration at real widths allocates gigabyte buffers (Hessians, factors, activations) over and
// over; this is what each fresh gigabyte costs in page faults and zeroing.
//
//   bench_fresh_buffers --benchmark_counters_tabular=true
//
// Each iteration mallocs a buffer, (optionally) advises it, writes every byte once and frees it;
// glibc serves blocks this large with mmap, so every iteration faults the whole buffer in afresh.
// Counter s_per_GB: seconds per GiB touched. `/0`: 4 KiB pages, `/1`: huge pages advised.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

#include "lib/core/memory.h"

namespace {

void BM_FreshBuffer(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const bool huge = state.range(1) != 0;
  for (auto _ : state) {
    auto* p = static_cast<char*>(std::malloc(bytes));
    if (!p) {
      state.SkipWithError("out of memory");
      break;
    }
    if (huge) dsq::advise_huge_pages(p, bytes);
    std::memset(p, 1, bytes);
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
    std::free(p);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
  state.counters["s_per_GB"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(bytes) / double(1 << 30),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FreshBuffer)
    ->ArgsProduct({{256, 1024}, {0, 1}})
    ->ArgNames({"MiB", "huge"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
