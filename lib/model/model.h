// The reference engine for the Llama family: embedding -> blocks -> final norm + classifier.
//
// The pieces are separate so the layer-by-layer calibration pipeline can hold one block at a time:
//   Embedding::load(ws).lookup(tokens, hidden)            hidden [B*T, d_model]
//   block_forward(BlockWeights::load(ws, l), ...)         (block.h), once per layer
//   Head::load(ws).forward(hidden, rows, logits)          logits [rows, vocab]
// Model bundles them for whole-model use (eval, generate). All math is f32 with GEMMs through
// dsq::linalg::sgemm; results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lib/core/weight_store.h"
#include "lib/model/block.h"
#include "lib/model/linear.h"
#include "lib/model/observer.h"

namespace dsq::model {

struct Embedding {
  Tensor table;  // [vocab, d_model] in its stored type: f32, f16, bf16 or kQInt
  std::string source;

  static Embedding load(const WeightStore& ws);
  // out[n, d_model] = rows of the table; throws ShapeError for ids outside [0, vocab).
  void lookup(std::span<const int32_t> tokens, float* out) const;
};

struct Head {
  Tensor norm;        // output_norm f32 [d_model]
  Linear classifier;  // [vocab, d_model]: output.weight, or token_embd.weight when tied
  double eps = 1e-5;

  static Head load(const WeightStore& ws);
  // logits[rows, vocab] = classifier(rmsnorm(hidden)). Observer sees the classifier as layer -1,
  // name "output".
  void forward(const float* hidden, int64_t rows, float* logits, Observer* obs = nullptr) const;
};

class Model {
 public:
  // Loads every tensor (f32 entries stay borrowed from the store's mapping). Throws on missing
  // tensors or shapes that disagree with ws.config.
  static Model load(const WeightStore& ws);

  const ModelConfig& config() const { return config_; }
  int64_t vocab() const { return config_.vocab_size; }
  const Embedding& embedding() const { return embedding_; }
  const BlockWeights& block(int64_t l) const { return blocks_.at(static_cast<size_t>(l)); }
  // For experiments that swap a block's weights in place (mixed precision's KLD calibration).
  BlockWeights& mutable_block(int64_t l) { return blocks_.at(static_cast<size_t>(l)); }
  const Head& head() const { return head_; }

  // tokens: B sequences of T ids, row-major [B, T]; each sequence starts at position 0.
  // logits: [B*T, vocab].
  void forward(std::span<const int32_t> tokens, int64_t B, int64_t T, float* logits,
               Observer* obs = nullptr) const;
  std::vector<float> forward(std::span<const int32_t> tokens, int64_t B, int64_t T,
                             Observer* obs = nullptr) const;

  // An empty KV cache for one sequence of up to `capacity` positions.
  KVCache new_cache(int64_t capacity) const;
  // Feeds `tokens` (one sequence) at positions cache.len.., appends their keys/values and returns
  // the logits of the last token [vocab]. Throws UsageError when the cache would overflow.
  std::vector<float> decode(std::span<const int32_t> tokens, KVCache& cache,
                            Observer* obs = nullptr) const;

 private:
  ModelConfig config_;
  Embedding embedding_;
  std::vector<BlockWeights> blocks_;
  Head head_;
};

}  // namespace dsq::model
