// Thread-count-independent GEMM: fixed tiles of C, each a single-threaded BLAS call.
#include <cblas.h>

#include <algorithm>

#include "lib/core/linalg.h"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

namespace dsq::linalg {

SerialBlasScope::SerialBlasScope() : saved_(openblas_get_num_threads()) {
  openblas_set_num_threads(1);
}

SerialBlasScope::~SerialBlasScope() { openblas_set_num_threads(saved_); }

namespace {
// Tiles of 256 rows x 512 columns: large enough that BLAS's packing stays a few percent of the
// work, small enough to spread a 512-token window over the cores. A dimension up to 1.5 tiles is
// kept whole. Depends only on the dimension, never on the thread count.
int64_t tile_size(int64_t dim, int64_t tile) { return dim <= tile + tile / 2 ? dim : tile; }
}  // namespace

void sgemm_tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const int64_t mb = tile_size(m, 256), nb = tile_size(n, 512);
  const int64_t tm = (m + mb - 1) / mb, tn = (n + nb - 1) / nb, tiles = tm * tn;
  auto one = [&](int64_t t) {
    const int64_t i0 = (t / tn) * mb, j0 = (t % tn) * nb;
    const int64_t mi = std::min(mb, m - i0), nj = std::min(nb, n - j0);
    // op(A) rows i0.. : A[i0, 0] (no trans) or A[0, i0] (trans); op(B) cols j0.. likewise.
    const float* ai = ta ? a + i0 : a + i0 * lda;
    const float* bj = tb ? b + j0 * ldb : b + j0;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(mi), static_cast<blasint>(nj), static_cast<blasint>(k), alpha,
                ai, static_cast<blasint>(lda), bj, static_cast<blasint>(ldb), beta,
                c + i0 * ldc + j0, static_cast<blasint>(ldc));
  };
  SerialBlasScope serial;
  if (tiles == 1) {
    one(0);
    return;
  }
  // Products below ~16M multiply-adds (a millisecond or two) are not worth waking the thread
  // team; the tiles, and so the result, are the same either way.
#pragma omp parallel for schedule(dynamic, 1) if (m * n * k >= (int64_t{1} << 24))
  for (int64_t t = 0; t < tiles; ++t) one(t);
}

}  // namespace dsq::linalg
