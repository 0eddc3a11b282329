// Dense linear algebra behind one header. Only lib/core/linalg/*.cpp include BLAS or Eigen.
// All matrices are row-major.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace dsq::linalg {

// C[M,N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. Row-major, leading dims in elements.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc);
// sgemm computed as fixed tiles of C (tile sizes depend only on m and n), each by a
// single-threaded BLAS call on its own OpenMP thread: bit-identical for any thread count, which
// plain sgemm does not guarantee (OpenBLAS's own threading changes which edge kernels, and so
// which accumulation order, each element gets). Used by the inference engine.
void sgemm_tiled(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc);

// y[m, n_out] = x[m, k] * W^T for a weight W [n_out, k] held in a compact form (f16, bf16,
// quantized codes) that decode(r0, r1, out) expands to f32 rows out[r1 - r0, k]; W is never
// materialised whole. Tiles of weight rows, their height a function of the shapes only, are
// decoded into a per-thread buffer and multiplied by one single-threaded BLAS call each
// (y[:, tile] = x * tile^T), so the result is bit-identical for any thread count. decode is called
// from several threads at once, on disjoint row ranges.
using DecodeRows = std::function<void(int64_t r0, int64_t r1, float* out)>;
void gemm_decoded(int64_t m, int64_t n_out, int64_t k, const float* x, float* y,
                  const DecodeRows& decode);

// While alive, BLAS runs single-threaded (for BLAS calls made from inside OpenMP parallel
// regions); the destructor restores the previous BLAS thread count. Not reentrant across threads:
// create it on the orchestrating thread only.
class SerialBlasScope {
 public:
  SerialBlasScope();
  ~SerialBlasScope();
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;

 private:
  int saved_;
};

void dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
           const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
           int64_t ldc);

// H[n,n] += alpha * X^T X for X[rows, n] (f32 input, f64 accumulator): calibration Hessians.
void syrk_accumulate(const float* x, int64_t rows, int64_t n, double alpha, double* h);

// H[n,n] += alpha * X^T X for X[rows, n] like syrk_accumulate, but each call's products are
// f32 (one single-threaded BLAS call per fixed tile of the upper triangle, so the result is
// bit-identical for any thread count, at twice the f64 rate); the f64 H sums the calls. Pass
// chunks of at most a few thousand rows: the f32 error of a chunk grows with its length.
void gram_accumulate_f32(const float* x, int64_t rows, int64_t n, double alpha, double* h);

// In-place Cholesky of a symmetric positive definite matrix a[n,n] (row-major); on success the
// upper triangle holds U with A = U^T U and the strict lower triangle is zeroed. Returns false
// when the matrix is not positive definite (a is then unspecified).
bool cholesky_upper(double* a, int64_t n);
// In-place inverse of a symmetric positive definite matrix; returns false when not SPD.
bool spd_inverse(double* a, int64_t n);

// For a symmetric positive definite a[n,n] (row-major), overwrite a with the upper-triangular U
// such that A^{-1} = U^T U (the upper Cholesky factor of the inverse, as GPTQ needs), strict
// lower triangle zeroed. Computed as the reversed-order Cholesky of A followed by a triangular
// inverse (2/3 n^3 flops, LAPACK). Returns false when A is not positive definite.
bool cholesky_inverse_upper(double* a, int64_t n);

// The machine's BLAS thread count follows dsq::set_num_threads.
void set_blas_threads(int n);
// The kernel family OpenBLAS chose for this CPU ("SkylakeX", "Haswell", "Prescott", ...): results
// that go through BLAS are bit-reproducible only between runs with the same kernels.
std::string blas_core_name();

}  // namespace dsq::linalg
