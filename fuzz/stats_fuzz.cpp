// HDF5 calibration statistics files: everything dsq reads from them (formats/hdf5/stats_file.h),
// for every group of the 2-block model of fuzz/tiny_seeds.py (d_model 32, 4 heads of 8, d_ff 48),
// AWQ results and the mixed-precision sensitivity table too.
//
// libhdf5 trusts a file's structure and may crash on a corrupt one, so production reads a user's
// file first in a forked child (run_isolated, formats/hdf5/hdf5_file.h), which turns such a crash
// into a one-line error, and only then for real. Two modes:
// - default (CI's short run, replaying an input): that production path, a fork per input. On a
//   machine where page faults are dear (the campaign VM: ~20 inputs/s) the fuzzer also sees no
//   coverage of the child, only of the second read, which happens for valid files alone.
// - DSQ_FUZZ_STATS_DIRECT=1 (fuzz/campaign.sh): in process only, ~1,200 inputs/s there, with the
//   reader's coverage of every input. A crash inside libhdf5 is then a crash of this process;
//   campaign.sh replays each one in the default mode, where it must end as a one-line error.
// In both, no HDF5 object may stay open after an input (a handle dsq leaked aborts), and leaks
// inside libhdf5 itself are not reported (__lsan_default_suppressions below): its error paths
// leave blocks behind that only the fork of the default mode would have hidden.
#include <cstdio>
#include <cstdlib>

#include "formats/hdf5/hdf5_file.h"
#include "formats/hdf5/stats_file.h"
#include "fuzz/fuzz_util.h"

namespace {
void read_all(const std::string& path) {
  using namespace dsq::formats::hdf5;
  const Reader r(path);
  const StatsHeader h = read_stats_header(r);
  for (int64_t l = 0; l < std::min<int64_t>(h.n_layers, 2); ++l)
    for (const auto& [g, n] : {std::pair<const char*, int64_t>{"attn_in", 32}, {"attn_out", 32},
                               {"ffn_in", 32}, {"ffn_out", 48}}) {
      (void)read_input_stats(r, l, g, n);
      (void)read_awq_search(r, l, g, n, {});
    }
  (void)read_sensitivity(r, std::min<int64_t>(h.n_layers, 2));  // mixed precision's cost table
}

const bool kDirect = std::getenv("DSQ_FUZZ_STATS_DIRECT") != nullptr;
}  // namespace

extern "C" const char* __lsan_default_suppressions() { return "leak:libhdf5\n"; }

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dsq::formats::hdf5::keep_freed_memory();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string path = fuzz::write_input("in.h5", data, size);
  fuzz::expect_clean([&] {
    if (!kDirect) formats::hdf5::run_isolated(path, [&] { read_all(path); });
    read_all(path);
  });
  if (const int64_t open = formats::hdf5::open_object_count(); open != 0) {
    std::fprintf(stderr, "%lld HDF5 objects left open after reading the input\n",
                 static_cast<long long>(open));
    std::abort();
  }
  return 0;
}
