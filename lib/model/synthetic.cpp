#include "lib/model/synthetic.h"

#include <cmath>

#include "lib/core/error.h"

namespace dsq::model {

namespace {

// splitmix64: portable, so synthetic weights are identical everywhere.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

Tensor random_tensor(Shape shape, double center, double half_width, Rng& rng, DType dtype) {
  Tensor t(DType::kF32, shape);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>(center + half_width * (2.0 * rng.uniform() - 1.0));
  return t.to(dtype);
}

}  // namespace

ModelConfig tiny_llama_config() {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 2;
  c.d_model = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.d_ff = 96;
  c.vocab_size = 128;
  c.max_ctx = 256;
  c.tied_embeddings = false;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

WeightStore make_synthetic_model(const ModelConfig& c, uint64_t seed, DType dtype) {
  validate_config(c, "synthetic model");
  WeightStore ws;
  ws.config = c;
  ws.has_config = true;
  ws.metadata["source_format"] = "synthetic";
  Rng rng{seed};
  const std::string src = "<synthetic>";
  auto add = [&](const std::string& name, Shape shape, double center, double hw) {
    ws.add_tensor(name, random_tensor(std::move(shape), center, hw, rng, dtype), src);
  };
  // Uniform(-a, a) has variance a^2/3: a = sqrt(3/fan_in) gives unit-variance outputs.
  auto add_linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, 0.0, std::sqrt(3.0 / static_cast<double>(std::max<int64_t>(in, 1))));
  };
  const int64_t d = c.d_model;
  add("token_embd.weight", {c.vocab_size, d}, 0.0, 1.0);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerDims w = c.layer(l);
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t q = w.n_heads * c.head_dim, kv = w.n_kv_heads * c.head_dim;
    add(p + "attn_norm.weight", {d}, 1.0, 0.2);
    add_linear(p + "attn_q.weight", q, d);
    add_linear(p + "attn_k.weight", kv, d);
    add_linear(p + "attn_v.weight", kv, d);
    if (c.qkv_bias) {
      add(p + "attn_q.bias", {q}, 0.0, 0.5);
      add(p + "attn_k.bias", {kv}, 0.0, 0.5);
      add(p + "attn_v.bias", {kv}, 0.0, 0.5);
    }
    add_linear(p + "attn_output.weight", d, q);
    add(p + "ffn_norm.weight", {d}, 1.0, 0.2);
    add_linear(p + "ffn_gate.weight", w.d_ff, d);
    add_linear(p + "ffn_up.weight", w.d_ff, d);
    add_linear(p + "ffn_down.weight", d, w.d_ff);
  }
  add("output_norm.weight", {d}, 1.0, 0.2);
  if (!c.tied_embeddings) add_linear("output.weight", c.vocab_size, d);
  return ws;
}

}  // namespace dsq::model
