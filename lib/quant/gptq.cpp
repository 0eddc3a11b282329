#include "lib/quant/gptq.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/core/log.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"

namespace dsq::quant {
namespace {

// U = upper Cholesky factor of (P H P^T + lambda I)^{-1} for the processing order `perm`, with
// dead diagonal entries set to 1; lambda is raised x10 until the factor exists.
std::vector<double> inverse_factor(const double* h, int64_t n, const std::vector<int64_t>& perm,
                                   double damp, const std::string& name, double* damp_used) {
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[i * n + i];
  mean_diag /= static_cast<double>(std::max<int64_t>(n, 1));
  std::vector<double> u(static_cast<size_t>(n * n));
  double f = damp;
  while (true) {
    for (int64_t i = 0; i < n; ++i) {
      const double* hi = h + perm[static_cast<size_t>(i)] * n;
      double* ui = &u[static_cast<size_t>(i * n)];
      for (int64_t j = 0; j < n; ++j) ui[j] = hi[perm[static_cast<size_t>(j)]];
      if (ui[i] == 0.0) ui[i] = 1.0;  // dead input channel
      ui[i] += f * mean_diag;
    }
    if (linalg::cholesky_inverse_upper(u.data(), n)) break;
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
  return u;
}

}  // namespace

double hessian_quadratic(const float* a, int64_t rows, int64_t cols, const float* h) {
  constexpr int64_t kChunk = 256;
  std::vector<float> ah(static_cast<size_t>(std::min(rows, kChunk) * cols));
  std::vector<double> per_row(static_cast<size_t>(rows));
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t m = std::min(kChunk, rows - r0);
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
  return std::accumulate(per_row.begin(), per_row.end(), 0.0);
}

Tensor gptq_quantize(const float* w_in, int64_t rows, int64_t cols, const double* h_in,
                     const QuantDesc& d, const GptqOptions& opts, GptqStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t rc = static_cast<size_t>(rows * cols), cc = static_cast<size_t>(cols * cols);
  for (size_t i = 0; i < rc; ++i)
    if (!std::isfinite(w_in[i])) throw ShapeError("'" + opts.name + "': non-finite weight");
  for (size_t i = 0; i < cc; ++i)
    if (!std::isfinite(h_in[i])) throw ShapeError("'" + opts.name + "': non-finite Hessian");
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
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (opts.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return h_in[a * cols + a] > h_in[b * cols + b];
    });
    std::vector<float> wp(rc);  // wp[r][i] = w[r][perm[i]]
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i)
        wp[static_cast<size_t>(r * cols + i)] = w[static_cast<size_t>(r * cols + perm[i])];
    w.swap(wp);
  }
  std::vector<float> u;  // f32 for the updates, as the reference does
  {
    const std::vector<double> ud = inverse_factor(h_in, cols, perm, opts.damp, opts.name,
                                                  &st.damp_used);
    u.assign(ud.begin(), ud.end());
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
        const float* ui = &u[static_cast<size_t>(i * cols)];
        const float e = (wr[i] - q) / ui[i];
        for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * ui[j];
        err[static_cast<size_t>(r * B + (i - i1))] = e;
      }
    }
    if (i2 < cols) {  // W[:, i2:] -= E[:, i1:i2] U[i1:i2, i2:]
      linalg::sgemm_tiled(false, false, rows, cols - i2, nb, -1.0f, err.data(), B,
                    &u[static_cast<size_t>(i1 * cols + i2)], cols, 1.0f, &w[static_cast<size_t>(i2)],
                    cols);
    }
  }

  if (stats) {  // Output errors under the undamped H of the original inputs.
    std::vector<float> hf(h_in, h_in + cc);
    st.norm = hessian_quadratic(w_in, rows, cols, hf.data());
    for (size_t i = 0; i < rc; ++i) deq[i] = w_in[i] - deq[i];
    st.err_gptq = hessian_quadratic(deq.data(), rows, cols, hf.data());
    if (opts.report_rtn) {
      RtnOptions ro;
      ro.mse_clip = opts.mse_clip;
      const Tensor rtn = quantize_matrix_rtn(w_in, rows, cols, d, ro);
      dequantize_rows(rtn, 0, rows, deq.data());
      for (size_t i = 0; i < rc; ++i) deq[i] = w_in[i] - deq[i];
      st.err_rtn = hessian_quadratic(deq.data(), rows, cols, hf.data());
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *stats = st;
  }
  return out;
}

}  // namespace dsq::quant
