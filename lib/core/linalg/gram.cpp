// Gram matrices X^T X of calibration activations (GPTQ/AWQ Hessians), thread-count independent.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "lib/core/linalg.h"

namespace dsq::linalg {

void gram_accumulate_f32(const float* x, int64_t rows, int64_t n, double alpha, double* h) {
  if (rows <= 0 || n <= 0) return;
  // Square tiles of the upper triangle; the grid depends only on n. Below 1024 inputs the tiles
  // are 64 wide, so that both threads have tiles to work on (one 256-wide tile of a 256-input
  // linear kept the other core waiting, bench/RESULTS.md, issue 19). Each element of a tile is a
  // K-long BLAS dot product; its last bits may depend on the tile's size (OpenBLAS's kernels on an
  // AVX-512 CPU), never on the thread count.
  const int64_t kTile = n < 1024 ? 64 : 256;
  const int64_t nt = (n + kTile - 1) / kTile;
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t i = 0; i < nt; ++i)
    for (int64_t j = i; j < nt; ++j) tiles.emplace_back(i, j);
  SerialBlasScope serial;
#pragma omp parallel
  {
    std::vector<float> c(static_cast<size_t>(kTile * kTile));
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tiles.size(); ++t) {
      const int64_t i0 = tiles[t].first * kTile, j0 = tiles[t].second * kTile;
      const int64_t mi = std::min(kTile, n - i0), nj = std::min(kTile, n - j0);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(mi),
                  static_cast<blasint>(nj), static_cast<blasint>(rows), 1.0f, x + i0,
                  static_cast<blasint>(n), x + j0, static_cast<blasint>(n), 0.0f, c.data(),
                  static_cast<blasint>(nj));
      for (int64_t i = 0; i < mi; ++i) {
        double* hr = h + (i0 + i) * n + j0;
        const float* cr = c.data() + i * nj;
        for (int64_t j = 0; j < nj; ++j) hr[j] += alpha * static_cast<double>(cr[j]);
      }
    }
  }
  // Mirror the upper triangle (diagonal tiles were computed whole; keep their upper half).
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) h[i * n + j] = h[j * n + i];
}

}  // namespace dsq::linalg
