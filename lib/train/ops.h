// The training engine's operators: each forward of lib/model's engine (dense Llama-family blocks)
// with its backward, written op by op. Every op is a template over the scalar (float for
// training, double for the finite-difference gradient checks in tests/train/ops_test.cpp) and is
// deterministic for any thread count: GEMMs go through linalg::sgemm_tiled (fixed tiles, one
// single-threaded BLAS call each), and every reduction over rows runs in a fixed order.
//
// Conventions: matrices are row-major, `rows` = B*T tokens. A backward takes what its forward
// saved and the output gradient; input gradients are *added* into dx (so a residual branch and
// the skip path can share one buffer), parameter gradients are *added* into dw/db (so gradient
// accumulation over micro-batches is a plain sum).
#pragma once

#include <cstdint>
#include <vector>

namespace dsq::train {

// C = alpha op(A) op(B) + beta C (row-major; deterministic for any thread count).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// y[rows, n_out] = x[rows, n_in] W^T + b (b may be null).
template <class T>
void linear_forward(const T* x, const T* w, const T* b, int64_t rows, int64_t n_in, int64_t n_out,
                    T* y);
// dx += dy W, dw += dy^T x, db += column sums of dy (each may be null: not computed).
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, int64_t rows, int64_t n_in, int64_t n_out,
                     T* dx, T* dw, T* db);

// RMSNorm y = x / sqrt(mean(x^2) + eps) * w over rows of d entries; inv[rows] keeps the
// 1/sqrt(...) of each row for the backward (y must not alias x).
template <class T>
void rmsnorm_forward(const T* x, const T* w, int64_t rows, int64_t d, double eps, T* y, T* inv);
// dx += r w dy - r^3/d x (sum_i dy_i w_i x_i), dw += sum over rows of dy x r.
template <class T>
void rmsnorm_backward(const T* x, const T* w, const T* inv, const T* dy, int64_t rows, int64_t d,
                      T* dx, T* dw);

// Rotary embedding of n_heads heads of head_dim dims in rows of x (row stride ld), row r at
// position r % T, in place; cos/sin [T, head_dim/2] as lib/model/rope.h makes them. The backward
// is the inverse rotation (`inverse` = true), applied to the gradient in place.
template <class T>
void rope_rotate(T* x, int64_t rows, int64_t T_, int64_t ld, int64_t n_heads, int64_t head_dim,
                 const float* cos, const float* sin, bool interleave, bool inverse);

// Causal multi-head attention of B sequences of T tokens: q[rows, n_heads*hd],
// k/v[rows, n_kv*hd] -> out[rows, n_heads*hd], q-head h reads kv-head h / (n_heads / n_kv),
// scores scaled by `scale`. The backward recomputes the probabilities from q and k (nothing of
// size T^2 is kept) and adds into dq, dk, dv.
struct AttnDims {
  int64_t B = 0, T = 0, n_heads = 0, n_kv = 0, hd = 0;
  double scale = 1.0;
};
template <class T>
void attention_forward(const T* q, const T* k, const T* v, const AttnDims& a, T* out);
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* dout, const AttnDims& a,
                        T* dq, T* dk, T* dv);

// SwiGLU's gate: a = silu(g) * u elementwise over n entries; backward adds into dg and du.
template <class T>
void swiglu_forward(const T* g, const T* u, int64_t n, T* a);
template <class T>
void swiglu_backward(const T* g, const T* u, const T* da, int64_t n, T* dg, T* du);

// Embedding rows: out[n, d] = table[ids]; backward adds dout's rows into dtable[ids] (in token
// order, so repeated ids sum deterministically); dtable may be null (a frozen table).
template <class T>
void embedding_forward(const T* table, const int32_t* ids, int64_t n, int64_t d, T* out);
template <class T>
void embedding_backward(const int32_t* ids, const T* dout, int64_t n, int64_t d, T* dtable);

}  // namespace dsq::train
