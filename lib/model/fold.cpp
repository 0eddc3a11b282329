#include "lib/model/fold.h"

#include <cmath>
#include <string>

#include "lib/core/error.h"

namespace dsq::model {
namespace {

std::string where(const BlockWeights& b, const LinearGroup& g) {
  return "block " + std::to_string(b.layer) + ": group '" + std::string(g.name) + "'";
}

// The non-empty linears of g: for an expert group, those of `expert`, or of every resident expert
// when expert < 0.
std::vector<Linear*> members(BlockWeights& b, const LinearGroup& g, int64_t expert) {
  std::vector<Linear*> out;
  const int64_t n_exp = b.moe ? static_cast<int64_t>(b.moe->experts.size()) : 0;
  for (int64_t e = (g.per_expert && expert < 0) ? 0 : expert;
       e < ((g.per_expert && expert < 0) ? n_exp : expert + 1); ++e)
    for (const auto name : g.linears) {
      Linear* l = b.linear(group_member(name, e));
      if (l && !l->empty()) out.push_back(l);
    }
  return out;
}

// The input width shared by g's non-empty linears (0 when none, -1 when they disagree).
int64_t group_width(const BlockWeights& b, const LinearGroup& g, int64_t expert) {
  int64_t n = 0;
  for (const Linear* l : members(const_cast<BlockWeights&>(b), g, expert)) {
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

// o_proj input channel h*dv + i reads kv_b row h*(dn+dv) + dn + i (lib/model/mla.h).
std::vector<int64_t> mla_v_map(const BlockWeights& b, const ModelConfig& c, int64_t n_in,
                               int64_t n_prod) {
  const int64_t H = b.dims.n_heads, dn = c.mla.qk_nope_head_dim, dv = c.mla.v_head_dim;
  if (H <= 0 || n_in != H * dv || n_prod != H * (dn + dv)) return {};
  std::vector<int64_t> map(static_cast<size_t>(n_in));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < dv; ++i) map[static_cast<size_t>(h * dv + i)] = h * (dn + dv) + dn + i;
  return map;
}

std::vector<Linear*> routers_of(BlockWeights& b, const LinearGroup& g) {
  std::vector<Linear*> out;
  if (!g.routers.empty() && b.moe && !b.moe->router.empty()) out.push_back(&b.moe->router);
  return out;
}

}  // namespace

std::string group_member(std::string_view name, int64_t expert) {
  if (expert >= 0 && name.size() > 4 && name.substr(name.size() - 4) == ".{E}")
    return expert_name(name, expert);
  return std::string(name);
}

void scale_input_columns(Linear& l, std::span<const float> s) {
  const int64_t n_in = l.n_in();
  DSQ_ASSERT(static_cast<int64_t>(s.size()) == n_in && !l.quantized(), "scale_input_columns");
  Tensor w = l.weight().clone();
  float* p = w.mutable_data<float>();
  for (int64_t r = 0; r < l.n_out(); ++r)
    for (int64_t j = 0; j < n_in; ++j) p[r * n_in + j] *= s[static_cast<size_t>(j)];
  const float thr = l.act_threshold();
  l = Linear::from_tensors(l.name(), std::move(w), l.bias());
  if (thr > 0.0f) l.set_act_threshold(thr);
}

std::vector<int64_t> fold_channel_map(const BlockWeights& b, const ModelConfig& c,
                                      const LinearGroup& g, int64_t* n_producer, int64_t expert) {
  const int64_t n_in = group_width(b, g, expert);
  if (n_in <= 0 || g.channels == ChannelMap::kNone) return {};
  int64_t n_prod = 0;
  const std::string producer = group_member(g.producer, expert);
  if (const Tensor* norm = b.norm(producer)) {
    if (norm->empty()) return {};
    n_prod = norm->numel();
  } else if (const Linear* p = b.linear(producer)) {
    if (p->empty() || p->quantized()) return {};
    n_prod = p->n_out();
  } else {
    return {};
  }
  std::vector<int64_t> map;
  if (g.channels == ChannelMap::kKvHeads) {
    map = kv_head_map(b, c, n_in, n_prod);
  } else if (g.channels == ChannelMap::kMlaV) {
    map = mla_v_map(b, c, n_in, n_prod);
  } else if (n_prod == n_in) {
    map.resize(static_cast<size_t>(n_in));
    for (int64_t j = 0; j < n_in; ++j) map[static_cast<size_t>(j)] = j;
  }
  if (!map.empty() && n_producer) *n_producer = n_prod;
  return map;
}

void fold_input_scale(BlockWeights& b, const ModelConfig& c, const LinearGroup& g,
                      std::span<const float> s, int64_t expert) {
  const LinearGroup* one[] = {&g};
  fold_input_scale(b, c, one, s, expert);
}

void fold_input_scale(BlockWeights& b, const ModelConfig& c,
                      std::span<const LinearGroup* const> groups, std::span<const float> s,
                      int64_t expert) {
  DSQ_ASSERT(!groups.empty(), "fold_input_scale without groups");
  const LinearGroup& g = *groups.front();
  int64_t n_prod = 0;
  std::vector<int64_t> map;
  for (const LinearGroup* x : groups) {
    DSQ_ASSERT(x->producer == g.producer, "groups folded together must share their producer");
    if (map.empty()) map = fold_channel_map(b, c, *x, &n_prod, expert);
  }
  const std::string producer = group_member(g.producer, expert);
  if (map.empty())
    throw ConfigError(where(b, g) + ": the scale cannot be folded into '" + producer +
                      "' (missing, quantized or mismatched widths)");
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

  std::vector<Linear*> consumers;
  for (const LinearGroup* x : groups) {
    for (Linear* l : routers_of(b, *x)) consumers.push_back(l);
    for (Linear* l : members(b, *x, expert)) {
      if (l->n_in() != n_in)
        throw ShapeError(where(b, *x) + ": '" + l->name() + "' reads " + std::to_string(l->n_in()) +
                         " channels, the group " + std::to_string(n_in));
      consumers.push_back(l);
    }
  }
  for (Linear* l : consumers) {
    if (l->quantized())
      throw ConfigError(where(b, g) + ": '" + l->name() + "' is already quantized");
    if (l->act_threshold() > 0.0f)
      throw ConfigError(where(b, g) + ": '" + l->name() + "' has an activation threshold " +
                        "(quantize before dsq sparsify)");
  }
  for (Linear* l : consumers) scale_input_columns(*l, s);
  if (Tensor* norm = b.norm(producer)) {
    Tensor t = norm->to(DType::kF32).clone();
    float* p = t.mutable_data<float>();
    for (int64_t k = 0; k < n_prod; ++k) p[k] /= ps[static_cast<size_t>(k)];
    *norm = std::move(t);
    return;
  }
  Linear* prod = b.linear(producer);
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
