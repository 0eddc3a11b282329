// Hugging Face checkpoints: a directory with config.json and model.safetensors or a sharded
// model.safetensors.index.json, and a single .safetensors file with config.json beside it.
//
// Names map to canonical ones through the `hf` column of the architecture table (lib/core/arch.h);
// HF q/k rows are already in the canonical rotate_half order, so nothing is permuted and every
// tensor is an mmap view of its shard (an owned copy only when a tensor is misaligned).
//
// A lone .safetensors file needs config.json in its directory: head counts (and so head_dim)
// cannot be recovered from tensor shapes, so dsq refuses to guess.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "formats/format_table.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

// A ModelConfig from a parsed config.json (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM). Defaults: num_key_value_heads = num_attention_heads, head_dim =
// hidden_size / num_attention_heads, tie_word_embeddings false, rope_theta 10000,
// rms_norm_eps 1e-6, max_position_embeddings 2048. Throws ConfigError naming `where` for an
// unsupported architecture, missing or mistyped fields, attention_bias/mlp_bias on Llama,
// quantization_config, or a hidden_act other than silu.
ModelConfig hf_config_from_json(const nlohmann::json& j, const std::string& where);

// Format-table hooks.
bool sniff_hf_dir(const std::string& path);  // a directory holding config.json
WeightStore read_hf_dir(const std::string& path, const OpenOptions& opts);
// Single .safetensors file (sniffed by safetensors/safetensors.h) + config.json beside it.
WeightStore read_safetensors_model(const std::string& path, const OpenOptions& opts);

}  // namespace dsq::formats
