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
  // a (column-major) holds Linv in its lower triangle: Linv(r, c) = a[r + c*n]. Then
  // U(i, j) = Linv(n-1-i, n-1-j) = a[n*n-1 - (j*n + i)]: reverse the array, then transpose.
  std::reverse(a, a + nn);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) std::swap(a[i * n + j], a[j * n + i]);
    std::fill(a + i * n, a + i * n + i, 0.0);
  }
  return true;
}

}  // namespace dsq::linalg
