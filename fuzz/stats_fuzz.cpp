// HDF5 calibration statistics files through the production path: the file is read first in a
// forked child (formats/hdf5/hdf5_file.h run_isolated: libhdf5 itself may crash on a corrupt file,
// and that must end as a one-line error), then for real; every group of the 2-block model of
// fuzz/tiny_seeds.py (d_model 32, 4 heads of 8, d_ff 48) is read and validated, AWQ results and
// the mixed-precision sensitivity table too.
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
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string path = fuzz::write_input("in.h5", data, size);
  fuzz::expect_clean([&] {
    formats::hdf5::run_isolated(path, [&] { read_all(path); });
    read_all(path);
  });
  return 0;
}
