#include "lib/core/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lib/core/error.h"

namespace dsq {

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

ModelConfig synthetic_config(std::string_view arch, const SyntheticShape& s) {
  ModelConfig c;
  c.arch = std::string(require_arch(arch, "synthetic model").name);
  c.n_layers = s.n_layers;
  c.d_model = s.d_model;
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = s.head_dim;
  c.d_ff = s.d_ff;
  c.vocab_size = s.vocab;
  c.max_ctx = s.max_ctx;
  c.tied_embeddings = false;
  c.qkv_bias = require_arch(arch, "synthetic model").qkv_bias;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

ModelConfig tiny_llama_config() { return synthetic_config("llama"); }

WeightStore make_synthetic_model(const ModelConfig& c, uint64_t seed, DType dtype) {
  validate_config(c, "synthetic model");
  const ArchInfo& arch = arch_of(c);
  WeightStore ws;
  ws.config = c;
  ws.has_config = true;
  ws.metadata["source_format"] = "synthetic";
  Rng rng{seed};
  const std::string src = "<synthetic>";
  // Uniform(-a, a) has variance a^2/3: a = sqrt(3/fan_in) gives unit-variance outputs.
  auto add = [&](const ArchTensor& row, int64_t layer) {
    Shape shape = row_shape(row, c, layer);
    double center = 0.0, hw = 1.0;
    switch (row.role) {
      case TensorRole::kEmbedding: break;
      case TensorRole::kNorm: center = 1.0, hw = 0.2; break;
      case TensorRole::kBias: hw = 0.5; break;
      case TensorRole::kLinear:
      case TensorRole::kClassifier:
        hw = std::sqrt(3.0 / static_cast<double>(std::max<int64_t>(shape.back(), 1)));
        break;
    }
    ws.add_tensor(expand_name(row.canonical, layer),
                  random_tensor(std::move(shape), center, hw, rng, dtype), src);
  };
  // Embedding first, then the blocks, then the head (the order the weights are drawn in).
  for (const auto& row : arch.tensors)
    if (row.role == TensorRole::kEmbedding) add(row, -1);
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const auto& row : arch.tensors)
      if (row.per_layer() && row_required(row, c)) add(row, l);
  for (const auto& row : arch.tensors)
    if (!row.per_layer() && row.role != TensorRole::kEmbedding && row_required(row, c)) add(row, -1);
  return ws;
}

}  // namespace dsq
