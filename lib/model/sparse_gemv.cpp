#include "lib/model/sparse_gemv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lib/core/error.h"

namespace dsq::model {

int64_t threshold_activations(const float* x, int64_t n, float t, float* out) {
  int64_t nnz = 0;  // an integer sum: exact, so thread-count independent
#pragma omp parallel for schedule(static) reduction(+ : nnz) if (n > (1 << 16))
  for (int64_t j = 0; j < n; ++j) {
    const bool keep = std::fabs(x[j]) > t;
    out[j] = keep ? x[j] : 0.0f;
    nnz += keep;
  }
  return nnz;
}

namespace {

// acc[0, len) += sum over k in [k0, k1) of x[idx[k]] * wt[idx[k], i0 + i]; four weight rows per
// pass so that acc is loaded and stored once per four rows.
void accumulate_rows(const float* wt, int64_t n_out, const int32_t* idx, const float* xv,
                     int64_t nnz, int64_t i0, int64_t len, float* __restrict acc) {
  int64_t k = 0;
  for (; k + 4 <= nnz; k += 4) {
    const float* __restrict w0 = wt + idx[k] * n_out + i0;
    const float* __restrict w1 = wt + idx[k + 1] * n_out + i0;
    const float* __restrict w2 = wt + idx[k + 2] * n_out + i0;
    const float* __restrict w3 = wt + idx[k + 3] * n_out + i0;
    const float x0 = xv[k], x1 = xv[k + 1], x2 = xv[k + 2], x3 = xv[k + 3];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] += x0 * w0[i] + x1 * w1[i] + x2 * w2[i] + x3 * w3[i];
  }
  for (; k < nnz; ++k) {
    const float* __restrict w0 = wt + idx[k] * n_out + i0;
    const float x0 = xv[k];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] += x0 * w0[i];
  }
}

}  // namespace

void sparse_gemv_t(const float* wt, int64_t n_in, int64_t n_out, const float* x, float* y) {
  // Compact the nonzero inputs once: (index, value) in ascending index order.
  thread_local std::vector<int32_t> idx;
  thread_local std::vector<float> xv;
  idx.clear();
  xv.clear();
  for (int64_t j = 0; j < n_in; ++j)
    if (x[j] != 0.0f) {
      idx.push_back(static_cast<int32_t>(j));
      xv.push_back(x[j]);
    }
  const int64_t nnz = static_cast<int64_t>(idx.size());
  const int32_t* ip = idx.data();
  const float* xp = xv.data();
  // Each output tile keeps its accumulator in L1 while it streams the tile's slice of every live
  // row. Every y[i] sums the same terms in the same order whatever the tiling, so the tile size
  // may follow the thread count without changing the result.
  constexpr int64_t kMaxTile = 4096;
  const int64_t threads = std::max(1, omp_get_max_threads());
  const int64_t tile =
      std::clamp<int64_t>(((n_out + threads - 1) / threads + 15) & ~int64_t{15}, 16, kMaxTile);
  const int64_t n_tiles = (n_out + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (nnz * n_out > (1 << 15))
  for (int64_t t = 0; t < n_tiles; ++t) {
    alignas(64) float acc[kMaxTile];
    const int64_t i0 = t * tile, len = std::min(tile, n_out - i0);
    std::fill(acc, acc + len, 0.0f);
    accumulate_rows(wt, n_out, ip, xp, nnz, i0, len, acc);
    std::copy(acc, acc + len, y + i0);
  }
}

void dense_gemv(const float* w, int64_t n_out, int64_t n_in, const float* x, float* y) {
  // Four rows per pass share each load of x; 16 independent lanes per row hide FMA latency. The
  // lane sums are reduced in a fixed order, so the result does not depend on the thread count.
  constexpr int64_t kLanes = 16;
  const int64_t n_main = n_in / kLanes * kLanes;
  const int64_t n_quads = (n_out + 3) / 4;
#pragma omp parallel for schedule(static) if (n_out * n_in > (1 << 15))
  for (int64_t q = 0; q < n_quads; ++q) {
    const int64_t r0 = q * 4, nr = std::min<int64_t>(4, n_out - r0);
    const float* rows[4];
    for (int64_t k = 0; k < 4; ++k) rows[k] = w + (r0 + std::min(k, nr - 1)) * n_in;
    alignas(64) float acc[4][kLanes] = {};
    for (int64_t j = 0; j < n_main; j += kLanes) {
#pragma omp simd
      for (int64_t i = 0; i < kLanes; ++i) {
        const float xv = x[j + i];
        acc[0][i] += rows[0][j + i] * xv;
        acc[1][i] += rows[1][j + i] * xv;
        acc[2][i] += rows[2][j + i] * xv;
        acc[3][i] += rows[3][j + i] * xv;
      }
    }
    for (int64_t k = 0; k < nr; ++k) {
      float s = 0.0f;
      for (int64_t i = 0; i < kLanes; ++i) s += acc[k][i];
      for (int64_t j = n_main; j < n_in; ++j) s += rows[k][j] * x[j];
      y[r0 + k] = s;
    }
  }
}

Tensor transpose_f32(const Tensor& w) {
  DSQ_ASSERT(w.dtype() == DType::kF32 && w.ndim() == 2, "transpose_f32 takes a 2-D f32 tensor");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor t(DType::kF32, {cols, rows});
  const float* src = w.data<float>();
  float* dst = t.mutable_data<float>();
  constexpr int64_t kB = 32;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB)
      for (int64_t r = r0; r < std::min(rows, r0 + kB); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kB); ++c) dst[c * rows + r] = src[r * cols + c];
  return t;
}

}  // namespace dsq::model
