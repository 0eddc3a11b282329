#include "lib/model/model.h"

#include <cstring>

#include "lib/core/error.h"
#include "lib/model/mla.h"
#include "lib/quant/qmatmul.h"

namespace dsq::model {

Embedding Embedding::load(const WeightStore& ws) {
  const auto& e = ws.entry("token_embd.weight");
  const Shape want{ws.config.vocab_size, ws.config.d_model};
  if (e.shape != want)
    throw ShapeError("'" + e.source + "': tensor 'token_embd.weight' has shape " +
                     shape_str(e.shape) + ", the config implies " + shape_str(want));
  Embedding emb;
  emb.source = e.source;
  emb.table = ws.get("token_embd.weight");  // in its stored type; lookup widens the rows it reads
  if (emb.table.dtype() != DType::kQInt && !dtype_is_float(emb.table.dtype()))
    throw FormatError("'" + e.source + "': tensor 'token_embd.weight' has unsupported type " +
                      std::string(dtype_name(emb.table.dtype())));
  return emb;
}

void Embedding::lookup(std::span<const int32_t> tokens, float* out) const {
  const int64_t vocab = table.dim(0), d = table.dim(1);
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw ShapeError(strprintf("token id %d at position %zu is outside the vocabulary [0, %lld)",
                                 tokens[i], i, static_cast<long long>(vocab)));
  const int64_t n = static_cast<int64_t>(tokens.size());
  const DType dt = table.dtype();
  const size_t es = dt == DType::kQInt ? 0 : dtype_size(dt);
#pragma omp parallel for schedule(static) if (n * d > (1 << 18))
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = tokens[static_cast<size_t>(i)];
    if (dt == DType::kQInt)
      quant::dequantize_rows(table, id, id + 1, out + i * d);
    else
      convert_elements(dt, table.bytes() + static_cast<size_t>(id * d) * es, DType::kF32,
                       out + i * d, static_cast<size_t>(d));
  }
}

Head Head::load(const WeightStore& ws) {
  Head h;
  const auto& ne = ws.entry("output_norm.weight");
  if (ne.shape != Shape{ws.config.d_model})
    throw ShapeError("'" + ne.source + "': tensor 'output_norm.weight' has shape " +
                     shape_str(ne.shape) + ", expected [" + std::to_string(ws.config.d_model) +
                     "]");
  h.norm = ws.get_f32("output_norm.weight");
  h.eps = ws.config.rms_eps;
  // Tied models may still carry a separate copy (GGUF does); use it when present.
  const bool own = ws.has("output.weight") || !ws.config.tied_embeddings;
  const std::string name = own ? "output.weight" : "token_embd.weight";
  const auto& e = ws.entry(name);
  const Shape want{ws.config.vocab_size, ws.config.d_model};
  if (e.shape != want)
    throw ShapeError("'" + e.source + "': tensor '" + name + "' has shape " + shape_str(e.shape) +
                     ", the config implies " + shape_str(want));
  h.classifier = Linear::load(ws, name);
  return h;
}

void Head::forward(const float* hidden, int64_t rows, float* logits, Observer* obs) const {
  const int64_t d = classifier.n_in();
  std::vector<float> xn(static_cast<size_t>(rows * d));
  rmsnorm(hidden, norm.data<float>(), rows, d, eps, xn.data());
  if (obs) obs->on_linear_input(-1, "output", ActView{xn.data(), rows, d});
  classifier.forward(xn.data(), rows, logits);
  if (obs) obs->on_linear_output(-1, "output", ActView{logits, rows, classifier.n_out()});
}

Model Model::load(const WeightStore& ws) {
  DSQ_ASSERT(ws.has_config, "Model::load without a config");
  Model m;
  m.config_ = ws.config;
  validate_config(m.config_, ws.sources.empty() ? "model" : "'" + ws.sources.front().path + "'");
  m.embedding_ = Embedding::load(ws);
  m.blocks_.reserve(static_cast<size_t>(m.config_.n_layers));
  for (int64_t l = 0; l < m.config_.n_layers; ++l) m.blocks_.push_back(BlockWeights::load(ws, l));
  m.head_ = Head::load(ws);
  return m;
}

void Model::forward(std::span<const int32_t> tokens, int64_t B, int64_t T, float* logits,
                    Observer* obs) const {
  DSQ_ASSERT(static_cast<int64_t>(tokens.size()) == B * T, "forward: %zu tokens for B=%lld T=%lld",
             tokens.size(), static_cast<long long>(B), static_cast<long long>(T));
  std::vector<float> h(static_cast<size_t>(B * T * config_.d_model));
  embedding_.lookup(tokens, h.data());
  for (const auto& blk : blocks_) block_forward(blk, config_, h.data(), B, T, obs);
  head_.forward(h.data(), B * T, logits, obs);
}

std::vector<float> Model::forward(std::span<const int32_t> tokens, int64_t B, int64_t T,
                                  Observer* obs) const {
  std::vector<float> logits(static_cast<size_t>(B * T * vocab()));
  forward(tokens, B, T, logits.data(), obs);
  return logits;
}

KVCache Model::new_cache(int64_t capacity) const {
  KVCache c;
  c.capacity = capacity;
  for (const auto& blk : blocks_) {
    if (blk.arch->attn == AttnKind::kMla) {  // the latent cache of absorbed decoding
      c.layers.push_back(LayerKV{std::vector<float>(static_cast<size_t>(capacity * mla_cache_k_width(config_))),
                                 std::vector<float>(static_cast<size_t>(capacity * mla_cache_v_width(config_)))});
      continue;
    }
    const size_t n = static_cast<size_t>(capacity * blk.dims.n_kv_heads * config_.head_dim);
    c.layers.push_back(LayerKV{std::vector<float>(n), std::vector<float>(n)});
  }
  return c;
}

std::vector<float> Model::decode(std::span<const int32_t> tokens, KVCache& cache,
                                 Observer* obs) const {
  const int64_t T = static_cast<int64_t>(tokens.size()), d = config_.d_model;
  DSQ_ASSERT(T > 0, "decode needs at least one token");
  DSQ_ASSERT(cache.layers.size() == blocks_.size(), "KV cache from another model");
  if (cache.len + T > cache.capacity)
    throw UsageError(strprintf("context overflow: %lld cached + %lld new positions exceed %lld",
                               static_cast<long long>(cache.len), static_cast<long long>(T),
                               static_cast<long long>(cache.capacity)));
  std::vector<float> h(static_cast<size_t>(T * d));
  embedding_.lookup(tokens, h.data());
  for (size_t l = 0; l < blocks_.size(); ++l)
    block_forward(blocks_[l], config_, h.data(), 1, T, obs, &cache.layers[l], cache.len);
  cache.len += T;
  std::vector<float> logits(static_cast<size_t>(vocab()));
  head_.forward(h.data() + (T - 1) * d, 1, logits.data(), obs);
  return logits;
}

}  // namespace dsq::model
