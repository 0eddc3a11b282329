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
  // GEMM: tiles of weight rows dequantized into a per-thread buffer (linalg::gemm_decoded).
  linalg::gemm_decoded(m, n_out, n_in, x, y, [&](int64_t r0, int64_t r1, float* out) {
    for (int64_t r = r0; r < r1; ++r) tr.dequantize_row(qrow(w, r), n_in, G, out + (r - r0) * n_in);
  });
}

}  // namespace dsq::quant
