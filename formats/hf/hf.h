// Hugging Face checkpoints: a directory with config.json and model.safetensors or a sharded
// model.safetensors.index.json, and a single .safetensors file with config.json beside it.
//
// Names map to canonical ones through the `hf` column of the architecture table (lib/core/arch.h);
// HF q/k rows are already in the canonical rotate_half order, so nothing is permuted and every
// tensor is an mmap view of its shard (an owned copy only when a tensor is misaligned).
//
// FP8 release checkpoints (DeepSeek-V3/R1): each F8_E4M3 linear weight is paired with its f32
// `<name>_scale_inv` [ceil(out/B), ceil(in/B)] into one tensor of the fp8_e4m3_b<B> scheme
// (lib/core/quant_layout.h), built when the tensor is loaded: one tensor at a time, never the
// whole model. Scale shapes and values (finite, non-negative) are checked when the directory is
// opened; NaN codes (0x7F/0xFF) when the tensor is loaded. The multi-token-prediction layers
// (model.layers.<num_hidden_layers ...>, num_nextn_predict_layers) are skipped with a note.
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
// Qwen2ForCausalLM, Qwen3ForCausalLM, DeepseekV3ForCausalLM). Defaults: num_key_value_heads =
// num_attention_heads, head_dim = hidden_size / num_attention_heads, tie_word_embeddings false,
// rope_theta 10000, rms_norm_eps 1e-6, max_position_embeddings 2048; DeepSeek's absent keys take
// transformers' DeepseekV3Config defaults. rope_scaling of type yarn is read (and applied by the
// engine). Throws ConfigError naming `where` and the field for an unsupported architecture,
// missing or mistyped fields, attention_bias/mlp_bias where unsupported, a quantization_config
// other than FP8 block scales, a hidden_act other than silu, and DeepSeek routing other than
// sigmoid + noaux_tc.
ModelConfig hf_config_from_json(const nlohmann::json& j, const std::string& where);
// The config.json of a model (the inverse of hf_config_from_json: reading it back gives `c`):
// architectures, model_type, the widths and the family's own fields (MLA ranks, MoE routing with
// num_nextn_predict_layers 0, since dsq writes no multi-token-prediction layer). No torch_dtype
// and no quantization_config (the sink adds those).
nlohmann::json hf_config_to_json(const ModelConfig& c);

// The FP8 weight block edge of config.json's quantization_config (quant_method fp8, fmt e4m3,
// square weight_block_size, default 128), or 0 when there is none. Throws ConfigError naming the
// field for any other quantization_config.
int64_t hf_fp8_block_size(const nlohmann::json& j, const std::string& where);

// Format-table hooks.
// The writer (formats/hf/hf_sink.cpp): a Hugging Face directory in SinkOptions::hf_layout.
std::unique_ptr<ModelSink> hf_sink(const std::string& path, const WeightStore& src,
                                   const SinkOptions& opts);
bool sniff_hf_dir(const std::string& path);  // a directory holding config.json
WeightStore read_hf_dir(const std::string& path, const OpenOptions& opts);
// Single .safetensors file (sniffed by safetensors/safetensors.h) + config.json beside it.
WeightStore read_safetensors_model(const std::string& path, const OpenOptions& opts);

}  // namespace dsq::formats
