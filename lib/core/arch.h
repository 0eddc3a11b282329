// Model configuration and the architecture table: the single source of truth for what a model
// family's tensors are, how they are named in every input format, what shape they have, what role
// they play and which linears share an input.
//
// A row (ArchInfo, one per family, in arch_rows.cpp) declares the block structure:
//   - the attention kind (AttnKind) and FFN kind (FfnKind) the engine runs for a block;
//   - one ArchTensor per tensor: canonical name, source-name patterns per input format, a shape
//     written in symbolic widths (Dim), its role, the sub-block (Part) it belongs to, when it is
//     present (Only: every layer, or only with a q LoRA, only in dense / MoE layers), and for a
//     linear the LinearGroup that reads the same input;
//   - the linear groups in true-sequential order, each with the tensor producing its input.
// Everything else is derived from the row: expected shapes, which tensors are block linears (what
// quantizers touch), the engine's block weights, calibration groups, the channel maps that
// pruning and scale folding follow (from the Dims: an FFN-channel axis is Dim::kFfn wherever it
// appears), the synthetic-model builder and inspect's parameter breakdown. Nothing outside this
// table lists an architecture's tensors (tests/core/arch_table_test.cpp loops over every row and
// every consumer). docs/ARCHITECTURE.md shows how to add a row.
//
// Patterns use "{L}" for the layer and "{E}" for the routed expert (Mixture-of-Experts rows are
// one row per expert tensor kind, instantiated for E in [0, n_experts)).
//
// Canonical names and layouts of the Llama-like rows (row-major, PyTorch [out_features,
// in_features] for linears):
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
// q/k rows into this order, so the engine implements one RoPE for them. DeepSeek's rope dims keep
// their release order (adjacent pairs (2i, 2i+1), ModelConfig::rope_interleave).
//
// The DeepSeek-V3 row (Multi-head Latent Attention + Mixture of Experts), H = n_heads,
// d_n/d_r/d_v = qk_nope/qk_rope/v head dims, R = kv_lora_rank, E = n_experts:
//   blk.{L}.attn_q_a.weight        [q_lora_rank, d_model]     (q_lora_rank > 0)
//   blk.{L}.attn_q_a_norm.weight   [q_lora_rank]
//   blk.{L}.attn_q_b.weight        [H*(d_n+d_r), q_lora_rank]
//   blk.{L}.attn_q.weight          [H*(d_n+d_r), d_model]     (q_lora_rank == 0, V2-Lite)
//   blk.{L}.attn_kv_a_mqa.weight   [R+d_r, d_model]           latent | shared rope key
//   blk.{L}.attn_kv_a_norm.weight  [R]
//   blk.{L}.attn_kv_b.weight       [H*(d_n+d_v), R]           per head: k_nope rows, then v rows
//   blk.{L}.attn_output.weight     [d_model, H*d_v]
//   dense layers: ffn_gate/ffn_up/ffn_down as above (d_ff = intermediate_size)
//   MoE layers:   blk.{L}.ffn_gate_inp.weight [E, d_model]    router (kept at high precision)
//                 blk.{L}.exp_probs_b.bias    [E]             e_score_correction_bias
//                 blk.{L}.ffn_{gate,up}_exps.{E}.weight [d_expert, d_model], ffn_down_exps [d_model,
//                 d_expert]; ffn_{gate,up,down}_shexp: the shared experts, width
//                 d_expert*n_shared_experts
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

// RoPE frequency scaling (Hugging Face rope_scaling). type "" is plain RoPE; "yarn" is YaRN as
// transformers computes it (_compute_yarn_parameters): inv_freq blended between interpolated and
// extrapolated frequencies over the correction range of beta_fast/beta_slow, cos/sin multiplied
// by the attention factor, and (mscale_all_dim != 0) the softmax scaled by mscale(factor,
// mscale_all_dim)^2.
struct RopeScaling {
  std::string type;  // "" or "yarn"
  double factor = 1.0;
  int64_t original_max_position = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
  double attention_factor = 0.0;  // 0: derived from mscale / mscale_all_dim
  bool truncate = true;           // floor/ceil the correction range
  bool operator==(const RopeScaling&) const = default;
};

// Multi-head Latent Attention widths (AttnKind::kMla). qk head = [nope | rope].
struct MlaDims {
  int64_t q_lora_rank = 0;  // 0: a plain q projection (DeepSeek-V2-Lite)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool operator==(const MlaDims&) const = default;
};

// Mixture-of-Experts routing (FfnKind::kMoe), DeepSeek-V3's noaux_tc: sigmoid scores, a
// per-expert correction bias used only for selection, the top `topk_group` of `n_group` groups
// (each scored by the sum of its two best biased scores), the top `n_experts_per_tok` experts
// of those, weights from the unbiased scores (normalised when norm_topk_prob) times
// routed_scaling_factor, plus the always-active shared experts.
struct MoeConfig {
  int64_t n_experts = 0;  // 0: every layer is dense
  int64_t n_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t n_shared_experts = 0;
  int64_t d_expert = 0;          // moe_intermediate_size
  int64_t first_dense = 0;       // first_k_dense_replace: layers [0, first_dense) are dense
  int64_t layer_freq = 1;        // moe_layer_freq: layer L >= first_dense is MoE iff L % freq == 0
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  bool operator==(const MoeConfig&) const = default;
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
  // Rotary layout: false pairs (i, i + rope_dims/2) (rotate_half), true pairs (2i, 2i+1)
  // (DeepSeek's interleaved rope dims).
  bool rope_interleave = false;
  RopeScaling rope_scaling;
  MlaDims mla;    // AttnKind::kMla rows only
  MoeConfig moe;  // FfnKind::kMoe rows only
  // Optional per-layer widths (size n_layers). Empty means every layer uses the global widths.
  std::vector<LayerDims> layers;

  LayerDims layer(int64_t l) const;  // effective widths of layer l
  bool is_moe_layer(int64_t l) const;  // the layer's FFN is a Mixture of Experts
  // Width of the rotary part of a q/k head: qk_rope_head_dim for MLA, head_dim otherwise.
  int64_t rope_dims() const;
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
// kRouter: a MoE router's weight (a linear the quantizers leave at high precision); kRouterBias:
// its selection-only correction bias.
enum class TensorRole : uint8_t {
  kEmbedding, kNorm, kLinear, kBias, kClassifier, kRouter, kRouterBias
};
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
  // Multi-head Latent Attention (per layer: n_heads of the layer)
  kQLora,    // q_lora_rank
  kQkHeads,  // n_heads*(qk_nope_head_dim + qk_rope_head_dim)
  kKvA,      // kv_lora_rank + qk_rope_head_dim (latent | shared rope key)
  kKvLora,   // kv_lora_rank
  kKvB,      // n_heads*(qk_nope_head_dim + v_head_dim)
  kVHeads,   // n_heads*v_head_dim
  // Mixture of Experts
  kExperts,  // n_experts
  kExpert,   // d_expert (one routed expert's FFN width)
  kShared,   // d_expert*n_shared_experts
};
std::string_view dim_name(Dim d);  // "d_model", "n_heads*head_dim", ...
int64_t dim_size(Dim d, const ModelConfig& c, const LayerDims& layer);

// The sub-block a block tensor belongs to. A layer pruned to 0 heads skips its kAttn tensors, one
// pruned to d_ff 0 its kFfn tensors.
enum class Part : uint8_t { kGlobal, kAttn, kFfn };

// When a block row is present.
enum class Only : uint8_t {
  kAlways,
  kQLora,    // mla.q_lora_rank > 0
  kNoQLora,  // mla.q_lora_rank == 0
  kDense,    // a dense FFN layer (every layer of a family without MoE)
  kMoe,      // a MoE layer
};

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
// Multi-head Latent Attention
inline constexpr std::string_view kAttnQA = "attn_q_a";
inline constexpr std::string_view kAttnQANorm = "attn_q_a_norm";
inline constexpr std::string_view kAttnQB = "attn_q_b";
inline constexpr std::string_view kAttnKvA = "attn_kv_a_mqa";
inline constexpr std::string_view kAttnKvANorm = "attn_kv_a_norm";
inline constexpr std::string_view kAttnKvB = "attn_kv_b";
// Mixture of Experts (expert rows: "ffn_gate_exps.{E}", instantiated by expert_name)
inline constexpr std::string_view kFfnGateInp = "ffn_gate_inp";
inline constexpr std::string_view kExpProbsB = "exp_probs_b";
inline constexpr std::string_view kFfnGateShexp = "ffn_gate_shexp";
inline constexpr std::string_view kFfnUpShexp = "ffn_up_shexp";
inline constexpr std::string_view kFfnDownShexp = "ffn_down_shexp";
inline constexpr std::string_view kFfnGateExps = "ffn_gate_exps";
inline constexpr std::string_view kFfnUpExps = "ffn_up_exps";
inline constexpr std::string_view kFfnDownExps = "ffn_down_exps";
inline constexpr std::string_view kTokenEmbd = "token_embd.weight";
inline constexpr std::string_view kOutputNorm = "output_norm.weight";
inline constexpr std::string_view kOutput = "output.weight";
}  // namespace names

// Block structure, one value per kind the engine implements (lib/model/block.cpp dispatches on
// them).
enum class AttnKind : uint8_t {
  kGqa,  // multi-head attention with grouped kv heads + RoPE
  kMla,  // DeepSeek's Multi-head Latent Attention (lib/model/mla.h)
};
enum class FfnKind : uint8_t {
  kDense,  // SwiGLU: down(silu(gate(x)) * up(x))
  kMoe,    // routed SwiGLU experts + shared experts in MoE layers, kDense in the others
};

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
  Only only = Only::kAlways;  // block rows: in which layers / configs the tensor exists

  bool per_layer() const { return canonical.rfind("blk.{L}.", 0) == 0; }
  bool per_expert() const { return canonical.find("{E}") != std::string_view::npos; }
  // "attn_q" for "blk.{L}.attn_q.weight", "ffn_gate_exps.{E}" for an expert row; the canonical
  // name itself for global tensors.
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
  kMlaV,      // kKvB -> kVHeads: channel h*d_v + i reads kv_b row h*(d_n+d_v) + d_n + i (the
              // value rows of MLA's up-projection)
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
  // Derived: routers reading the same input. They stay at high precision but a scale folded into
  // the producer is folded into their columns too, so routing is unchanged.
  std::vector<std::string_view> routers = {};
  ChannelMap channels = ChannelMap::kNone;     // derived
  bool per_expert = false;  // derived: the group's linears are expert rows (one group per expert)
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
  bool has_experts = false;  // the row has expert rows

  // The row of canonical pattern or block short name ("blk.{L}.attn_q.weight", "attn_q"; a short
  // name finds the .weight row; an expert instance "ffn_gate_exps.3" finds "ffn_gate_exps.{E}");
  // nullptr when absent.
  const ArchTensor* find(std::string_view name) const;
  const ArchTensor* bias_of(std::string_view linear_short) const;  // its bias row, or nullptr
  const LinearGroup* group(std::string_view name) const;
  // The group a linear row (short name, "ffn_down_shexp", "ffn_gate_exps.{E}") belongs to.
  const LinearGroup* group_of(std::string_view linear) const;
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

// "blk.{L}.attn_q.weight" with L=3 -> "blk.3.attn_q.weight"; "{E}" becomes `expert`.
std::string expand_name(std::string_view pattern, int64_t layer, int64_t expert = -1);
// The short name of expert e of an expert row's short name: ("ffn_gate_exps", 3) and
// ("ffn_gate_exps.{E}", 3) -> "ffn_gate_exps.3".
std::string expert_name(std::string_view short_name, int64_t expert);
// Is block row `row` present in layer l under c (its Only condition)?
bool row_in_layer(const ArchTensor& row, const ModelConfig& c, int64_t layer);
// Calls fn(layer, expert) for every instance of the row under c (layer -1 for global rows,
// expert -1 for rows without {E}), layers ascending, experts ascending.
template <class Fn>
void for_each_instance(const ArchTensor& row, const ModelConfig& c, Fn&& fn);
// Canonical name of block tensor `short_name` ("attn_q") in layer l: "blk.3.attn_q.weight".
std::string linear_name(int64_t layer, std::string_view short_name);
std::string bias_name(int64_t layer, std::string_view short_name);  // "blk.3.attn_q.bias"
// Parse "blk.{L}.{short}.{suffix}" -> (L, short). Returns false for other names.
bool parse_block_name(const std::string& canonical, int64_t* layer, std::string* short_name);
// The row a canonical tensor name instantiates under c (layer in range), with its layer (-1 for
// global tensors); nullptr when the name is not part of the family.
const ArchTensor* find_tensor_row(const ModelConfig& c, const std::string& canonical,
                                  int64_t* layer = nullptr, int64_t* expert = nullptr);
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
// The inverse: canonical rotate_half order back to Meta's interleaved order (what writers of
// Meta-ordered files, GGUF llama, store).
void permute_hf_to_meta(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes);

template <class Fn>
void for_each_instance(const ArchTensor& row, const ModelConfig& c, Fn&& fn) {
  if (!row.per_layer()) {
    fn(int64_t{-1}, int64_t{-1});
    return;
  }
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (!row_in_layer(row, c, l)) continue;
    if (!row.per_expert()) {
      fn(l, int64_t{-1});
      continue;
    }
    for (int64_t e = 0; e < c.moe.n_experts; ++e) fn(l, e);
  }
}

namespace detail {
// The rows of the table, before arch_table() derives and checks their group fields
// (arch_rows.cpp).
std::vector<ArchInfo> arch_rows();
}  // namespace detail

}  // namespace dsq
