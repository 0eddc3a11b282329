// Thread-count-independent GEMM: fixed tiles of C, each a single-threaded BLAS call.
#include <cblas.h>

#include <algorithm>
#include <vector>

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

namespace {

// Weight rows decoded per tile of gemm_decoded. Each tile is one BLAS call, which packs all of x
// again: with few rows of x, about 1 MiB of f32 per thread (at least 16 rows); with many (the
// calibration pipeline's 4096-row chunks), small tiles spend more time copying x than multiplying
// (16-row tiles of an 18432-input linear spent half their time in OpenBLAS's packing), so tiles
// grow to 512 rows (at most 64 MiB per thread) while leaving at least 8 tiles to share. A function
// of the shapes only: the result does not depend on the thread count.
int64_t decoded_tile_rows(int64_t k, int64_t n_out, int64_t m) {
  const int64_t width = std::max<int64_t>(k, 1);
  const int64_t small = std::clamp<int64_t>((int64_t{1} << 18) / width, 16, 1024);
  if (m < 256) return small;
  const int64_t large = std::clamp<int64_t>((int64_t{1} << 24) / width, 16, 512);
  return std::max(small, std::min(large, std::max<int64_t>(16, (n_out + 7) / 8)));
}

// Rows of x per block of gemm_decoded. A small linear over many rows (the calibration pipeline's
// 4096-row chunks through a 256 x 256 linear) is one weight tile: its rows of x are then split
// too, so that both threads work (one thread did all of them while the other idled for 40% of a
// GPTQ run on qwen2-tiny, bench/RESULTS.md, issue 19). Blocks of at least 256 rows, up to 8
// tasks, and every product keeps at least 2^21 multiply-adds (`smallest` is the narrowest tile),
// so that BLAS does not switch to a small-matrix kernel, which may sum in another order (with
// OpenBLAS's SkylakeX kernels each element is then the dot product an unsplit call gives, bit for
// bit; on an AVX-512 CPU running its Haswell kernels only up to rounding). A function of the
// shapes only, so the bytes do not depend on the thread count.
int64_t decoded_row_block(int64_t m, int64_t k, int64_t smallest, int64_t n_tiles) {
  if (n_tiles >= 8 || m < 512) return m;
  int64_t blocks = std::min<int64_t>((8 + n_tiles - 1) / n_tiles, m / 256);
  const auto rows = [&](int64_t b) { return (m + b - 1) / b; };
  while (blocks > 1 && rows(blocks) * smallest * k < (int64_t{1} << 21)) --blocks;
  return rows(std::max<int64_t>(blocks, 1));
}

}  // namespace

void gemm_decoded(int64_t m, int64_t n_out, int64_t k, const float* x, float* y,
                  const DecodeRows& decode) {
  if (m <= 0 || n_out <= 0) return;
  const int64_t T = std::min(decoded_tile_rows(k, n_out, m), n_out);
  const int64_t n_tiles = (n_out + T - 1) / T;
  const int64_t mb = decoded_row_block(m, k, n_out - (n_tiles - 1) * T, n_tiles);
  const int64_t m_blocks = (m + mb - 1) / mb, tasks = n_tiles * m_blocks;
  SerialBlasScope serial;
#pragma omp parallel if (tasks > 1)
  {
    std::vector<float> tile(static_cast<size_t>(T * k));
    int64_t decoded = -1;  // the weight tile in `tile`: consecutive tasks share it
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t wt = t / m_blocks, i0 = (t % m_blocks) * mb, mi = std::min(mb, m - i0);
      const int64_t r0 = wt * T, r1 = std::min(r0 + T, n_out);
      if (decoded != wt) decode(r0, r1, tile.data());
      decoded = wt;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(mi),
                  static_cast<blasint>(r1 - r0), static_cast<blasint>(k), 1.0f, x + i0 * k,
                  static_cast<blasint>(k), tile.data(), static_cast<blasint>(k), 0.0f,
                  y + i0 * n_out + r0, static_cast<blasint>(n_out));
    }
  }
}

}  // namespace dsq::linalg
