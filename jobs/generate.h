// `dsq generate`: the model's tokenizer encodes the prompt (with BOS when the tokenizer adds one),
// or the prompt is given as ids, then greedy or sampled continuation through the KV cache
// (lib/model/generate.h), timed per phase (prompt, then single-token decoding).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsq::jobs {

struct GenerateOptions {
  std::string model;
  std::string prompt;                // exactly one of prompt / prompt_ids
  std::vector<int32_t> prompt_ids;   // fed as they are (no BOS added); needs no tokenizer
  int64_t n_new = 32;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;
  uint64_t seed = 0;
  std::string json_out;      // optional JSON report (ids, text, timings)
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;  // encode(prompt), BOS first when the tokenizer adds one
  std::vector<int32_t> new_ids;     // generated (stops early after EOS)
  std::string text;                 // decode(prompt_ids + new_ids); empty without a tokenizer
  double tokens_per_second = 0;     // generated ids per second (prompt processing included)
  double prompt_seconds = 0;        // the prompt's pass through the KV cache
  double prompt_tokens_per_second = 0;
  double decode_tokens_per_second = 0;  // single-token passes per second after the prompt
};

// `dsq generate`: the prompt's ids through the KV cache, then sampling.
GenerateResult run_generate(const GenerateOptions& opts);

}  // namespace dsq::jobs
