// Token generation with the KV cache: greedy at temperature 0, otherwise temperature sampling
// with optional top-k, reproducible from a seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "lib/model/model.h"

namespace dsq::model {

struct SampleOptions {
  int64_t n_new = 32;        // tokens to generate
  double temperature = 0.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = whole vocabulary
  uint64_t seed = 0;
  int64_t stop_id = -1;      // stop after emitting this id (e.g. EOS); -1 = never
};

// Picks the next id from logits[vocab]: argmax at temperature 0, else a draw from
// softmax(logits / T) restricted to the top_k largest logits.
int32_t sample_token(const float* logits, int64_t vocab, double temperature, int64_t top_k,
                     std::mt19937_64& rng);

// Where generate's time went: the prompt's pass, and the single-token passes after it.
struct GenerateTiming {
  double prompt_seconds = 0;
  double decode_seconds = 0;
  int64_t decode_steps = 0;  // single-token forward passes (every generated id but the last)
};

// Runs the prompt through the KV cache, then generates up to n_new ids (the prompt is not
// included in the result). The context is bounded by the config's max_ctx.
std::vector<int32_t> generate(const Model& m, std::span<const int32_t> prompt,
                              const SampleOptions& opts, GenerateTiming* timing = nullptr);

}  // namespace dsq::model
