// LAPACK-backed factorizations (OpenBLAS ships LAPACK; the Fortran symbols are declared here).
#include <algorithm>
#include <vector>

#include "lib/core/linalg.h"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda,
             int* info);
}

namespace dsq::linalg {

bool cholesky_inverse_upper(double* a, int64_t n) {
  if (n == 0) return true;
  // With J the reversal permutation, M = J A J = L L^T (L lower), so A = V V^T with V = J L J
  // upper, and A^{-1} = V^{-T} V^{-1}: U = V^{-1} = J L^{-1} J is the upper Cholesky factor of
  // A^{-1} (unique, positive diagonal). Reversing a row-major array in place gives J A J, which
  // is the same matrix read column-major (symmetric), so LAPACK can work on it directly.
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
  std::reverse(a, a + nn);
  const int ni = static_cast<int>(n);
  int info = 0;
  const char lower = 'L', nonunit = 'N';
  dpotrf_(&lower, &ni, a, &ni, &info);
  if (info != 0) return false;
  dtrtri_(&lower, &nonunit, &ni, a, &ni, &info);
  if (info != 0) return false;
  // a (column-major) holds Linv in its lower triangle: Linv(r, c) = a[r + c*n], and
  // U(i, j) = Linv(n-1-i, n-1-j) = a[(n-1-i) + (n-1-j)*n]: row-major U is the anti-transpose of
  // the row-major view of a, element (i, j) <-> (n-1-j, n-1-i). The pairs are swapped in place
  // tile by tile (an element-wise transpose walked a 2.7 GB matrix with a stride of one row per
  // element: a tenth of GPTQ's time on an 18432-input linear), then the strict lower triangle is
  // zeroed. Each pair is swapped once, by the element above the anti-diagonal (i + j < n - 1).
  constexpr int64_t kTile = 64;
#pragma omp parallel for schedule(dynamic) if (n >= 256)
  for (int64_t bi = 0; bi < n; bi += kTile) {
    for (int64_t bj = 0; bi + bj < n - 1; bj += kTile) {
      const int64_t ie = std::min(bi + kTile, n), je = std::min(bj + kTile, n);
      for (int64_t i = bi; i < ie; ++i) {
        double* row = a + i * n;
        const int64_t jmax = std::min(je, n - 1 - i);  // j < n - 1 - i
        for (int64_t j = bj; j < jmax; ++j) std::swap(row[j], a[(n - 1 - j) * n + (n - 1 - i)]);
      }
    }
  }
#pragma omp parallel for schedule(static) if (n >= 256)
  for (int64_t i = 1; i < n; ++i) std::fill(a + i * n, a + i * n + i, 0.0);
  return true;
}

}  // namespace dsq::linalg
