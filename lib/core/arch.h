// Model configuration and the architecture table: the single source of truth for what a model
// family's tensors are, how they are named in every input format, what shape they have, what role
// they play and which linears share an input.
//
// A row (ArchInfo, one per family, in arch_rows.cpp) declares the block structure:
//   - the attention kind (AttnKind) and FFN kind (FfnKind) the engine runs for a block;
//   - one ArchTensor per tensor: canonical name, source-name patterns per input format, a shape
//     written in symbolic widths (Dim), its role, the sub-block (Part) it belongs to, and for a
//     linear the LinearGroup that reads the same input;
//   - the linear groups in true-sequential order, each with the tensor producing its input.
// Everything else is derived from the row: expected shapes, which tensors are block linears (what
// quantizers touch), the engine's block weights, calibration groups, the channel maps that
// pruning and scale folding follow (from the Dims: an FFN-channel axis is Dim::kFfn wherever it
// appears), the synthetic-model builder and inspect's parameter breakdown. Nothing outside this
// table lists an architecture's tensors (tests/core/arch_table_test.cpp loops over every row and
// every consumer). docs/ARCHITECTURE.md shows how to add a row.
//
// Canonical names and layouts (row-major, PyTorch [out_features, in_features] for linears):
//   token_embd.weight              [vocab, d_model]
//   output_norm.weight             [d_model]
//   output.weight                  [vocab, d_model]          absent when embeddings are tied
//   blk.{L}.attn_norm.weight       [d_model]
//   blk.{L}.attn_q.weight          [n_heads*head_dim, d_model]    (+ .bias in qwen2)
//   blk.{L}.attn_k.weight          [n_kv_heads*head_dim, d_model] (+ .bias in qwen2)
//   blk.{L}.attn_v.weight          [n_kv_heads*head_dim, d_model] (+ .bias in qwen2)
//   blk.{L}.attn_q_norm.weight     [head_dim]  per-head RMSNorm of q (qwen3)
//   blk.{L}.attn_k_norm.weight     [head_dim]  per-head RMSNorm of k (qwen3)
//   blk.{L}.attn_output.weight     [d_model, n_heads*head_dim]
//   blk.{L}.ffn_norm.weight        [d_model]
//   blk.{L}.ffn_gate.weight        [d_ff, d_model]
//   blk.{L}.ffn_up.weight          [d_ff, d_model]
//   blk.{L}.ffn_down.weight        [d_model, d_ff]
//   blk.{L}.attn_output.bias       [d_model]  optional in every family: written only by structured
//   blk.{L}.ffn_down.bias          [d_model]  pruning's bias compensation (lib/compress/prune.h)
// head_dim is a config field of its own (qwen3: 96 with d_model 256 and 4 heads).
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
  std::string arch;  // canonical family name: a row of arch_table() ("llama", "qwen2", "qwen3")
  int64_t n_layers = 0;
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;  // independent of d_model / n_heads
  int64_t d_ff = 0;
  int64_t vocab_size = 0;
  int64_t max_ctx = 2048;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tied_embeddings = false;
  bool qkv_bias = false;  // mirrors the row (ArchInfo::qkv_bias), kept in files for plain readers
  int64_t bos_id = -1;  // -1: none
  int64_t eos_id = -1;
  // Optional per-layer widths (size n_layers). Empty means every layer uses the global widths.
  std::vector<LayerDims> layers;

  LayerDims layer(int64_t l) const;  // effective widths of layer l
  bool operator==(const ModelConfig&) const = default;
};

void to_json(nlohmann::json& j, const ModelConfig& c);
void from_json(const nlohmann::json& j, ModelConfig& c);  // throws ConfigError on bad fields
// Throws ConfigError when dims are missing, non-positive, implausibly large (more than kMaxLayers
// layers, a width above kMaxWidth) or inconsistent (heads % kv_heads...).
inline constexpr int64_t kMaxLayers = int64_t{1} << 16;
inline constexpr int64_t kMaxWidth = int64_t{1} << 31;  // products of two widths fit int64
void validate_config(const ModelConfig& c, const std::string& where);
// For a config read from a file holding n_tensors tensors: first the cheap bound (a file cannot
// hold more layers than tensors), so nothing loops over a hostile layer count, then
// validate_config.
void validate_config_for_file(const ModelConfig& c, size_t n_tensors, const std::string& where);

// ---- The table's vocabulary ------------------------------------------------------------------

// On-disk stable names are not involved: these enums are in-memory only.
enum class TensorRole : uint8_t { kEmbedding, kNorm, kLinear, kBias, kClassifier };
// How a reader of Meta-ordered sources must permute rows to reach the canonical order.
enum class RopePermute : uint8_t { kNone, kQ, kK };

// Symbolic widths a shape is written in. A Dim names what indexes an axis, so the same value is
// the channel map: every axis of Dim::kFfn in a layer is indexed by that layer's FFN channels,
// every kQ axis by its q-head channels (head h owns [h*head_dim, (h+1)*head_dim)), every kKv axis
// by its kv-head channels. Structured pruning selects along exactly these axes, and scale folding
// derives how a group's input channels map onto its producer's output channels from them.
enum class Dim : uint8_t {
  kVocab,    // vocab_size
  kModel,    // d_model (the residual stream)
  kHeadDim,  // head_dim (weights shared by every head, e.g. per-head norms)
  kQ,        // n_heads * head_dim of the layer
  kKv,       // n_kv_heads * head_dim of the layer
  kFfn,      // d_ff of the layer
};
std::string_view dim_name(Dim d);  // "d_model", "n_heads*head_dim", ...
int64_t dim_size(Dim d, const ModelConfig& c, const LayerDims& layer);

// The sub-block a block tensor belongs to. A layer pruned to 0 heads skips its kAttn tensors, one
// pruned to d_ff 0 its kFfn tensors.
enum class Part : uint8_t { kGlobal, kAttn, kFfn };

// Short names of the block tensors the engine's kinds compute with (one spelling, shared by the
// rows in arch_rows.cpp and the engine). A row of kind kGqa/kDense must have the ones its kind
// uses; the table builder checks it.
namespace names {
inline constexpr std::string_view kAttnNorm = "attn_norm";
inline constexpr std::string_view kAttnQ = "attn_q";
inline constexpr std::string_view kAttnK = "attn_k";
inline constexpr std::string_view kAttnV = "attn_v";
inline constexpr std::string_view kAttnQNorm = "attn_q_norm";
inline constexpr std::string_view kAttnKNorm = "attn_k_norm";
inline constexpr std::string_view kAttnOutput = "attn_output";
inline constexpr std::string_view kFfnNorm = "ffn_norm";
inline constexpr std::string_view kFfnGate = "ffn_gate";
inline constexpr std::string_view kFfnUp = "ffn_up";
inline constexpr std::string_view kFfnDown = "ffn_down";
inline constexpr std::string_view kTokenEmbd = "token_embd.weight";
inline constexpr std::string_view kOutputNorm = "output_norm.weight";
inline constexpr std::string_view kOutput = "output.weight";
}  // namespace names

// Block structure, one value per kind the engine implements (lib/model/block.cpp dispatches on
// them). DeepSeek adds kMla and kMoe.
enum class AttnKind : uint8_t { kGqa };   // multi-head attention with grouped kv heads + RoPE
enum class FfnKind : uint8_t { kDense };  // SwiGLU: down(silu(gate(x)) * up(x))

struct ArchTensor {
  std::string_view canonical;  // pattern with "{L}" for the layer index
  std::string_view hf;         // Hugging Face safetensors name pattern
  std::string_view gguf;       // GGUF name pattern
  TensorRole role;
  std::vector<Dim> shape;      // e.g. {Dim::kQ, Dim::kModel} for attn_q
  Part part = Part::kGlobal;
  std::string_view group = {};  // linears: the LinearGroup (reading the same input) it belongs to
  RopePermute permute = RopePermute::kNone;  // GGUF/llama2.c sources of meta_rope_in_gguf rows
  bool optional = false;  // may be absent: the classifier (tied), pruning's output biases

  bool per_layer() const { return canonical.rfind("blk.{L}.", 0) == 0; }
  // "attn_q" for "blk.{L}.attn_q.weight"; the canonical name itself for global tensors.
  std::string_view short_name() const;
  bool is_bias() const { return role == TensorRole::kBias; }
};

// How a group's input channels derive from its producer's output channels, for folding a scale
// into the producer (lib/model/fold.h). Derived from the Dims of the producer's output axis and
// the consumers' input axis.
enum class ChannelMap : uint8_t {
  kIdentity,  // the same Dim on both sides: input channel j is producer channel j
  kKvHeads,   // kKv -> kQ: channel h*head_dim + i reads value channel (h / rep)*head_dim + i,
              // rep = n_heads / n_kv_heads (GQA)
  kNone,      // not foldable
};

// Linears that read the same input, and the tensor that produces that input (a norm or a linear)
// into which an input-channel scale can be folded (AWQ). Groups are listed in true-sequential
// order; `linears` and `channels` are derived from the tensor rows.
struct LinearGroup {
  std::string_view name;      // "attn_in", "attn_out", "ffn_in", "ffn_out"
  std::string_view producer;  // short name: "attn_norm", "attn_v", "ffn_norm", "ffn_up"
  // Linears AWQ's clip search leaves at their min/max ranges: q and k, whose errors only matter
  // through the softmax of their dot products (the reference skips them the same way).
  std::vector<std::string_view> no_clip = {};
  std::vector<std::string_view> linears = {};  // derived: short names, in table order
  ChannelMap channels = ChannelMap::kNone;     // derived
};

struct ArchInfo {
  std::string_view name;                           // "llama"
  std::vector<std::string_view> hf_architectures;  // config.json "architectures" values
  std::vector<std::string_view> hf_model_types;    // config.json "model_type" values
  std::string_view gguf_arch;                      // general.architecture
  bool meta_rope_in_gguf;  // GGUF stores q/k in Meta (interleaved) order: permute on read
  AttnKind attn = AttnKind::kGqa;
  FfnKind ffn = FfnKind::kDense;
  std::vector<ArchTensor> tensors;
  std::vector<LinearGroup> linear_groups;  // per block, in true-sequential order

  // Derived by the table builder (arch.cpp), which also checks the row's consistency.
  bool qkv_bias = false;  // the row has required q/k/v biases
  bool qk_norm = false;   // the row has per-head q/k norms

  // The row of canonical pattern or block short name ("blk.{L}.attn_q.weight", "attn_q"; a short
  // name finds the .weight row); nullptr when absent.
  const ArchTensor* find(std::string_view name) const;
  const ArchTensor* bias_of(std::string_view linear_short) const;  // its bias row, or nullptr
  const LinearGroup* group(std::string_view name) const;
  // Block rows of a role, in table order.
  std::vector<const ArchTensor*> block_rows(TensorRole role) const;
  // The block linear whose input axis is `d` (the consumer of the FFN channels or of the attention
  // heads' outputs: what activation-based pruning scores); nullptr when none.
  const ArchTensor* consumer_of(Dim d) const;
};

const std::vector<ArchInfo>& arch_table();
const ArchInfo* find_arch(std::string_view name);  // canonical name
const ArchInfo* find_arch_by_hf(std::string_view hf_arch, std::string_view model_type);
const ArchInfo* find_arch_by_gguf(std::string_view gguf_arch);
// Throws ConfigError listing the supported families.
const ArchInfo& require_arch(std::string_view name, const std::string& where);
// The row of c.arch (asserts: configs are validated when they enter the program).
const ArchInfo& arch_of(const ModelConfig& c);

// "blk.{L}.attn_q.weight" with L=3 -> "blk.3.attn_q.weight".
std::string expand_name(std::string_view pattern, int64_t layer);
// Canonical name of block tensor `short_name` ("attn_q") in layer l: "blk.3.attn_q.weight".
std::string linear_name(int64_t layer, std::string_view short_name);
std::string bias_name(int64_t layer, std::string_view short_name);  // "blk.3.attn_q.bias"
// Parse "blk.{L}.{short}.{suffix}" -> (L, short). Returns false for other names.
bool parse_block_name(const std::string& canonical, int64_t* layer, std::string* short_name);
// The row a canonical tensor name instantiates under c (layer in range), with its layer (-1 for
// global tensors); nullptr when the name is not part of the family.
const ArchTensor* find_tensor_row(const ModelConfig& c, const std::string& canonical,
                                  int64_t* layer = nullptr);
// Shape of a row under config c for layer `layer` (ignored for global rows).
Shape row_shape(const ArchTensor& row, const ModelConfig& c, int64_t layer);
// Expected shape of a canonical tensor under config c, or nullopt when the name is unknown.
std::optional<Shape> expected_shape(const ModelConfig& c, const std::string& canonical);
// Is the tensor one of the transformer blocks' linear weights (what quantizers touch)?
bool is_block_linear(const ModelConfig& c, const std::string& canonical);
// Must a store of config c hold the row's tensors? (Optional rows may be absent; the classifier is
// required unless embeddings are tied.)
bool row_required(const ArchTensor& row, const ModelConfig& c);

// Permute the rows of a [n_heads*head_dim, cols] matrix (or [n_heads*head_dim] bias) from Meta
// interleaved RoPE order to the canonical rotate_half order, for any element size.
void permute_meta_to_hf(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes);

namespace detail {
// The rows of the table, before arch_table() derives and checks their group fields
// (arch_rows.cpp).
std::vector<ArchInfo> arch_rows();
}  // namespace detail

}  // namespace dsq
