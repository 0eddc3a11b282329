#include "lib/quant/gptq.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numeric>
#include <optional>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/core/log.h"
#include "lib/core/memory.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"

namespace dsq::quant {
namespace {

// U = upper Cholesky factor of (P H P^T + lambda I)^{-1} for the processing order `perm`, with
// dead diagonal entries set to 1; lambda is raised x10 until the factor exists. Computed in f64,
// then narrowed to f32 inside the same buffer, which is shrunk to half: the peak is the f64 matrix
// alone (8 cols^2 bytes; 2.7 GB for a 18432-input down projection), not f64 + f32.
FactorBuffer inverse_factor(const double* h, int64_t n, const std::vector<int64_t>& perm,
                            double damp, const std::string& name, double* damp_used) {
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[i * n + i];
  mean_diag /= static_cast<double>(std::max<int64_t>(n, 1));
  const size_t nn = static_cast<size_t>(n * n);
  FactorBuffer buf(static_cast<float*>(std::malloc(std::max<size_t>(nn, 1) * sizeof(double))));
  if (!buf) throw std::bad_alloc();
  advise_huge_pages(buf.get(), nn * sizeof(double));
  auto* u = reinterpret_cast<double*>(buf.get());  // the storage holds doubles until narrowed
  double f = damp;
  while (true) {
    for (int64_t i = 0; i < n; ++i) {
      const double* hi = h + perm[static_cast<size_t>(i)] * n;
      double* ui = u + i * n;
      for (int64_t j = 0; j < n; ++j) ui[j] = hi[perm[static_cast<size_t>(j)]];
      if (ui[i] == 0.0) ui[i] = 1.0;  // dead input channel
      ui[i] += f * mean_diag;
    }
    if (linalg::cholesky_inverse_upper(u, n)) break;
    f = f == 0.0 ? 0.01 : f * 10.0;
    if (f > 100.0) {
      throw Error("'" + name + "': Hessian is not positive definite even with damp 100");
    }
  }
  if (f != damp) {
    log_warn(strprintf("'%s': Hessian not positive definite with damp %g, used damp %g",
                       name.c_str(), damp, f));
  }
  *damp_used = f;
  // Narrow in place, front to back: float k (bytes [4k, 4k+4)) never overwrites a double not yet
  // read (bytes [8j, 8j+8), j >= k). memcpy keeps the type punning defined.
  auto* bytes = reinterpret_cast<unsigned char*>(buf.get());
  for (size_t k = 0; k < nn; ++k) {
    double v;
    std::memcpy(&v, bytes + 8 * k, 8);
    const auto x = static_cast<float>(v);
    std::memcpy(bytes + 4 * k, &x, 4);
  }
  if (void* p = std::realloc(buf.get(), std::max<size_t>(nn, 1) * sizeof(float))) {
    (void)buf.release();
    buf.reset(static_cast<float*>(p));
  }
  return buf;
}

}  // namespace

double hessian_quadratic(const float* a, int64_t rows, int64_t cols, const float* h,
                         int64_t max_rows) {
  constexpr int64_t kChunk = 256;
  const int64_t used = max_rows > 0 && rows > max_rows ? max_rows : rows;
  auto row_of = [&](int64_t k) {
    return used == rows ? k
                        : static_cast<int64_t>((static_cast<double>(k) + 0.5) *
                                               static_cast<double>(rows) / static_cast<double>(used));
  };
  std::vector<float> sub;  // the sampled rows, contiguous
  if (used != rows) {
    sub.resize(static_cast<size_t>(used * cols));
    for (int64_t k = 0; k < used; ++k)
      std::copy(a + row_of(k) * cols, a + (row_of(k) + 1) * cols, sub.begin() + k * cols);
    a = sub.data();
  }
  std::vector<float> ah(static_cast<size_t>(std::min(used, kChunk) * cols));
  std::vector<double> per_row(static_cast<size_t>(used));
  for (int64_t r0 = 0; r0 < used; r0 += kChunk) {
    const int64_t m = std::min(kChunk, used - r0);
    linalg::sgemm_tiled(false, false, m, cols, cols, 1.0f, a + r0 * cols, cols, h, cols, 0.0f,
                  ah.data(), cols);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      double s = 0.0;
      for (int64_t c = 0; c < cols; ++c)
        s += static_cast<double>(a[(r0 + r) * cols + c]) * ah[static_cast<size_t>(r * cols + c)];
      per_row[static_cast<size_t>(r0 + r)] = s;
    }
  }
  const double sum = std::accumulate(per_row.begin(), per_row.end(), 0.0);
  return used == rows ? sum : sum * static_cast<double>(rows) / static_cast<double>(used);
}

GptqFactor gptq_factor(const double* h, int64_t cols, const GptqOptions& opts) {
  const size_t cc = static_cast<size_t>(cols * cols);
  for (size_t i = 0; i < cc; ++i)
    if (!std::isfinite(h[i])) throw ShapeError("'" + opts.name + "': non-finite Hessian");
  GptqFactor f;
  f.cols = cols;
  f.perm.resize(static_cast<size_t>(cols));
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (opts.act_order)
    std::stable_sort(f.perm.begin(), f.perm.end(),
                     [&](int64_t a, int64_t b) { return h[a * cols + a] > h[b * cols + b]; });
  f.u = inverse_factor(h, cols, f.perm, opts.damp, opts.name, &f.damp_used);  // f32 updates, as
  return f;                                                                    // the reference
}

Tensor gptq_quantize(const float* w_in, int64_t rows, int64_t cols, const double* h_in,
                     const QuantDesc& d, const GptqOptions& opts, GptqStats* stats,
                     const GptqFactor* factor, const float* h_f32) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t rc = static_cast<size_t>(rows * cols), cc = static_cast<size_t>(cols * cols);
  for (size_t i = 0; i < rc; ++i)
    if (!std::isfinite(w_in[i])) throw ShapeError("'" + opts.name + "': non-finite weight");
  std::optional<GptqFactor> own;
  if (!factor) factor = &own.emplace(gptq_factor(h_in, cols, opts));
  DSQ_ASSERT(factor->cols == cols, "GPTQ factor of %lld columns for a linear of %lld",
             static_cast<long long>(factor->cols), static_cast<long long>(cols));
  const std::vector<int64_t>& perm = factor->perm;
  const float* u = factor->u.get();
  Tensor out = make_quant_tensor(rows, cols, d);
  QuantMatrix qm(out);
  const int64_t G = qm.group();
  // Lazily fitted groups must see every earlier update, so a group may not start inside a block
  // and end after it: blocks hold whole groups (B a multiple of G) or groups whole blocks.
  int64_t B = std::max<int64_t>(1, opts.block);
  const bool static_groups = opts.act_order || G >= cols;
  if (!static_groups && B % G != 0 && G % B != 0) B = B > G ? B / G * G : G;

  // Dead columns (H_ii == 0) are zeroed; w keeps the original column order.
  std::vector<float> w(w_in, w_in + rc);
  GptqStats st;
  for (int64_t i = 0; i < cols; ++i) {
    if (h_in[i * cols + i] != 0.0) continue;
    for (int64_t r = 0; r < rows; ++r) w[static_cast<size_t>(r * cols + i)] = 0.0f;
    ++st.dead_cols;
  }
  // Static group params (act-order or per-channel): fitted on the original columns.
  if (static_groups) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < qm.n_groups(); ++g) {
        const int64_t c0 = g * G, n = std::min(G, cols - c0);
        qm.set_params(r, g, qm.row().fit(&w[static_cast<size_t>(r * cols + c0)], n, nullptr,
                                         opts.mse_clip));
      }
    }
  }
  st.damp_used = factor->damp_used;
  if (opts.act_order) {
    std::vector<float> wp(rc);  // wp[r][i] = w[r][perm[i]]
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i)
        wp[static_cast<size_t>(r * cols + i)] = w[static_cast<size_t>(r * cols + perm[i])];
    w.swap(wp);
  }
  std::vector<float> err(static_cast<size_t>(rows * B));  // E[:, block] scaled errors
  std::vector<float> deq(rc);                              // Q in original column order
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    const int64_t i2 = std::min(cols, i1 + B), nb = i2 - i1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* wr = &w[static_cast<size_t>(r * cols)];
      for (int64_t i = i1; i < i2; ++i) {
        const int64_t c = perm[static_cast<size_t>(i)];
        if (!static_groups && c % G == 0) {
          const int64_t n = std::min(G, cols - c);
          qm.set_params(r, c / G, qm.row().fit(wr + i, n, nullptr, opts.mse_clip));
        }
        const float q = qm.quantize_store(r, c, wr[i]);
        deq[static_cast<size_t>(r * cols + c)] = q;
        const float* ui = u + i * cols;
        const float e = (wr[i] - q) / ui[i];
        for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
        err[static_cast<size_t>(r * B + (i - i1))] = e;
      }
    }
    if (i2 < cols) {  // W[:, i2:] -= E[:, i1:i2] U[i1:i2, i2:]
      linalg::sgemm_tiled(false, false, rows, cols - i2, nb, -1.0f, err.data(), B,
                    u + i1 * cols + i2, cols, 1.0f, &w[static_cast<size_t>(i2)],
                    cols);
    }
  }

  if (stats) {  // Output errors under the undamped H of the original inputs.
    std::vector<float> own_hf;  // H as f32 for the traces, unless the caller has it
    if (!h_f32) {
      own_hf.assign(h_in, h_in + cc);
      h_f32 = own_hf.data();
    }
    const float* hf = h_f32;
    st.norm = hessian_quadratic(w_in, rows, cols, hf, kOutputErrorRows);
    for (size_t i = 0; i < rc; ++i) deq[i] = w_in[i] - deq[i];
    st.err_gptq = hessian_quadratic(deq.data(), rows, cols, hf, kOutputErrorRows);
    if (opts.report_rtn) {
      RtnOptions ro;
      ro.mse_clip = opts.mse_clip;
      const Tensor rtn = quantize_matrix_rtn(w_in, rows, cols, d, ro);
      dequantize_rows(rtn, 0, rows, deq.data());
      for (size_t i = 0; i < rc; ++i) deq[i] = w_in[i] - deq[i];
      st.err_rtn = hessian_quadratic(deq.data(), rows, cols, hf, kOutputErrorRows);
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *stats = st;
  }
  return out;
}

}  // namespace dsq::quant
