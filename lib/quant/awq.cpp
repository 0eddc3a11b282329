#include "lib/quant/awq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/core/quant_layout.h"
#include "lib/quant/gptq.h"

namespace dsq::quant {
namespace {

constexpr double kMinScale = 1e-4;  // the reference's clamp of s before normalising

void require_finite(const double* v, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) throw ShapeError(std::string("awq: non-finite ") + what);
}

// The clamped range of one group at clip ratio p: [max(lo, -p a), min(hi, p a)], a = max |w|,
// lo = min(min w, 0), hi = max(max w, 0). p = 1 leaves [lo, hi] (plain min/max).
void clip_range(const float* w, int64_t n, float p, float* lo, float* hi) {
  float l = 0.0f, h = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    l = std::min(l, w[i]);
    h = std::max(h, w[i]);
  }
  if (p < 1.0f) {
    const float m = p * std::max(-l, h);
    l = std::max(l, -m);
    h = std::min(h, m);
  }
  *lo = l;
  *hi = h;
}

// dequant(quant(clamp(w, lo, hi))) of one group into out; returns the params.
GroupParams quantize_group(const float* w, int64_t n, float lo, float hi, const QuantDesc& d,
                           float* out) {
  const QuantTraits& row = quant_traits(d);
  const GroupParams p = row.fit_range(lo, hi);
  row.encode_group(w, n, lo, hi, p, nullptr, out);
  return p;
}

std::vector<float> to_f32(const double* h, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n * n));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(h[i]);
  return out;
}

}  // namespace

std::vector<float> awq_scales(const double* m, int64_t n, double alpha, const int64_t* tie,
                              int64_t n_slots) {
  // Slot means (a slot per channel without ties).
  const int64_t slots = tie ? n_slots : n;
  std::vector<double> mean(static_cast<size_t>(slots), 0.0), count(mean.size(), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t k = tie ? tie[j] : j;
    DSQ_ASSERT(k >= 0 && k < slots, "awq_scales: tie slot %lld out of range", static_cast<long long>(k));
    mean[static_cast<size_t>(k)] += m[j];
    count[static_cast<size_t>(k)] += 1.0;
  }
  std::vector<double> s(mean.size(), 1.0);
  double lo = INFINITY, hi = 0.0;
  for (size_t k = 0; k < s.size(); ++k) {
    if (count[k] == 0.0) continue;  // a slot no channel reads: leave at 1 (never used)
    s[k] = std::max(std::pow(mean[k] / count[k], alpha), kMinScale);
    lo = std::min(lo, s[k]);
    hi = std::max(hi, s[k]);
  }
  const double norm = hi > 0.0 ? std::sqrt(lo * hi) : 1.0;
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    out[static_cast<size_t>(j)] = static_cast<float>(s[static_cast<size_t>(tie ? tie[j] : j)] / norm);
  return out;
}

void fake_quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantDesc& d, float* out) {
  const int64_t G = quant_layout(d, rows, cols).group;
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 15))
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += G) {
      const int64_t len = std::min(G, cols - c0);
      float lo, hi;
      clip_range(w + r * cols + c0, len, 1.0f, &lo, &hi);
      quantize_group(w + r * cols + c0, len, lo, hi, d, out + r * cols + c0);
    }
  }
}

AwqScaleResult awq_search_scales(const std::vector<AwqLinear>& linears, int64_t n, const double* h,
                                 const double* m, const QuantDesc& d, const AwqOptions& o,
                                 const int64_t* tie, int64_t n_slots) {
  DSQ_ASSERT(o.grid >= 1, "awq: grid must be positive");
  require_finite(h, static_cast<size_t>(n * n), "input statistics (hessian)");
  require_finite(m, static_cast<size_t>(n), "input statistics (abs_mean)");
  const std::vector<float> h32 = to_f32(h, n);
  int64_t max_rows = 0;
  for (const auto& l : linears) {
    max_rows = std::max(max_rows, l.rows);
    for (int64_t i = 0; i < l.rows * n; ++i)
      if (!std::isfinite(l.w[i])) throw ShapeError("awq: non-finite weight");
  }
  std::vector<float> buf(static_cast<size_t>(max_rows * n));
  AwqScaleResult res;
  for (const auto& l : linears) res.norm += hessian_quadratic(l.w, l.rows, n, h32.data());
  double best = INFINITY;
  for (int i = 0; i < o.grid; ++i) {
    const double alpha = static_cast<double>(i) / o.grid;
    const std::vector<float> s = awq_scales(m, n, alpha, tie, n_slots);
    double err = 0.0;
    for (const auto& l : linears) {
      // buf = W diag(s) -> fake-quantized -> E = W - Q diag(s)^-1 (in place).
      for (int64_t r = 0; r < l.rows; ++r)
        for (int64_t j = 0; j < n; ++j) buf[static_cast<size_t>(r * n + j)] = l.w[r * n + j] * s[static_cast<size_t>(j)];
      fake_quantize_rtn(buf.data(), l.rows, n, d, buf.data());
      for (int64_t r = 0; r < l.rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
          float& e = buf[static_cast<size_t>(r * n + j)];
          e = l.w[r * n + j] - e / s[static_cast<size_t>(j)];
        }
      err += hessian_quadratic(buf.data(), l.rows, n, h32.data());
    }
    res.errs.push_back(err);
    if (i == 0) res.err_rtn = err;
    if (err < best) {
      best = err;
      res.alpha = alpha;
      res.err = err;
      res.scales = s;
    }
  }
  return res;
}

std::vector<float> awq_search_clip(const float* w, int64_t rows, int64_t cols, const double* h,
                                   const QuantDesc& d, const AwqOptions& o) {
  require_finite(h, static_cast<size_t>(cols * cols), "input statistics (hessian)");
  const QuantLayout L = quant_layout(d, rows, cols);
  const int64_t G = L.group, ng = L.n_groups;
  const int n_cand = std::max(1, static_cast<int>(o.max_shrink * o.clip_grid));
  // Rows per GEMM: bounds the candidate deltas D and D H_gg to a few MiB.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 19) / (n_cand * G));
  std::vector<float> ratios(static_cast<size_t>(rows * ng), 1.0f);
  std::vector<float> hg(static_cast<size_t>(G * G));
  std::vector<float> dl(static_cast<size_t>(std::min(chunk, rows) * n_cand * G)), hd(dl.size());
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t c0 = g * G, len = std::min(G, cols - c0);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < len; ++k)
        hg[static_cast<size_t>(i * len + k)] = static_cast<float>(h[(c0 + i) * cols + c0 + k]);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      // D[(r, i), :] = w_rg - Q(clip_i(w_rg)) for every row of the chunk and candidate i.
#pragma omp parallel for schedule(static) if (nr * len >= (int64_t{1} << 12))
      for (int64_t r = 0; r < nr; ++r) {
        const float* wg = w + (r0 + r) * cols + c0;
        for (int i = 0; i < n_cand; ++i) {
          float* dr = dl.data() + (r * n_cand + i) * len;
          float lo, hi;
          clip_range(wg, len, 1.0f - static_cast<float>(i) / static_cast<float>(o.clip_grid), &lo, &hi);
          quantize_group(wg, len, lo, hi, d, dr);
          for (int64_t k = 0; k < len; ++k) dr[k] = wg[k] - dr[k];
        }
      }
      // The group's output error of every candidate, d^T H_gg d, with one GEMM for the chunk.
      linalg::sgemm_tiled(false, false, nr * n_cand, len, len, 1.0f, dl.data(), len, hg.data(),
                          len, 0.0f, hd.data(), len);
#pragma omp parallel for schedule(static) if (nr * len >= (int64_t{1} << 12))
      for (int64_t r = 0; r < nr; ++r) {
        double best = INFINITY;
        float best_p = 1.0f;
        for (int i = 0; i < n_cand; ++i) {
          const float* dr = dl.data() + (r * n_cand + i) * len;
          const float* hr = hd.data() + (r * n_cand + i) * len;
          double err = 0.0;
          for (int64_t k = 0; k < len; ++k) err += static_cast<double>(dr[k]) * hr[k];
          if (err < best) {
            best = err;
            best_p = 1.0f - static_cast<float>(i) / static_cast<float>(o.clip_grid);
          }
        }
        ratios[static_cast<size_t>((r0 + r) * ng + g)] = best_p;
      }
    }
  }
  return ratios;
}

Tensor quantize_clipped(const float* w, int64_t rows, int64_t cols, const QuantDesc& d,
                        const float* ratios, QuantErrorStats* stats) {
  Tensor out = make_quant_tensor(rows, cols, d);
  QuantMatrix qm(out);
  const QuantTraits& row = qm.row();
  const int64_t G = qm.group(), ng = qm.n_groups();
  std::vector<double> err(static_cast<size_t>(rows)), nrm(err.size());
#pragma omp parallel if (rows * cols >= (int64_t{1} << 15))
  {
    std::vector<float> deq(static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = g * G, len = std::min(G, cols - c0);
        const float* wg = w + r * cols + c0;
        float lo, hi;
        clip_range(wg, len, ratios ? ratios[r * ng + g] : 1.0f, &lo, &hi);
        const GroupParams p = row.fit_range(lo, hi);
        qm.set_params(r, g, p);
        uint32_t codes[256];
        for (int64_t k = 0; k < len; k += 256) {
          const int64_t n = std::min<int64_t>(256, len - k);
          row.encode_group(wg + k, n, lo, hi, p, codes, deq.data() + c0 + k);
          for (int64_t i = 0; i < n; ++i) qm.set_code(r, c0 + k + i, codes[i]);
        }
      }
      row_sq_errors(w + r * cols, deq.data(), cols, &err[static_cast<size_t>(r)],
                    &nrm[static_cast<size_t>(r)]);
    }
  }
  if (stats) {
    stats->err_sq = std::accumulate(err.begin(), err.end(), 0.0);
    stats->norm_sq = std::accumulate(nrm.begin(), nrm.end(), 0.0);
  }
  return out;
}

}  // namespace dsq::quant
