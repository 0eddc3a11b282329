// The rows of the architecture table (lib/core/arch.h). Adding a family is adding a row here;
// docs/ARCHITECTURE.md walks through one. Patterns use "{L}" for the layer index; shapes are
// written in the symbolic widths of arch.h (Dim), so expected shapes, pruning's channel axes and
// folding's channel maps all follow from them.
#include "lib/core/arch.h"

namespace dsq::detail {
namespace {

using D = Dim;
using P = Part;
using R = TensorRole;
using RP = RopePermute;

// The tensors every Llama-like family shares (Llama, Mistral, Qwen2, Qwen3), in canonical order.
// `qk` adds the per-head q/k norms of Qwen3, `bias` the q/k/v biases of Qwen2.
std::vector<ArchTensor> llama_like_tensors(bool bias, bool qk) {
  std::vector<ArchTensor> t = {
      {"token_embd.weight", "model.embed_tokens.weight", "token_embd.weight", R::kEmbedding,
       {D::kVocab, D::kModel}},
      {"output_norm.weight", "model.norm.weight", "output_norm.weight", R::kNorm, {D::kModel}},
      {"output.weight", "lm_head.weight", "output.weight", R::kClassifier, {D::kVocab, D::kModel},
       P::kGlobal, {}, RP::kNone, /*optional=*/true},
      {"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight",
       "blk.{L}.attn_norm.weight", R::kNorm, {D::kModel}, P::kAttn},
      {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight",
       R::kLinear, {D::kQ, D::kModel}, P::kAttn, "attn_in", RP::kQ},
      {"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight",
       R::kLinear, {D::kKv, D::kModel}, P::kAttn, "attn_in", RP::kK},
      {"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight",
       R::kLinear, {D::kKv, D::kModel}, P::kAttn, "attn_in"},
  };
  if (bias) {
    t.push_back({"blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias",
                 "blk.{L}.attn_q.bias", R::kBias, {D::kQ}, P::kAttn, {}, RP::kQ});
    t.push_back({"blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias",
                 "blk.{L}.attn_k.bias", R::kBias, {D::kKv}, P::kAttn, {}, RP::kK});
    t.push_back({"blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias",
                 "blk.{L}.attn_v.bias", R::kBias, {D::kKv}, P::kAttn});
  }
  if (qk) {
    t.push_back({"blk.{L}.attn_q_norm.weight", "model.layers.{L}.self_attn.q_norm.weight",
                 "blk.{L}.attn_q_norm.weight", R::kNorm, {D::kHeadDim}, P::kAttn});
    t.push_back({"blk.{L}.attn_k_norm.weight", "model.layers.{L}.self_attn.k_norm.weight",
                 "blk.{L}.attn_k_norm.weight", R::kNorm, {D::kHeadDim}, P::kAttn});
  }
  const std::vector<ArchTensor> rest = {
      {"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight",
       "blk.{L}.attn_output.weight", R::kLinear, {D::kModel, D::kQ}, P::kAttn, "attn_out"},
      // Structured pruning's bias compensation (lib/compress/prune.h); optional in every family.
      {"blk.{L}.attn_output.bias", "model.layers.{L}.self_attn.o_proj.bias",
       "blk.{L}.attn_output.bias", R::kBias, {D::kModel}, P::kAttn, {}, RP::kNone, true},
      {"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight",
       "blk.{L}.ffn_norm.weight", R::kNorm, {D::kModel}, P::kFfn},
      {"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight",
       R::kLinear, {D::kFfn, D::kModel}, P::kFfn, "ffn_in"},
      {"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight",
       R::kLinear, {D::kFfn, D::kModel}, P::kFfn, "ffn_in"},
      {"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight",
       R::kLinear, {D::kModel, D::kFfn}, P::kFfn, "ffn_out"},
      {"blk.{L}.ffn_down.bias", "model.layers.{L}.mlp.down_proj.bias", "blk.{L}.ffn_down.bias",
       R::kBias, {D::kModel}, P::kFfn, {}, RP::kNone, true},
  };
  t.insert(t.end(), rest.begin(), rest.end());
  return t;
}

// True-sequential order: attention inputs, attention output, FFN inputs, FFN output.
std::vector<LinearGroup> llama_like_groups() {
  return {
      {"attn_in", names::kAttnNorm, {names::kAttnQ, names::kAttnK}},
      {"attn_out", names::kAttnV},
      {"ffn_in", names::kFfnNorm},
      {"ffn_out", names::kFfnUp},
  };
}

}  // namespace

std::vector<ArchInfo> arch_rows() {
  return {
      {"llama",
       {"LlamaForCausalLM", "MistralForCausalLM"},
       {"llama", "mistral"},
       "llama",
       /*meta_rope_in_gguf=*/true,
       AttnKind::kGqa,
       FfnKind::kDense,
       llama_like_tensors(/*bias=*/false, /*qk=*/false),
       llama_like_groups()},
      {"qwen2",
       {"Qwen2ForCausalLM"},
       {"qwen2"},
       "qwen2",
       /*meta_rope_in_gguf=*/false,  // llama.cpp keeps NEOX order for qwen2
       AttnKind::kGqa,
       FfnKind::kDense,
       llama_like_tensors(/*bias=*/true, /*qk=*/false),
       llama_like_groups()},
      // Qwen3: Qwen2 without biases, plus an RMSNorm over each q and k head before RoPE.
      {"qwen3",
       {"Qwen3ForCausalLM"},
       {"qwen3"},
       "qwen3",
       /*meta_rope_in_gguf=*/false,  // NEOX order, as qwen2
       AttnKind::kGqa,
       FfnKind::kDense,
       llama_like_tensors(/*bias=*/false, /*qk=*/true),
       llama_like_groups()},
  };
}

}  // namespace dsq::detail
