#include "lib/model/fold.h"

#include <cmath>
#include <string>

#include "lib/core/error.h"

namespace dsq::model {
namespace {

std::string where(const BlockWeights& b, const LinearGroup& g) {
  return "block " + std::to_string(b.layer) + ": group '" + std::string(g.name) + "'";
}

// The input width shared by g's non-empty linears (0 when none, -1 when they disagree).
int64_t group_width(const BlockWeights& b, const LinearGroup& g) {
  int64_t n = 0;
  for (const auto name : g.linears) {
    const Linear* l = b.linear(name);
    if (!l || l->empty()) continue;
    if (n != 0 && l->n_in() != n) return -1;
    n = l->n_in();
  }
  return n;
}

// attn_output input channel h*hd + i reads value channel (h / rep)*hd + i (block.h attention).
std::vector<int64_t> kv_head_map(const BlockWeights& b, const ModelConfig& c, int64_t n_in,
                                 int64_t n_prod) {
  const int64_t hd = c.head_dim, nh = b.dims.n_heads, nkv = b.dims.n_kv_heads;
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0 || n_in != nh * hd || n_prod != nkv * hd) return {};
  std::vector<int64_t> map(static_cast<size_t>(n_in));
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t i = 0; i < hd; ++i) map[static_cast<size_t>(h * hd + i)] = (h / (nh / nkv)) * hd + i;
  return map;
}

}  // namespace

std::vector<int64_t> fold_channel_map(const BlockWeights& b, const ModelConfig& c,
                                      const LinearGroup& g, int64_t* n_producer) {
  const int64_t n_in = group_width(b, g);
  if (n_in <= 0 || g.channels == ChannelMap::kNone) return {};
  int64_t n_prod = 0;
  if (const Tensor* norm = b.norm(g.producer)) {
    if (norm->empty()) return {};
    n_prod = norm->numel();
  } else if (const Linear* p = b.linear(g.producer)) {
    if (p->empty() || p->quantized()) return {};
    n_prod = p->n_out();
  } else {
    return {};
  }
  std::vector<int64_t> map;
  if (g.channels == ChannelMap::kKvHeads) {
    map = kv_head_map(b, c, n_in, n_prod);
  } else if (n_prod == n_in) {
    map.resize(static_cast<size_t>(n_in));
    for (int64_t j = 0; j < n_in; ++j) map[static_cast<size_t>(j)] = j;
  }
  if (!map.empty() && n_producer) *n_producer = n_prod;
  return map;
}

void fold_input_scale(BlockWeights& b, const ModelConfig& c, const LinearGroup& g,
                      std::span<const float> s) {
  int64_t n_prod = 0;
  const std::vector<int64_t> map = fold_channel_map(b, c, g, &n_prod);
  if (map.empty())
    throw ConfigError(where(b, g) + ": the scale cannot be folded into '" +
                      std::string(g.producer) + "' (missing, quantized or mismatched widths)");
  const int64_t n_in = static_cast<int64_t>(map.size());
  if (static_cast<int64_t>(s.size()) != n_in)
    throw ShapeError(where(b, g) + ": " + std::to_string(s.size()) + " scales for " +
                     std::to_string(n_in) + " input channels");
  std::vector<float> ps(static_cast<size_t>(n_prod), 0.0f);  // per producer channel
  for (int64_t j = 0; j < n_in; ++j) {
    const float v = s[static_cast<size_t>(j)];
    if (!(v > 0.0f) || !std::isfinite(v))
      throw ShapeError(where(b, g) + ": scale " + std::to_string(j) + " is not a positive number");
    float& slot = ps[static_cast<size_t>(map[static_cast<size_t>(j)])];
    if (slot != 0.0f && slot != v)
      throw ShapeError(where(b, g) + ": tied input channels have different scales");
    slot = v;
  }
  for (auto& v : ps)
    if (v == 0.0f) v = 1.0f;  // a producer channel nothing reads

  for (const auto name : g.linears) {
    Linear* l = b.linear(name);
    if (!l || l->empty()) continue;
    if (l->quantized())
      throw ConfigError(where(b, g) + ": '" + l->name() + "' is already quantized");
    if (l->act_threshold() > 0.0f)
      throw ConfigError(where(b, g) + ": '" + l->name() + "' has an activation threshold " +
                        "(quantize before dsq sparsify)");
    Tensor w = l->weight().clone();
    float* p = w.mutable_data<float>();
    for (int64_t r = 0; r < l->n_out(); ++r)
      for (int64_t j = 0; j < n_in; ++j) p[r * n_in + j] *= s[static_cast<size_t>(j)];
    *l = Linear::from_tensors(l->name(), std::move(w), l->bias());
  }
  if (Tensor* norm = b.norm(g.producer)) {
    Tensor t = norm->to(DType::kF32).clone();
    float* p = t.mutable_data<float>();
    for (int64_t k = 0; k < n_prod; ++k) p[k] /= ps[static_cast<size_t>(k)];
    *norm = std::move(t);
    return;
  }
  Linear* prod = b.linear(g.producer);
  Tensor w = prod->weight().clone();
  float* p = w.mutable_data<float>();
  for (int64_t k = 0; k < n_prod; ++k)
    for (int64_t i = 0; i < prod->n_in(); ++i) p[k * prod->n_in() + i] /= ps[static_cast<size_t>(k)];
  Tensor bias;
  if (!prod->bias().empty()) {
    bias = prod->bias().clone();
    float* q = bias.mutable_data<float>();
    for (int64_t k = 0; k < n_prod; ++k) q[k] /= ps[static_cast<size_t>(k)];
  }
  const float thr = prod->act_threshold();
  *prod = Linear::from_tensors(prod->name(), std::move(w), std::move(bias));
  if (thr > 0.0f) prod->set_act_threshold(thr);
}

}  // namespace dsq::model
