#include "lib/quant/qmatmul.h"

#include <algorithm>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/quant/rtn.h"

namespace dsq::quant {
namespace {

// Below this many weights a parallel region costs more than it saves.
constexpr int64_t kParallelMinWeights = int64_t{1} << 16;

// Weight rows dequantized per tile for m > 1. Each tile is one BLAS call, which packs all of x
// again: with few rows of x, about 1 MiB of f32 per thread (at least 16 rows); with many (the
// calibration pipeline's 4096-row chunks), small tiles spend more time copying x than multiplying
// (16-row tiles of an 18432-input linear spent half their time in OpenBLAS's packing), so tiles
// grow to 512 rows (at most 64 MiB per thread) while leaving at least 8 tiles to share. A function
// of the shapes only: the result does not depend on the thread count.
int64_t tile_rows(int64_t n_in, int64_t n_out, int64_t m) {
  const int64_t width = std::max<int64_t>(n_in, 1);
  const int64_t small = std::clamp<int64_t>((int64_t{1} << 18) / width, 16, 1024);
  if (m < 256) return small;
  const int64_t large = std::clamp<int64_t>((int64_t{1} << 24) / width, 16, 512);
  return std::max(small, std::min(large, std::max<int64_t>(16, (n_out + 7) / 8)));
}

const QuantTraits& check_qint(const Tensor& w, const char* what) {
  DSQ_ASSERT(w.dtype() == DType::kQInt && w.ndim() == 2, "%s: weight is not a 2-D qint tensor", what);
  return quant_traits(w.quant());
}

void dequantize_range(const QuantTraits& tr, const Tensor& w, int64_t r0, int64_t r1, float* out) {
  const int64_t n_in = w.dim(1);
  const int64_t G = quant_layout(w.quant(), w.dim(0), n_in).group;
#pragma omp parallel for schedule(static) if ((r1 - r0) * n_in >= kParallelMinWeights)
  for (int64_t r = r0; r < r1; ++r) tr.dequantize_row(qrow(w, r), n_in, G, out + (r - r0) * n_in);
}

}  // namespace

void dequantize_rows(const Tensor& w, int64_t r0, int64_t r1, float* out) {
  const QuantTraits& tr = check_qint(w, "dequantize_rows");
  DSQ_ASSERT(0 <= r0 && r0 <= r1 && r1 <= w.dim(0), "dequantize_rows: bad range [%lld, %lld)",
             static_cast<long long>(r0), static_cast<long long>(r1));
  dequantize_range(tr, w, r0, r1, out);
}

void qmatmul(const Tensor& w, const float* x, int64_t m, float* y) {
  const QuantTraits& tr = check_qint(w, "qmatmul");
  const int64_t n_out = w.dim(0), n_in = w.dim(1);
  if (m <= 0 || n_out == 0) return;
  const int64_t G = quant_layout(w.quant(), n_out, n_in).group;
  if (m == 1) {
    // GEMV: fused decode + dot per output row; each row's sum has a fixed order.
#pragma omp parallel for schedule(static) if (n_out * n_in >= kParallelMinWeights)
    for (int64_t r = 0; r < n_out; ++r) y[r] = tr.dot(qrow(w, r), n_in, G, x);
    return;
  }
  // GEMM: each tile of T weight rows is dequantized into a per-thread f32 buffer and multiplied
  // by a single-threaded BLAS call (y[:, tile] = x * tile^T). T depends only on the shape, and
  // every tile is computed by one serial call, so the result is bit-identical for any thread
  // count (OpenBLAS's own threading would change the accumulation order of edge elements).
  const int64_t T = std::min(tile_rows(n_in, n_out, m), n_out);
  const int64_t n_tiles = (n_out + T - 1) / T;
  linalg::SerialBlasScope serial_blas;
#pragma omp parallel if (n_tiles > 1)
  {
    std::vector<float> tile(static_cast<size_t>(T * n_in));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t r0 = t * T, r1 = std::min(r0 + T, n_out);
      for (int64_t r = r0; r < r1; ++r)
        tr.dequantize_row(qrow(w, r), n_in, G, tile.data() + (r - r0) * n_in);
      linalg::sgemm(false, true, m, r1 - r0, n_in, 1.0f, x, n_in, tile.data(), n_in, 0.0f,
                    y + r0, n_out);
    }
  }
}

}  // namespace dsq::quant
