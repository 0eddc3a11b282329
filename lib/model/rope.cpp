#include "lib/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dsq::model {

double yarn_mscale(double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.rope_dims(), half = dim / 2;
  const double base = c.rope_theta;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[static_cast<size_t>(i)] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
  const RopeScaling& y = c.rope_scaling;
  if (y.type != "yarn") return inv;
  const double orig = static_cast<double>(y.original_max_position);
  auto corr_dim = [&](double n) {
    return static_cast<double>(dim) * std::log(orig / (n * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(base));
  };
  double low = corr_dim(y.beta_fast), high = corr_dim(y.beta_slow);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double ext = 1.0 - ramp;
    const double extrap = inv[static_cast<size_t>(i)], interp = extrap / y.factor;
    inv[static_cast<size_t>(i)] = interp * (1.0 - ext) + extrap * ext;
  }
  return inv;
}

double rope_attention_factor(const ModelConfig& c) {
  const RopeScaling& y = c.rope_scaling;
  if (y.type != "yarn") return 1.0;
  if (y.attention_factor > 0) return y.attention_factor;
  if (y.mscale != 0 && y.mscale_all_dim != 0)
    return yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim);
  return yarn_mscale(y.factor, 1.0);
}

RopeTable make_rope_table(const ModelConfig& c, int64_t pos0, int64_t T) {
  const std::vector<double> inv = rope_inv_freq(c);
  const double af = rope_attention_factor(c);
  RopeTable t;
  t.T = T;
  t.half = static_cast<int64_t>(inv.size());
  t.cos.resize(static_cast<size_t>(T * t.half));
  t.sin.resize(static_cast<size_t>(T * t.half));
  // Angles in f64: positions up to 1e5 keep full f32 accuracy.
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < t.half; ++i) {
      const double a = static_cast<double>(pos0 + p) * inv[static_cast<size_t>(i)];
      t.cos[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::cos(a) * af);
      t.sin[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::sin(a) * af);
    }
  return t;
}

void apply_rope(float* x, int64_t rows, int64_t T, int64_t ld, int64_t n_heads,
                int64_t head_stride, int64_t offset, const RopeTable& t, bool interleave) {
  const int64_t half = t.half;
#pragma omp parallel for schedule(static) if (rows * n_heads * half > (1 << 17))
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = t.cos.data() + (r % T) * half;
    const float* s = t.sin.data() + (r % T) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + r * ld + h * head_stride + offset;
      if (interleave) {
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = xh[2 * i], x2 = xh[2 * i + 1];
          xh[2 * i] = x1 * c[i] - x2 * s[i];
          xh[2 * i + 1] = x2 * c[i] + x1 * s[i];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = xh[i], x2 = xh[i + half];
          xh[i] = x1 * c[i] - x2 * s[i];
          xh[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }
}

}  // namespace dsq::model
