// `dsq inspect`: what a model holds and what serving it costs, for any format open_model() reads.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace dsq::jobs {

struct InspectOptions {
  std::string path;
  int64_t ctx = 0;    // KV-cache context length; 0 = the config's max_ctx
  int64_t batch = 1;  // concurrent sequences
  std::string json_out;  // also write the report to this file ("-" for stdout)
};

// JSON report with top-level keys:
//   path, format, architecture (config arch or "unknown"), parameters, bytes (tensor bytes as
//   stored dtypes, uncompressed), file_bytes, bits_per_weight (all tensors), tensors (array of
//   {name, dtype, shape, parameters, bytes [, scheme, bits_per_weight] [, stored_bytes,
//   compression]}), config (when known), memory_estimate.
// memory_estimate = {ctx, batch, kv_dtype "f16", kv_cache_bytes = 2 x sum over layers of
//   kv_heads x head_dim x ctx x batch x 2, weights {f16, int8, int4_g128, as_stored}, total {...}}
// where matrices (2+ dims) are costed at the target (int8: symmetric per output channel;
// int4_g128: asymmetric, group 128, f16 scales + u8 zeros, exact lib/core/quant_layout.h bytes)
// and 1-D tensors (norms, biases) at f32. parameter_breakdown (from the architecture table):
// embedding, attention, ffn, head, block_linears. Throws UsageError for ctx < 0 or batch < 1.
nlohmann::json run_inspect(const InspectOptions& opts);

}  // namespace dsq::jobs
