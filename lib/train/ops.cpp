#include "lib/train/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "lib/core/error.h"
#include "lib/core/linalg.h"

namespace dsq::train {

namespace {

// One BLAS call on the calling thread (callers inside a parallel region hold a SerialBlasScope).
void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  linalg::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  linalg::dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Softmax of the causal score rows s[T, T] in place: row i sees keys 0..i (sums in double).
template <class T>
void causal_softmax(T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T* row = s + i * n;
    T mx = row[0];
    for (int64_t j = 1; j <= i; ++j) mx = std::max(mx, row[j]);
    double sum = 0.0;
    for (int64_t j = 0; j <= i; ++j) {
      row[j] = static_cast<T>(std::exp(static_cast<double>(row[j] - mx)));
      sum += static_cast<double>(row[j]);
    }
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
    for (int64_t j = i + 1; j < n; ++j) row[j] = T(0);
  }
}

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  linalg::sgemm_tiled(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// f64 is for the gradient checks: OpenBLAS's dgemm, run on one thread so it is deterministic.
template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  linalg::SerialBlasScope serial;
  linalg::dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void linear_forward(const T* x, const T* w, const T* b, int64_t rows, int64_t n_in, int64_t n_out,
                    T* y) {
  if (rows == 0 || n_out == 0) return;
  gemm<T>(false, true, rows, n_out, n_in, T(1), x, n_in, w, n_in, T(0), y, n_out);
  if (!b) return;
#pragma omp parallel for schedule(static) if (rows * n_out > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n_out; ++j) y[r * n_out + j] += b[j];
}

template <class T>
void linear_backward(const T* x, const T* w, const T* dy, int64_t rows, int64_t n_in, int64_t n_out,
                     T* dx, T* dw, T* db) {
  if (rows == 0 || n_out == 0) return;
  if (dx) gemm<T>(false, false, rows, n_in, n_out, T(1), dy, n_out, w, n_in, T(1), dx, n_in);
  if (dw) gemm<T>(true, false, n_out, n_in, rows, T(1), dy, n_out, x, n_in, T(1), dw, n_in);
  if (!db) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n_out; ++j) db[j] += dy[r * n_out + j];
}

template <class T>
void rmsnorm_forward(const T* x, const T* w, int64_t rows, int64_t d, double eps, T* y, T* inv) {
#pragma omp parallel for schedule(static) if (rows * d > (1 << 17))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
    const T iv = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    inv[r] = iv;
    T* yr = y + r * d;
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * iv * w[i];
  }
}

template <class T>
void rmsnorm_backward(const T* x, const T* w, const T* inv, const T* dy, int64_t rows, int64_t d,
                      T* dx, T* dw) {
#pragma omp parallel for schedule(static) if (rows * d > (1 << 17))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    const T* g = dy + r * d;
    double s = 0.0;
    for (int64_t i = 0; i < d; ++i)
      s += static_cast<double>(g[i]) * static_cast<double>(w[i]) * static_cast<double>(xr[i]);
    const double iv = static_cast<double>(inv[r]);
    const T a = static_cast<T>(iv), c = static_cast<T>(iv * iv * iv * s / static_cast<double>(d));
    T* o = dx + r * d;
    for (int64_t i = 0; i < d; ++i) o[i] += a * w[i] * g[i] - c * xr[i];
  }
  if (!dw) return;
  for (int64_t r = 0; r < rows; ++r) {
    const T iv = inv[r];
    for (int64_t i = 0; i < d; ++i) dw[i] += dy[r * d + i] * x[r * d + i] * iv;
  }
}

template <class T>
void rope_rotate(T* x, int64_t rows, int64_t T_, int64_t ld, int64_t n_heads, int64_t head_dim,
                 const float* cos, const float* sin, bool interleave, bool inverse) {
  const int64_t half = head_dim / 2;
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static) if (rows * n_heads * half > (1 << 17))
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos + (r % T_) * half;
    const float* s = sin + (r % T_) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      T* xh = x + r * ld + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t i1 = interleave ? 2 * i : i, i2 = interleave ? 2 * i + 1 : i + half;
        const T x1 = xh[i1], x2 = xh[i2], ci = static_cast<T>(c[i]), si = sign * static_cast<T>(s[i]);
        xh[i1] = x1 * ci - x2 * si;
        xh[i2] = x2 * ci + x1 * si;
      }
    }
  }
}

template <class T>
void attention_forward(const T* q, const T* k, const T* v, const AttnDims& a, T* out) {
  const int64_t group = a.n_heads / a.n_kv, wq = a.n_heads * a.hd, wkv = a.n_kv * a.hd;
  const int64_t tasks = a.B * a.n_heads;
  std::vector<std::vector<T>> scratch(static_cast<size_t>(std::min<int64_t>(omp_get_max_threads(), tasks)));
  for (auto& s : scratch) s.resize(static_cast<size_t>(a.T * a.T));
  linalg::SerialBlasScope serial;
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(scratch.size()))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / a.n_heads, h = t % a.n_heads, g = h / group;
    T* s = scratch[static_cast<size_t>(omp_get_thread_num())].data();
    const T* qh = q + b * a.T * wq + h * a.hd;
    const T* kg = k + b * a.T * wkv + g * a.hd;
    const T* vg = v + b * a.T * wkv + g * a.hd;
    gemm_serial(false, true, a.T, a.T, a.hd, static_cast<T>(a.scale), qh, wq, kg, wkv, T(0), s, a.T);
    causal_softmax(s, a.T);
    gemm_serial(false, false, a.T, a.hd, a.T, T(1), s, a.T, vg, wkv, T(0),
                out + b * a.T * wq + h * a.hd, wq);
  }
}

template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* dout, const AttnDims& a,
                        T* dq, T* dk, T* dv) {
  // One task per (sequence, kv head): the q heads of a group add into the same dk/dv columns, so
  // they run in order inside the task.
  const int64_t group = a.n_heads / a.n_kv, wq = a.n_heads * a.hd, wkv = a.n_kv * a.hd;
  const int64_t tasks = a.B * a.n_kv, n = a.T;
  const size_t nthreads = static_cast<size_t>(std::min<int64_t>(omp_get_max_threads(), tasks));
  std::vector<std::vector<T>> sp(nthreads), sdp(nthreads);
  for (size_t i = 0; i < nthreads; ++i) {
    sp[i].resize(static_cast<size_t>(n * n));
    sdp[i].resize(static_cast<size_t>(n * n));
  }
  const T scale = static_cast<T>(a.scale);
  linalg::SerialBlasScope serial;
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(nthreads))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / a.n_kv, g = t % a.n_kv;
    T* p = sp[static_cast<size_t>(omp_get_thread_num())].data();
    T* dp = sdp[static_cast<size_t>(omp_get_thread_num())].data();
    const T* kg = k + b * n * wkv + g * a.hd;
    const T* vg = v + b * n * wkv + g * a.hd;
    T* dkg = dk + b * n * wkv + g * a.hd;
    T* dvg = dv + b * n * wkv + g * a.hd;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const T* qh = q + b * n * wq + h * a.hd;
      const T* doh = dout + b * n * wq + h * a.hd;
      gemm_serial(false, true, n, n, a.hd, scale, qh, wq, kg, wkv, T(0), p, n);
      causal_softmax(p, n);
      gemm_serial(true, false, n, a.hd, n, T(1), p, n, doh, wq, T(1), dvg, wkv);  // dV += P^T dO
      gemm_serial(false, true, n, n, a.hd, T(1), doh, wq, vg, wkv, T(0), dp, n);  // dP = dO V^T
      for (int64_t i = 0; i < n; ++i) {  // dS = P (dP - rowsum(P dP)), causal entries only
        T* pr = p + i * n;
        T* dr = dp + i * n;
        double dot = 0.0;
        for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(pr[j]) * static_cast<double>(dr[j]);
        const T c = static_cast<T>(dot);
        for (int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - c);
        for (int64_t j = i + 1; j < n; ++j) dr[j] = T(0);
      }
      gemm_serial(false, false, n, a.hd, n, scale, dp, n, kg, wkv, T(1), dq + b * n * wq + h * a.hd, wq);
      gemm_serial(true, false, n, a.hd, n, scale, dp, n, qh, wq, T(1), dkg, wkv);
    }
  }
}

template <class T>
void swiglu_forward(const T* g, const T* u, int64_t n, T* a) {
#pragma omp parallel for schedule(static) if (n > (1 << 17))
  for (int64_t i = 0; i < n; ++i) a[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
}

template <class T>
void swiglu_backward(const T* g, const T* u, const T* da, int64_t n, T* dg, T* du) {
#pragma omp parallel for schedule(static) if (n > (1 << 17))
  for (int64_t i = 0; i < n; ++i) {
    const T sg = T(1) / (T(1) + std::exp(-g[i]));
    const T silu = g[i] * sg;
    du[i] += da[i] * silu;
    dg[i] += da[i] * u[i] * sg * (T(1) + g[i] * (T(1) - sg));
  }
}

template <class T>
void embedding_forward(const T* table, const int32_t* ids, int64_t n, int64_t d, T* out) {
  for (int64_t i = 0; i < n; ++i) std::copy(table + ids[i] * d, table + (ids[i] + 1) * d, out + i * d);
}

template <class T>
void embedding_backward(const int32_t* ids, const T* dout, int64_t n, int64_t d, T* dtable) {
  if (!dtable) return;
  for (int64_t i = 0; i < n; ++i) {
    T* row = dtable + static_cast<int64_t>(ids[i]) * d;
    for (int64_t j = 0; j < d; ++j) row[j] += dout[i * d + j];
  }
}

#define DSQ_TRAIN_OPS(T)                                                                          \
  template void linear_forward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*);   \
  template void linear_backward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*,   \
                                   T*, T*);                                                       \
  template void rmsnorm_forward<T>(const T*, const T*, int64_t, int64_t, double, T*, T*);         \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, \
                                    T*);                                                          \
  template void rope_rotate<T>(T*, int64_t, int64_t, int64_t, int64_t, int64_t, const float*,     \
                               const float*, bool, bool);                                         \
  template void attention_forward<T>(const T*, const T*, const T*, const AttnDims&, T*);          \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const AttnDims&,    \
                                      T*, T*, T*);                                                \
  template void swiglu_forward<T>(const T*, const T*, int64_t, T*);                               \
  template void swiglu_backward<T>(const T*, const T*, const T*, int64_t, T*, T*);                \
  template void embedding_forward<T>(const T*, const int32_t*, int64_t, int64_t, T*);             \
  template void embedding_backward<T>(const int32_t*, const T*, int64_t, int64_t, T*);
DSQ_TRAIN_OPS(float)
DSQ_TRAIN_OPS(double)
#undef DSQ_TRAIN_OPS

}  // namespace dsq::train
