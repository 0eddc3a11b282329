// A synthetic two-layer llama model with f32/f16/bf16 and kQInt tensors, for the dsq tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "formats/dsq/dsq_writer.h"
#include "lib/core/synthetic.h"
#include "lib/core/weight_store.h"

namespace dsq::testing {

// ffn_down has 40 input columns: group 16 leaves a ragged last group of 8.
inline ModelConfig tiny_config() {
  return synthetic_config("llama", {.n_layers = 2, .d_model = 48, .n_heads = 4, .n_kv_heads = 2,
                                    .head_dim = 12, .d_ff = 40, .vocab = 64});
}

// Deterministic values in [-1, 1) from a 32-bit LCG.
inline float lcg_value(uint32_t& s) {
  s = s * 1664525u + 1013904223u;
  return static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f;
}

inline Tensor float_tensor(DType dt, const Shape& shape, uint32_t seed) {
  Tensor f(DType::kF32, shape);
  float* p = f.mutable_data<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = lcg_value(seed);
  return f.to(dt).clone();
}

// Any valid bytes: random codes, finite positive f16 scales, zero points < 2^bits.
inline Tensor qint_tensor(const QuantDesc& q, int64_t rows, int64_t cols, uint32_t seed) {
  Tensor t(DType::kQInt, {rows, cols}, &q);
  const QuantLayout L = quant_layout(q, rows, cols);
  auto* b = reinterpret_cast<uint8_t*>(t.mutable_bytes());
  for (size_t i = 0; i < L.codes_bytes; ++i) b[i] = static_cast<uint8_t>(lcg_value(seed) * 127 + 128);
  for (int64_t i = 0; i < L.rows * L.n_groups; ++i) {
    const uint16_t h = f32_to_f16(0.001f + 0.01f * (lcg_value(seed) + 1.0f));
    std::memcpy(b + L.scales_offset + 2 * i, &h, 2);
    if (!q.sym()) b[L.zeros_offset + i] = static_cast<uint8_t>(i % (1 << q.bits()));
  }
  return t;
}

// Every tensor the config implies; dtypes rotate so each kind appears in both layers.
inline WeightStore tiny_model() {
  WeightStore ws;
  ws.config = tiny_config();
  ws.has_config = true;
  const ModelConfig& c = ws.config;
  uint32_t seed = 7;
  auto add = [&](const std::string& name, Tensor t) { ws.add_tensor(name, std::move(t), "synthetic"); };
  auto shape = [&](const std::string& name) { return *expected_shape(c, name); };
  add("token_embd.weight", float_tensor(DType::kF16, shape("token_embd.weight"), seed++));
  add("output_norm.weight", float_tensor(DType::kF32, shape("output_norm.weight"), seed++));
  add("output.weight", float_tensor(DType::kBF16, shape("output.weight"), seed++));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_norm", "ffn_norm"})
      add(b + n + ".weight", float_tensor(DType::kF32, shape(b + n + ".weight"), seed++));
    add(b + "attn_q.weight", float_tensor(DType::kBF16, shape(b + "attn_q.weight"), seed++));
    add(b + "attn_k.weight", qint_tensor({4, 16, false}, c.n_kv_heads * c.head_dim, c.d_model, seed++));
    add(b + "attn_v.weight", qint_tensor({3, 0, true}, c.n_kv_heads * c.head_dim, c.d_model, seed++));
    add(b + "attn_output.weight", float_tensor(DType::kF16, shape(b + "attn_output.weight"), seed++));
    add(b + "ffn_gate.weight", qint_tensor({8, 32, true}, c.d_ff, c.d_model, seed++));
    add(b + "ffn_up.weight", qint_tensor({2, 16, false}, c.d_ff, c.d_model, seed++));
    add(b + "ffn_down.weight", qint_tensor({4, 16, true}, c.d_model, c.d_ff, seed++));
  }
  ws.entry("blk.1.ffn_down.weight").attrs = {{"sparsity", 0.25}, {"note", "ragged last group"}};
  ws.metadata["recipe"] = {{"method", "synthetic"}, {"bits", 4}};
  ws.metadata["tokenizer"] = {{"type", "none"}, {"bos_id", 1}};
  return ws;
}

}  // namespace dsq::testing
