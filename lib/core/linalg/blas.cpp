#include <cblas.h>
#include <omp.h>

#include <Eigen/Dense>

#include "lib/core/linalg.h"
#include "lib/core/parallel.h"

extern "C" void openblas_set_num_threads(int);

namespace dsq::linalg {

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
           int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void syrk_accumulate(const float* x, int64_t rows, int64_t n, double alpha, double* h) {
  // Convert in row chunks to f64 and use dsyrk on the upper triangle, then mirror.
  constexpr int64_t kChunk = 256;
  std::vector<double> buf(static_cast<size_t>(kChunk * n));
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t rc = std::min(kChunk, rows - r0);
    for (int64_t i = 0; i < rc * n; ++i) buf[static_cast<size_t>(i)] = x[r0 * n + i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(n),
                static_cast<blasint>(rc), alpha, buf.data(), static_cast<blasint>(n), 1.0, h,
                static_cast<blasint>(n));
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) h[i * n + j] = h[j * n + i];
}

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

bool cholesky_upper(double* a, int64_t n) {
  Eigen::Map<RowMat> m(a, n, n);
  Eigen::LLT<RowMat, Eigen::Upper> llt(m);
  if (llt.info() != Eigen::Success) return false;
  m = llt.matrixU();
  return true;
}

bool spd_inverse(double* a, int64_t n) {
  Eigen::Map<RowMat> m(a, n, n);
  Eigen::LLT<RowMat> llt(m);
  if (llt.info() != Eigen::Success) return false;
  m = llt.solve(RowMat::Identity(n, n));
  return true;
}

void set_blas_threads(int n) { openblas_set_num_threads(n); }

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

}  // namespace dsq::linalg

namespace dsq {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  linalg::set_blas_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace dsq
