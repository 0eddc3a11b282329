// An independent, deliberately plain forward pass in f64 (scalar loops, no GEMM, no caching)
// that the engine tests compare against. Written straight from the Llama/Qwen2 equations, plus
// Qwen3's per-head RMSNorm of q and k (Qwen3Attention: q_norm/k_norm over head_dim, before RoPE).
#pragma once

#include <cmath>
#include <vector>

#include "lib/core/weight_store.h"

namespace dsq::testing {

// Logits [T, vocab] of one sequence starting at position 0.
inline std::vector<double> naive_forward(const WeightStore& ws, const std::vector<int32_t>& toks) {
  const ModelConfig& c = ws.config;
  const int64_t T = static_cast<int64_t>(toks.size()), d = c.d_model, hd = c.head_dim;
  auto f32 = [&](const std::string& n) {
    Tensor t = ws.get_f32(n);
    return std::vector<double>(t.data<float>(), t.data<float>() + t.numel());
  };
  // y[rows, out] = x[rows, in] W^T (+ b)
  auto matmul = [](const std::vector<double>& x, int64_t rows, const std::vector<double>& w,
                   int64_t out, int64_t in, const std::vector<double>* b) {
    std::vector<double> y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = b ? (*b)[static_cast<size_t>(o)] : 0.0;
        for (int64_t i = 0; i < in; ++i) s += x[static_cast<size_t>(r * in + i)] * w[static_cast<size_t>(o * in + i)];
        y[static_cast<size_t>(r * out + o)] = s;
      }
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<double>& w) {
    std::vector<double> y(x.size());
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += x[static_cast<size_t>(t * d + i)] * x[static_cast<size_t>(t * d + i)];
      const double inv = 1.0 / std::sqrt(ss / d + c.rms_eps);
      for (int64_t i = 0; i < d; ++i) y[static_cast<size_t>(t * d + i)] = x[static_cast<size_t>(t * d + i)] * inv * w[static_cast<size_t>(i)];
    }
    return y;
  };
  auto rope = [&](std::vector<double>& x, int64_t heads) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd / 2; ++i) {
          const double a = t * std::pow(c.rope_theta, -2.0 * i / hd);
          double& x1 = x[static_cast<size_t>(t * heads * hd + h * hd + i)];
          double& x2 = x[static_cast<size_t>(t * heads * hd + h * hd + i + hd / 2)];
          const double r1 = x1 * std::cos(a) - x2 * std::sin(a);
          const double r2 = x2 * std::cos(a) + x1 * std::sin(a);
          x1 = r1;
          x2 = r2;
        }
  };
  std::vector<double> emb = f32("token_embd.weight"), h(static_cast<size_t>(T * d));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i) h[static_cast<size_t>(t * d + i)] = emb[static_cast<size_t>(toks[static_cast<size_t>(t)] * d + i)];
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerDims w = c.layer(l);
    const std::string p = "blk." + std::to_string(l) + ".";
    if (w.n_heads > 0) {
      const int64_t nq = w.n_heads * hd, nkv = w.n_kv_heads * hd;
      auto x = rmsnorm(h, f32(p + "attn_norm.weight"));
      std::vector<double> bq, bk, bv;
      if (c.qkv_bias) bq = f32(p + "attn_q.bias"), bk = f32(p + "attn_k.bias"), bv = f32(p + "attn_v.bias");
      auto q = matmul(x, T, f32(p + "attn_q.weight"), nq, d, c.qkv_bias ? &bq : nullptr);
      auto k = matmul(x, T, f32(p + "attn_k.weight"), nkv, d, c.qkv_bias ? &bk : nullptr);
      auto v = matmul(x, T, f32(p + "attn_v.weight"), nkv, d, c.qkv_bias ? &bv : nullptr);
      // Qwen3: RMSNorm over each head's head_dim entries, weights shared by all heads.
      auto head_norm = [&](std::vector<double>& x, int64_t heads, const std::string& name) {
        if (!ws.has(name)) return;
        const auto g = f32(name);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t hh = 0; hh < heads; ++hh) {
            double* v = &x[static_cast<size_t>((t * heads + hh) * hd)];
            double ss = 0;
            for (int64_t i = 0; i < hd; ++i) ss += v[i] * v[i];
            const double inv = 1.0 / std::sqrt(ss / hd + c.rms_eps);
            for (int64_t i = 0; i < hd; ++i) v[i] *= inv * g[static_cast<size_t>(i)];
          }
      };
      head_norm(q, w.n_heads, p + "attn_q_norm.weight");
      head_norm(k, w.n_kv_heads, p + "attn_k_norm.weight");
      rope(q, w.n_heads);
      rope(k, w.n_kv_heads);
      std::vector<double> att(static_cast<size_t>(T * nq));
      for (int64_t hh = 0; hh < w.n_heads; ++hh) {
        const int64_t kh = hh / (w.n_heads / w.n_kv_heads);
        for (int64_t t = 0; t < T; ++t) {
          std::vector<double> s(static_cast<size_t>(t + 1));
          double mx = -1e300;
          for (int64_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (int64_t i = 0; i < hd; ++i) dot += q[static_cast<size_t>(t * nq + hh * hd + i)] * k[static_cast<size_t>(j * nkv + kh * hd + i)];
            s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, s[static_cast<size_t>(j)]);
          }
          double sum = 0;
          for (auto& e : s) sum += (e = std::exp(e - mx));
          for (int64_t i = 0; i < hd; ++i) {
            double o = 0;
            for (int64_t j = 0; j <= t; ++j) o += s[static_cast<size_t>(j)] / sum * v[static_cast<size_t>(j * nkv + kh * hd + i)];
            att[static_cast<size_t>(t * nq + hh * hd + i)] = o;
          }
        }
      }
      auto o = matmul(att, T, f32(p + "attn_output.weight"), d, nq, nullptr);
      for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
    }
    if (ws.has(p + "attn_output.bias")) {  // optional (pruning's bias compensation)
      const auto b = f32(p + "attn_output.bias");
      for (size_t i = 0; i < h.size(); ++i) h[i] += b[i % static_cast<size_t>(d)];
    }
    if (w.d_ff > 0) {
      auto x = rmsnorm(h, f32(p + "ffn_norm.weight"));
      auto g = matmul(x, T, f32(p + "ffn_gate.weight"), w.d_ff, d, nullptr);
      auto u = matmul(x, T, f32(p + "ffn_up.weight"), w.d_ff, d, nullptr);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      auto o = matmul(g, T, f32(p + "ffn_down.weight"), d, w.d_ff, nullptr);
      for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
    }
    if (ws.has(p + "ffn_down.bias")) {
      const auto b = f32(p + "ffn_down.bias");
      for (size_t i = 0; i < h.size(); ++i) h[i] += b[i % static_cast<size_t>(d)];
    }
  }
  auto x = rmsnorm(h, f32("output_norm.weight"));
  const std::string cls = ws.has("output.weight") ? "output.weight" : "token_embd.weight";
  return matmul(x, T, f32(cls), c.vocab_size, d, nullptr);
}

}  // namespace dsq::testing
