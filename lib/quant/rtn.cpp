#include "lib/quant/rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lib/core/dtype.h"
#include "lib/core/error.h"
#include "lib/core/parallel.h"
#include "lib/core/quant_view.h"

namespace dsq::quant {
namespace {

constexpr double kF16Max = 65504.0;

// The smallest f16 value >= s (s >= 0), saturating at the largest finite f16.
float f16_round_up(double s) {
  if (!(s > 0.0)) return 0.0f;
  if (s >= kF16Max) return static_cast<float>(kF16Max);
  uint16_t h = f32_to_f16(static_cast<float>(s));
  if (static_cast<double>(f16_to_f32(h)) < s) ++h;  // positive finite: next representable up
  return f16_to_f32(h);
}

}  // namespace

GroupParams params_for_range(float lo, float hi, const QuantDesc& d) {
  const int bits = d.bits();
  const double l = std::min(static_cast<double>(lo), 0.0);
  const double h = std::max(static_cast<double>(hi), 0.0);
  GroupParams p;
  if (d.sym()) {
    const double qmax = static_cast<double>((1 << (bits - 1)) - 1);
    p.scale = f16_round_up(std::max(-l, h) / qmax);
    p.zero = static_cast<uint8_t>(1u << (bits - 1));
  } else {
    const double maxq = static_cast<double>((1 << bits) - 1);
    p.scale = f16_round_up((h - l) / maxq);
    auto fit_zero = [&] {
      if (p.scale > 0.0f)
        p.zero = static_cast<uint8_t>(std::clamp(std::nearbyint(-l / p.scale), 0.0, maxq));
    };
    fit_zero();
    if (d.info().f16_min) {
      // The smallest f16 scale (from the one above, upwards) whose product with its group's zero
      // is an exact f16, so that ggml Q4_1's min m = -scale x zero loses nothing. Ends within 16
      // steps: an f16 whose 4 low bits are zero has at most 7 significant bits (or is a multiple of
      // 16 subnormal units), and times a zero below 16 that fits f16's 11 bits.
      while (!f16_min_exact(p.scale, p.zero) && p.scale < static_cast<float>(kF16Max)) {
        p.scale = f16_to_f32(static_cast<uint16_t>(f32_to_f16(p.scale) + 1));
        fit_zero();
      }
    }
  }
  return p;
}

double group_sq_error(const float* w, int64_t n, GroupParams p, int bits, const float* importance) {
  double err = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(w[i]) - dequantize_value(quantize_value(w[i], p, bits), p);
    err += (importance ? static_cast<double>(importance[i]) : 1.0) * e * e;
  }
  return err;
}

GroupParams fit_group(const float* w, int64_t n, const QuantDesc& d, const float* importance,
                      bool mse_clip) {
  // The range always contains 0. Min and max in 16 independent lanes so they vectorize (the
  // same result as one running min/max: NaNs never compare, and 0 starts every lane).
  constexpr int64_t kLanes = 16;
  float lo_l[kLanes] = {}, hi_l[kLanes] = {};
  const int64_t body = n - n % kLanes;
  for (int64_t i = 0; i < body; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      lo_l[l] = w[i + l] < lo_l[l] ? w[i + l] : lo_l[l];
      hi_l[l] = w[i + l] > hi_l[l] ? w[i + l] : hi_l[l];
    }
  for (int64_t i = body; i < n; ++i) {
    lo_l[i - body] = w[i] < lo_l[i - body] ? w[i] : lo_l[i - body];
    hi_l[i - body] = w[i] > hi_l[i - body] ? w[i] : hi_l[i - body];
  }
  float lo = 0.0f, hi = 0.0f;
  for (int64_t l = 0; l < kLanes; ++l) {
    if (lo_l[l] < lo) lo = lo_l[l];
    if (hi_l[l] > hi) hi = hi_l[l];
  }
  GroupParams best = params_for_range(lo, hi, d);
  if (!mse_clip || best.scale == 0.0f) return best;
  double best_err = group_sq_error(w, n, best, d.bits(), importance);
  for (int i = 1; i < kClipGrid; ++i) {
    const float shrink = 1.0f - static_cast<float>(i) / 100.0f;
    const GroupParams p = params_for_range(shrink * lo, shrink * hi, d);
    const double err = group_sq_error(w, n, p, d.bits(), importance);
    if (err < best_err) {
      best_err = err;
      best = p;
    }
  }
  return best;
}

QuantMatrix::QuantMatrix(Tensor& t) {
  DSQ_ASSERT(t.dtype() == DType::kQInt && t.ndim() == 2, "QuantMatrix needs a 2-D qint tensor");
  DSQ_ASSERT(t.quant().info().quantize_target(), "QuantMatrix of a storage-only scheme");
  d_ = t.quant();
  row_ = &quant_traits(d_);
  L_ = quant_layout(d_, t.dim(0), t.dim(1));
  std::byte* base = t.mutable_bytes();
  codes_ = reinterpret_cast<uint8_t*>(base + L_.codes_offset);
  scales_ = reinterpret_cast<uint16_t*>(base + L_.scales_offset);
  zeros_ = d_.sym() ? nullptr : reinterpret_cast<uint8_t*>(base + L_.zeros_offset);
}

void QuantMatrix::set_params(int64_t r, int64_t g, GroupParams p) {
  const uint16_t h = f32_to_f16(p.scale);
  DSQ_ASSERT(f16_to_f32(h) == p.scale, "group scale %g is not f16-exact", static_cast<double>(p.scale));
  scales_[r * L_.n_groups + g] = h;
  if (zeros_) zeros_[r * L_.n_groups + g] = p.zero;
}

GroupParams QuantMatrix::params(int64_t r, int64_t g) const {
  GroupParams p;
  p.scale = f16_to_f32(scales_[r * L_.n_groups + g]);
  p.zero = zeros_ ? zeros_[r * L_.n_groups + g] : static_cast<uint8_t>(1u << (d_.bits() - 1));
  return p;
}

float QuantMatrix::quantize_store(int64_t r, int64_t c, float w) {
  const GroupParams p = params(r, group_of(c));
  const uint32_t q = row_->encode(w, p);
  set_code(r, c, q);
  return row_->decode(q, p);
}

QRowRef QuantMatrix::row(int64_t r) {
  return QRowRef{codes_ + r * L_.row_code_bytes, scales_ + r * L_.n_groups,
                 zeros_ ? zeros_ + r * L_.n_groups : nullptr};
}

QRowView QuantMatrix::row(int64_t r) const {
  return QRowView{codes_ + r * L_.row_code_bytes, scales_ + r * L_.n_groups,
                  zeros_ ? zeros_ + r * L_.n_groups : nullptr};
}

QRowView qrow(const Tensor& t, int64_t r) {
  DSQ_DASSERT(t.dtype() == DType::kQInt && t.ndim() == 2, "qrow needs a 2-D qint tensor");
  const QuantDesc& d = t.quant();
  const QuantLayout L = quant_layout(d, t.dim(0), t.dim(1));
  const auto* base = reinterpret_cast<const uint8_t*>(t.bytes());
  if (d.info().layout == SchemeLayout::kBlockFp8)
    return QRowView{base + r * L.row_code_bytes, nullptr, nullptr,
                    reinterpret_cast<const float*>(base + L.scales_offset) + (r / L.group) * L.n_groups};
  return QRowView{base + L.codes_offset + r * L.row_code_bytes,
                  reinterpret_cast<const uint16_t*>(base + L.scales_offset) + r * L.n_groups,
                  d.sym() ? nullptr : base + L.zeros_offset + r * L.n_groups};
}

Tensor make_quant_tensor(int64_t rows, int64_t cols, const QuantDesc& d) {
  quant_traits(d);  // throws ConfigError for an unsupported width
  return Tensor(DType::kQInt, Shape{rows, cols}, &d);
}

double QuantErrorStats::sqnr_db() const {
  if (err_sq <= 0.0) return norm_sq > 0.0 ? INFINITY : 0.0;
  return 10.0 * std::log10(norm_sq / err_sq);
}

namespace {

// Per-row squared error and norm (f64), summed in row order afterwards: thread-count independent.
struct RowErrors {
  std::vector<double> err, nrm;
  explicit RowErrors(int64_t rows) : err(static_cast<size_t>(rows)), nrm(err.size()) {}
  void set(int64_t r, const float* w, const float* deq, int64_t cols) {
    row_sq_errors(w, deq, cols, &err[static_cast<size_t>(r)], &nrm[static_cast<size_t>(r)]);
  }
  QuantErrorStats total() const {
    QuantErrorStats s;
    for (size_t r = 0; r < err.size(); ++r) {
      s.err_sq += err[r];
      s.norm_sq += nrm[r];
    }
    return s;
  }
};

// Quantize rows of a float source that `fetch(r, buf)` converts to f32 one row at a time.
template <class Fetch>
Tensor quantize_rows(int64_t rows, int64_t cols, const QuantDesc& d, const RtnOptions& opts,
                     QuantErrorStats* stats, Fetch fetch) {
  const QuantTraits& tr = quant_traits(d);
  Tensor out = make_quant_tensor(rows, cols, d);
  QuantMatrix qm(out);
  const int64_t G = qm.group();
  const bool weighted = opts.mse_clip;
  RowErrors row_err(stats ? rows : 0);
  ParallelErrors errors;
  // Small matrices stay on one thread: a parallel region costs more than it saves.
#pragma omp parallel if (rows * cols >= (int64_t{1} << 15))
  {
    std::vector<float> buf(static_cast<size_t>(cols)), deq(stats ? static_cast<size_t>(cols) : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      errors.run([&] {
        const float* w = fetch(r, buf.data());
        if (weighted) {
          tr.quantize_weighted(w, opts.importance, cols, G, qm.row(r));
        } else {
          tr.quantize_row(w, cols, G, qm.row(r));
        }
        if (stats) {
          tr.dequantize_row(static_cast<const QuantMatrix&>(qm).row(r), cols, G, deq.data());
          row_err.set(r, w, deq.data(), cols);
        }
      });
    }
  }
  errors.rethrow();
  if (stats) *stats = row_err.total();
  return out;
}

void require_2d_float(const Tensor& w, const char* what) {
  if (w.ndim() != 2) throw ShapeError(strprintf("%s: expected a 2-D tensor, got %s", what, shape_str(w.shape()).c_str()));
  if (!dtype_is_float(w.dtype()))
    throw FormatError(strprintf("%s: expected a float tensor, got %s", what,
                                std::string(dtype_name(w.dtype())).c_str()));
}

}  // namespace

Tensor quantize_matrix_rtn(const float* w, int64_t rows, int64_t cols, const QuantDesc& d,
                           const RtnOptions& opts, QuantErrorStats* stats) {
  return quantize_rows(rows, cols, d, opts, stats,
                       [&](int64_t r, float*) { return w + r * cols; });
}

Tensor quantize_tensor_rtn(const Tensor& w, const QuantDesc& d, const RtnOptions& opts,
                           QuantErrorStats* stats) {
  require_2d_float(w, "quantize");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (w.dtype() == DType::kF32) return quantize_matrix_rtn(w.data<float>(), rows, cols, d, opts, stats);
  const size_t es = dtype_size(w.dtype());
  return quantize_rows(rows, cols, d, opts, stats, [&](int64_t r, float* buf) {
    // convert_elements widens f16 through F16C and bf16 by a shift (lib/core/dtype.cpp).
    convert_elements(w.dtype(), w.bytes() + static_cast<size_t>(r * cols) * es, DType::kF32, buf,
                     static_cast<size_t>(cols));
    return static_cast<const float*>(buf);
  });
}

void row_sq_errors(const float* w, const float* deq, int64_t cols, double* err, double* nrm) {
  constexpr int64_t kLanes = 8;
  double el[kLanes] = {}, nl[kLanes] = {};
  const int64_t body = cols - cols % kLanes;
  for (int64_t c = 0; c < body; c += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const double x = w[c + l], dx = x - static_cast<double>(deq[c + l]);
      el[l] += dx * dx;
      nl[l] += x * x;
    }
  for (int64_t c = body; c < cols; ++c) {
    const double x = w[c], dx = x - static_cast<double>(deq[c]);
    el[c - body] += dx * dx;
    nl[c - body] += x * x;
  }
  double e = 0.0, n = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) {
    e += el[l];
    n += nl[l];
  }
  *err = e;
  *nrm = n;
}

QuantErrorStats quant_error(const Tensor& w, const Tensor& q) {
  require_2d_float(w, "quant_error");
  DSQ_ASSERT(q.dtype() == DType::kQInt && q.shape() == w.shape(), "quant_error: shape mismatch");
  const QuantTraits& tr = quant_traits(q.quant());
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const QuantLayout L = quant_layout(q.quant(), rows, cols);
  const size_t es = dtype_size(w.dtype());
  RowErrors row_err(rows);
#pragma omp parallel if (rows * cols >= (int64_t{1} << 15))
  {
    std::vector<float> src(static_cast<size_t>(cols)), deq(src.size());
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      convert_elements(w.dtype(), w.bytes() + static_cast<size_t>(r * cols) * es, DType::kF32,
                       src.data(), src.size());
      tr.dequantize_row(qrow(q, r), cols, L.group, deq.data());
      row_err.set(r, src.data(), deq.data(), cols);
    }
  }
  return row_err.total();
}

}  // namespace dsq::quant
