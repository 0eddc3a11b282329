#include "lib/model/block.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "lib/core/error.h"
#include "lib/core/linalg.h"

namespace dsq::model {

namespace {

using Buf = std::vector<float>;

Buf alloc(int64_t n) { return Buf(static_cast<size_t>(n)); }

// Throws unless canonical tensor `name` exists with the shape the config implies.
void check_shape(const WeightStore& ws, const std::string& name) {
  const auto& e = ws.entry(name);
  const auto want = expected_shape(ws.config, name);
  if (want && *want != e.shape)
    throw ShapeError("'" + e.source + "': tensor '" + name + "' has shape " + shape_str(e.shape) +
                     ", the config implies " + shape_str(*want));
}

Tensor load_norm(const WeightStore& ws, const std::string& name) {
  check_shape(ws, name);
  return ws.get_f32(name);
}

std::string bias_name(int64_t layer, const char* short_name) {
  return "blk." + std::to_string(layer) + "." + short_name + ".bias";
}

// `bias`: the family requires one; otherwise an optional bias (structured pruning's bias
// compensation on attn_output / ffn_down) is used when the store has it.
Linear load_linear(const WeightStore& ws, int64_t layer, const char* short_name, bool bias) {
  const std::string name = linear_name(layer, short_name);
  check_shape(ws, name);
  std::string bname = bias_name(layer, short_name);
  if (bias || ws.has(bname))
    check_shape(ws, bname);
  else
    bname.clear();
  return Linear::load(ws, name, bname);
}

// The bias left of a sub-block that pruning removed entirely (0 heads or 0 d_ff): a constant
// added to the residual stream. Empty when absent.
Tensor load_orphan_bias(const WeightStore& ws, int64_t layer, const char* short_name) {
  const std::string name = bias_name(layer, short_name);
  if (!ws.has(name)) return {};
  const auto& e = ws.entry(name);
  if (e.shape != Shape{ws.config.d_model})
    throw ShapeError("'" + e.source + "': tensor '" + name + "' has shape " + shape_str(e.shape) +
                     ", expected [" + std::to_string(ws.config.d_model) + "]");
  return ws.get_f32(name);
}

void add_row_bias(float* h, const Tensor& bias, int64_t rows) {
  const int64_t d = bias.numel();
  const float* b = bias.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i) h[r * d + i] += b[i];
}

// Runs one linear with its observer hooks.
void run_linear(const Linear& lin, const float* x, int64_t rows, float* y, Observer* obs,
                int64_t layer, const char* name) {
  if (obs) obs->on_linear_input(layer, name, ActView{x, rows, lin.n_in()});
  lin.forward(x, rows, y);
  if (obs) obs->on_linear_output(layer, name, ActView{y, rows, lin.n_out()});
}

// exp(x) for x <= 0 (softmax after max subtraction), written so the compiler vectorizes it:
// x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial (relative error < 2e-8,
// below f32 rounding), times 2^n assembled in the exponent bits. Underflows to 0 below -87.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

void add_inplace(float* h, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
  for (int64_t i = 0; i < n; ++i) h[i] += x[i];
}

}  // namespace

Linear* BlockWeights::linear(std::string_view short_name) {
  return const_cast<Linear*>(static_cast<const BlockWeights*>(this)->linear(short_name));
}

const Linear* BlockWeights::linear(std::string_view short_name) const {
  static const std::pair<std::string_view, Linear BlockWeights::*> kMembers[] = {
      {"attn_q", &BlockWeights::attn_q},       {"attn_k", &BlockWeights::attn_k},
      {"attn_v", &BlockWeights::attn_v},       {"attn_output", &BlockWeights::attn_output},
      {"ffn_gate", &BlockWeights::ffn_gate},   {"ffn_up", &BlockWeights::ffn_up},
      {"ffn_down", &BlockWeights::ffn_down}};
  for (const auto& [name, member] : kMembers)
    if (name == short_name) return &(this->*member);
  return nullptr;
}

Tensor* BlockWeights::norm(std::string_view short_name) {
  return const_cast<Tensor*>(static_cast<const BlockWeights*>(this)->norm(short_name));
}

const Tensor* BlockWeights::norm(std::string_view short_name) const {
  if (short_name == "attn_norm") return &attn_norm;
  if (short_name == "ffn_norm") return &ffn_norm;
  return nullptr;
}

BlockWeights BlockWeights::load(const WeightStore& ws, int64_t layer) {
  DSQ_ASSERT(ws.has_config, "BlockWeights::load without a config");
  const ModelConfig& c = ws.config;
  DSQ_ASSERT(layer >= 0 && layer < c.n_layers, "layer %lld out of range",
             static_cast<long long>(layer));
  BlockWeights w;
  w.layer = layer;
  w.dims = c.layer(layer);
  const std::string p = "blk." + std::to_string(layer) + ".";
  if (w.has_attn()) {
    w.attn_norm = load_norm(ws, p + "attn_norm.weight");
    w.attn_q = load_linear(ws, layer, "attn_q", c.qkv_bias);
    w.attn_k = load_linear(ws, layer, "attn_k", c.qkv_bias);
    w.attn_v = load_linear(ws, layer, "attn_v", c.qkv_bias);
    w.attn_output = load_linear(ws, layer, "attn_output", false);
  } else {
    w.attn_bias_only = load_orphan_bias(ws, layer, "attn_output");
  }
  if (w.has_ffn()) {
    w.ffn_norm = load_norm(ws, p + "ffn_norm.weight");
    w.ffn_gate = load_linear(ws, layer, "ffn_gate", false);
    w.ffn_up = load_linear(ws, layer, "ffn_up", false);
    w.ffn_down = load_linear(ws, layer, "ffn_down", false);
  } else {
    w.ffn_bias_only = load_orphan_bias(ws, layer, "ffn_down");
  }
  return w;
}

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t d, double eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * d > (1 << 18))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    float* yr = y + r * d;
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

void rope_inplace(float* x, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim, int64_t pos0,
                  double theta) {
  const int64_t half = head_dim / 2;
  // cos/sin table [T, half]; angles in f64 (positions up to 1e5 keep full f32 accuracy).
  Buf cs = alloc(T * half), sn = alloc(T * half);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / head_dim);
      const double a = static_cast<double>(pos0 + t) * inv_freq;
      cs[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(a));
      sn[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(a));
    }
  const int64_t rows = B * T, width = n_heads * head_dim;
#pragma omp parallel for schedule(static) if (rows * width > (1 << 18))
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cs.data() + (r % T) * half;
    const float* s = sn.data() + (r % T) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + r * width + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xh[i], x2 = xh[i + half];
        xh[i] = x1 * c[i] - x2 * s[i];
        xh[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void causal_attention(const float* q, const float* k, const float* v, int64_t ld_kv, int64_t T,
                      int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                      float* out) {
  // Query rows are processed in chunks so that QK^T only covers the keys the chunk can see.
  // Heads run in parallel, each with single-threaded BLAS and its own scratch, so the result does
  // not depend on the thread count.
  constexpr int64_t kChunk = 128;
  const int64_t ldq = n_heads * head_dim, group = n_heads / n_kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const int64_t scratch = std::min(kChunk, T) * (pos0 + T);
  std::vector<Buf> s(static_cast<size_t>(std::min<int64_t>(omp_get_max_threads(), n_heads)));
  for (auto& b : s) b.resize(static_cast<size_t>(scratch));
  linalg::SerialBlasScope serial;
  const bool par = n_heads * T * (pos0 + T) * head_dim >= (int64_t{1} << 24);
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(s.size())) if (par)
  for (int64_t h = 0; h < n_heads; ++h) {
    float* sc = s[static_cast<size_t>(omp_get_thread_num())].data();
    const float* kh = k + (h / group) * head_dim;
    const float* vh = v + (h / group) * head_dim;
    for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
      const int64_t tc = std::min(kChunk, T - t0), nk = pos0 + t0 + tc;
      // S[tc, nk] = scale * Q[t0:t0+tc] K[0:nk]^T
      linalg::sgemm(false, true, tc, nk, head_dim, scale, q + t0 * ldq + h * head_dim, ldq, kh,
                    ld_kv, 0.0f, sc, nk);
      for (int64_t i = 0; i < tc; ++i) {
        float* row = sc + i * nk;
        const int64_t seen = pos0 + t0 + i + 1;  // keys 0..pos0+t0+i are visible
        float mx = row[0];
        for (int64_t j = 1; j < seen; ++j) mx = std::max(mx, row[j]);
        for (int64_t j = 0; j < seen; ++j) row[j] = exp_nonpositive(row[j] - mx);
        double sum = 0.0;
        for (int64_t j = 0; j < seen; ++j) sum += row[j];
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < seen; ++j) row[j] *= inv;
        for (int64_t j = seen; j < nk; ++j) row[j] = 0.0f;
      }
      // O[t0:t0+tc, head h] = P[tc, nk] V[0:nk]
      linalg::sgemm(false, false, tc, head_dim, nk, 1.0f, sc, nk, vh, ld_kv, 0.0f,
                    out + t0 * ldq + h * head_dim, ldq);
    }
  }
}

void block_forward(const BlockWeights& w, const ModelConfig& c, float* h, int64_t B, int64_t T,
                   Observer* obs, LayerKV* kv, int64_t pos0) {
  const int64_t rows = B * T, d = c.d_model, hd = c.head_dim, l = w.layer;
  DSQ_ASSERT(kv == nullptr || B == 1, "the KV-cache path takes one sequence");
  if (obs) obs->on_block_input(l, ActView{h, rows, d});
  Buf xn = alloc(rows * d), o = alloc(rows * d);
  if (w.has_attn()) {
    const int64_t nh = w.dims.n_heads, nkv = w.dims.n_kv_heads, wq = nh * hd, wkv = nkv * hd;
    Buf q = alloc(rows * wq), k = alloc(rows * wkv), v = alloc(rows * wkv), att = alloc(rows * wq);
    rmsnorm(h, w.attn_norm.data<float>(), rows, d, c.rms_eps, xn.data());
    run_linear(w.attn_q, xn.data(), rows, q.data(), obs, l, "attn_q");
    run_linear(w.attn_k, xn.data(), rows, k.data(), obs, l, "attn_k");
    run_linear(w.attn_v, xn.data(), rows, v.data(), obs, l, "attn_v");
    rope_inplace(q.data(), B, T, nh, hd, pos0, c.rope_theta);
    rope_inplace(k.data(), B, T, nkv, hd, pos0, c.rope_theta);
    if (kv) {
      DSQ_ASSERT(static_cast<int64_t>(kv->k.size()) >= (pos0 + T) * wkv, "KV cache too small");
      std::copy(k.begin(), k.end(), kv->k.begin() + pos0 * wkv);
      std::copy(v.begin(), v.end(), kv->v.begin() + pos0 * wkv);
      causal_attention(q.data(), kv->k.data(), kv->v.data(), wkv, T, pos0, nh, nkv, hd,
                       att.data());
    } else {
      for (int64_t b = 0; b < B; ++b)
        causal_attention(q.data() + b * T * wq, k.data() + b * T * wkv, v.data() + b * T * wkv,
                         wkv, T, 0, nh, nkv, hd, att.data() + b * T * wq);
    }
    run_linear(w.attn_output, att.data(), rows, o.data(), obs, l, "attn_output");
    add_inplace(h, o.data(), rows * d);
  } else if (!w.attn_bias_only.empty()) {
    add_row_bias(h, w.attn_bias_only, rows);
  }
  if (w.has_ffn()) {
    const int64_t ff = w.dims.d_ff;
    Buf g = alloc(rows * ff), u = alloc(rows * ff);
    rmsnorm(h, w.ffn_norm.data<float>(), rows, d, c.rms_eps, xn.data());
    run_linear(w.ffn_gate, xn.data(), rows, g.data(), obs, l, "ffn_gate");
    run_linear(w.ffn_up, xn.data(), rows, u.data(), obs, l, "ffn_up");
    const int64_t n = rows * ff;
#pragma omp parallel for schedule(static) if (n > (1 << 18))
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[static_cast<size_t>(i)];
      g[static_cast<size_t>(i)] = gi / (1.0f + std::exp(-gi)) * u[static_cast<size_t>(i)];
    }
    run_linear(w.ffn_down, g.data(), rows, o.data(), obs, l, "ffn_down");
    add_inplace(h, o.data(), rows * d);
  } else if (!w.ffn_bias_only.empty()) {
    add_row_bias(h, w.ffn_bias_only, rows);
  }
  if (obs) obs->on_block_output(l, ActView{h, rows, d});
}

}  // namespace dsq::model
