// Model configuration and the per-architecture tensor table.
//
// Every reader maps its source names onto one canonical naming (below), and every algorithm asks
// this table which tensors exist, what shape they have and which linears share an input. A new
// family is one new row in arch.cpp; nothing else branches on the architecture name.
//
// Canonical names and layouts (row-major, PyTorch [out_features, in_features] for linears):
//   token_embd.weight            [vocab, d_model]
//   output_norm.weight           [d_model]
//   output.weight                [vocab, d_model]          absent when embeddings are tied
//   blk.{L}.attn_norm.weight     [d_model]
//   blk.{L}.attn_q.weight        [n_heads*head_dim, d_model]   (+ .bias [n_heads*head_dim])
//   blk.{L}.attn_k.weight        [n_kv_heads*head_dim, d_model] (+ .bias)
//   blk.{L}.attn_v.weight        [n_kv_heads*head_dim, d_model] (+ .bias)
//   blk.{L}.attn_output.weight   [d_model, n_heads*head_dim]
//   blk.{L}.ffn_norm.weight      [d_model]
//   blk.{L}.ffn_gate.weight      [d_ff, d_model]
//   blk.{L}.ffn_up.weight        [d_ff, d_model]
//   blk.{L}.ffn_down.weight      [d_model, d_ff]
//   blk.{L}.attn_output.bias     [d_model]  optional in every family: written only by structured
//   blk.{L}.ffn_down.bias        [d_model]  pruning's bias compensation (lib/compress/prune.h)
// RoPE convention: q/k rows are in the Hugging Face "rotate_half" order (within each head, rotary
// pairs are (i, i + head_dim/2)). Readers of Meta-ordered sources (GGUF llama, llama2.c) permute
// q/k rows into this order, so the engine implements one RoPE.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lib/core/tensor.h"

namespace dsq {

// Per-layer widths; they differ between layers only after structured pruning.
struct LayerDims {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t d_ff = 0;
  bool operator==(const LayerDims&) const = default;
};

struct ModelConfig {
  std::string arch;  // canonical family name: "llama", "qwen2"
  int64_t n_layers = 0;
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t d_ff = 0;
  int64_t vocab_size = 0;
  int64_t max_ctx = 2048;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tied_embeddings = false;
  bool qkv_bias = false;
  int64_t bos_id = -1;  // -1: none
  int64_t eos_id = -1;
  // Optional per-layer widths (size n_layers). Empty means every layer uses the global widths.
  std::vector<LayerDims> layers;

  LayerDims layer(int64_t l) const;  // effective widths of layer l
  bool operator==(const ModelConfig&) const = default;
};

void to_json(nlohmann::json& j, const ModelConfig& c);
void from_json(const nlohmann::json& j, ModelConfig& c);  // throws ConfigError on bad fields
// Throws ConfigError when dims are missing, non-positive or inconsistent (heads % kv_heads...).
void validate_config(const ModelConfig& c, const std::string& where);

enum class TensorRole : uint8_t { kEmbedding, kNorm, kLinear, kBias, kClassifier };
// How a reader of Meta-ordered sources must permute rows to reach the canonical order.
enum class RopePermute : uint8_t { kNone, kQ, kK };

struct ArchTensor {
  std::string_view canonical;  // pattern with "{L}" for the layer index
  std::string_view hf;         // Hugging Face safetensors name pattern
  std::string_view gguf;       // GGUF name pattern
  TensorRole role;
  RopePermute permute;  // applied to GGUF/llama2.c sources of families with meta_rope_in_gguf
  bool per_layer;
  bool optional;        // bias only present when qkv_bias; output absent when tied
};

// How a group's input channels derive from its producer's output channels, for folding a scale
// into the producer (lib/model/fold.h).
enum class ChannelMap : uint8_t {
  kIdentity,  // input channel j is producer channel j (norms; ffn_up -> ffn_down)
  kKvHeads,   // attention output: channel h*head_dim + i reads value channel (h / rep)*head_dim + i,
              // rep = n_heads / n_kv_heads (GQA)
};

// Linears that read the same input, and the tensor that produces that input (a norm or a linear)
// into which an input-channel scale can be folded (AWQ). Order = true-sequential order.
struct LinearGroup {
  std::string_view name;                  // "attn_in", "attn_out", "ffn_in", "ffn_out"
  std::string_view producer;              // "attn_norm", "attn_v", "ffn_norm", "ffn_up"
  std::vector<std::string_view> linears;  // short names: "attn_q", "attn_k", ...
  // Linears AWQ's clip search leaves at their min/max ranges: q and k, whose errors only matter
  // through the softmax of their dot products (the reference skips them the same way).
  std::vector<std::string_view> no_clip = {};
  ChannelMap channels = ChannelMap::kIdentity;
};

struct ArchInfo {
  std::string_view name;                          // "llama"
  std::vector<std::string_view> hf_architectures; // config.json "architectures" values
  std::vector<std::string_view> hf_model_types;   // config.json "model_type" values
  std::string_view gguf_arch;                     // general.architecture
  bool meta_rope_in_gguf;  // GGUF stores q/k in Meta (interleaved) order: permute on read
  bool qkv_bias;           // family has q/k/v biases
  std::vector<ArchTensor> tensors;
  std::vector<LinearGroup> linear_groups;  // per block, in true-sequential order
};

const std::vector<ArchInfo>& arch_table();
const ArchInfo* find_arch(std::string_view name);            // canonical name
const ArchInfo* find_arch_by_hf(std::string_view hf_arch, std::string_view model_type);
const ArchInfo* find_arch_by_gguf(std::string_view gguf_arch);
// Throws ConfigError listing the supported families.
const ArchInfo& require_arch(std::string_view name, const std::string& where);

// "blk.{L}.attn_q.weight" with L=3 -> "blk.3.attn_q.weight".
std::string expand_name(std::string_view pattern, int64_t layer);
// Canonical name of linear `short_name` ("attn_q") in layer l: "blk.3.attn_q.weight".
std::string linear_name(int64_t layer, std::string_view short_name);
// Expected shape of a canonical tensor under config c, or nullopt when the name is unknown.
std::optional<Shape> expected_shape(const ModelConfig& c, const std::string& canonical);
// Is the tensor one of the transformer blocks' linear weights (what quantizers touch)?
bool is_block_linear(const std::string& canonical);
// Parse "blk.{L}.{short}.weight" -> (L, short). Returns false for other names.
bool parse_block_name(const std::string& canonical, int64_t* layer, std::string* short_name);

// Permute the rows of a [n_heads*head_dim, cols] matrix (or [n_heads*head_dim] bias) from Meta
// interleaved RoPE order to the canonical rotate_half order, for any element size.
void permute_meta_to_hf(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes);

}  // namespace dsq
