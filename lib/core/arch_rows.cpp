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
// The rows every family of the table starts with: embedding, final norm, classifier (optional:
// tied embeddings), attention norm.
std::vector<ArchTensor> common_leading_tensors() {
  return {
      {"token_embd.weight", "model.embed_tokens.weight", "token_embd.weight", R::kEmbedding,
       {D::kVocab, D::kModel}},
      {"output_norm.weight", "model.norm.weight", "output_norm.weight", R::kNorm, {D::kModel}},
      {"output.weight", "lm_head.weight", "output.weight", R::kClassifier, {D::kVocab, D::kModel},
       P::kGlobal, {}, RP::kNone, /*optional=*/true},
      {"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight",
       "blk.{L}.attn_norm.weight", R::kNorm, {D::kModel}, P::kAttn},
  };
}

std::vector<ArchTensor> llama_like_tensors(bool bias, bool qk) {
  std::vector<ArchTensor> t = common_leading_tensors();
  const std::vector<ArchTensor> attn = {
      {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight",
       R::kLinear, {D::kQ, D::kModel}, P::kAttn, "attn_in", RP::kQ},
      {"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight",
       R::kLinear, {D::kKv, D::kModel}, P::kAttn, "attn_in", RP::kK},
      {"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight",
       R::kLinear, {D::kKv, D::kModel}, P::kAttn, "attn_in"},
  };
  t.insert(t.end(), attn.begin(), attn.end());
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

// DeepSeek-V3 / R1 (and V2-shaped configs): Multi-head Latent Attention, dense FFNs in the first
// layers and Mixture-of-Experts FFNs after. Hugging Face names of the release checkpoints; no
// GGUF source names (llama.cpp stores experts fused, as 3-D tensors).
std::vector<ArchTensor> deepseek_tensors() {
  const std::string_view no_gguf = {};
  const Only qlora = Only::kQLora, no_qlora = Only::kNoQLora, dense = Only::kDense, moe = Only::kMoe;
  std::vector<ArchTensor> t = common_leading_tensors();
  const std::vector<ArchTensor> rest = {
      {"blk.{L}.attn_q_a.weight", "model.layers.{L}.self_attn.q_a_proj.weight",
       "blk.{L}.attn_q_a.weight", R::kLinear, {D::kQLora, D::kModel}, P::kAttn, "attn_in",
       RP::kNone, false, qlora},
      {"blk.{L}.attn_q_a_norm.weight", "model.layers.{L}.self_attn.q_a_layernorm.weight",
       "blk.{L}.attn_q_a_norm.weight", R::kNorm, {D::kQLora}, P::kAttn, {}, RP::kNone, false, qlora},
      {"blk.{L}.attn_q_b.weight", "model.layers.{L}.self_attn.q_b_proj.weight",
       "blk.{L}.attn_q_b.weight", R::kLinear, {D::kQkHeads, D::kQLora}, P::kAttn, "attn_q_b",
       RP::kNone, false, qlora},
      {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight",
       R::kLinear, {D::kQkHeads, D::kModel}, P::kAttn, "attn_in", RP::kNone, false, no_qlora},
      {"blk.{L}.attn_kv_a_mqa.weight", "model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight",
       "blk.{L}.attn_kv_a_mqa.weight", R::kLinear, {D::kKvA, D::kModel}, P::kAttn, "attn_in"},
      {"blk.{L}.attn_kv_a_norm.weight", "model.layers.{L}.self_attn.kv_a_layernorm.weight",
       "blk.{L}.attn_kv_a_norm.weight", R::kNorm, {D::kKvLora}, P::kAttn},
      {"blk.{L}.attn_kv_b.weight", "model.layers.{L}.self_attn.kv_b_proj.weight",
       "blk.{L}.attn_kv_b.weight", R::kLinear, {D::kKvB, D::kKvLora}, P::kAttn, "attn_kv_b"},
      {"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight",
       "blk.{L}.attn_output.weight", R::kLinear, {D::kModel, D::kVHeads}, P::kAttn, "attn_out"},
      {"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight",
       "blk.{L}.ffn_norm.weight", R::kNorm, {D::kModel}, P::kFfn},
      {"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight",
       R::kLinear, {D::kFfn, D::kModel}, P::kFfn, "ffn_in", RP::kNone, false, dense},
      {"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight",
       R::kLinear, {D::kFfn, D::kModel}, P::kFfn, "ffn_in", RP::kNone, false, dense},
      {"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight",
       R::kLinear, {D::kModel, D::kFfn}, P::kFfn, "ffn_out", RP::kNone, false, dense},
      {"blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.mlp.gate.weight",
       "blk.{L}.ffn_gate_inp.weight", R::kRouter, {D::kExperts, D::kModel}, P::kFfn, "exp_in",
       RP::kNone, false, moe},
      {"blk.{L}.exp_probs_b.bias", "model.layers.{L}.mlp.gate.e_score_correction_bias",
       "blk.{L}.exp_probs_b.bias", R::kRouterBias, {D::kExperts}, P::kFfn, {}, RP::kNone, false,
       moe},
      {"blk.{L}.ffn_gate_shexp.weight", "model.layers.{L}.mlp.shared_experts.gate_proj.weight",
       "blk.{L}.ffn_gate_shexp.weight", R::kLinear, {D::kShared, D::kModel}, P::kFfn, "shexp_in",
       RP::kNone, false, moe},
      {"blk.{L}.ffn_up_shexp.weight", "model.layers.{L}.mlp.shared_experts.up_proj.weight",
       "blk.{L}.ffn_up_shexp.weight", R::kLinear, {D::kShared, D::kModel}, P::kFfn, "shexp_in",
       RP::kNone, false, moe},
      {"blk.{L}.ffn_down_shexp.weight", "model.layers.{L}.mlp.shared_experts.down_proj.weight",
       "blk.{L}.ffn_down_shexp.weight", R::kLinear, {D::kModel, D::kShared}, P::kFfn, "shexp_out",
       RP::kNone, false, moe},
      {"blk.{L}.ffn_gate_exps.{E}.weight", "model.layers.{L}.mlp.experts.{E}.gate_proj.weight",
       no_gguf, R::kLinear, {D::kExpert, D::kModel}, P::kFfn, "exp_in", RP::kNone, false, moe},
      {"blk.{L}.ffn_up_exps.{E}.weight", "model.layers.{L}.mlp.experts.{E}.up_proj.weight", no_gguf,
       R::kLinear, {D::kExpert, D::kModel}, P::kFfn, "exp_in", RP::kNone, false, moe},
      {"blk.{L}.ffn_down_exps.{E}.weight", "model.layers.{L}.mlp.experts.{E}.down_proj.weight",
       no_gguf, R::kLinear, {D::kModel, D::kExpert}, P::kFfn, "exp_out", RP::kNone, false, moe},
  };
  t.insert(t.end(), rest.begin(), rest.end());
  return t;
}

// True-sequential order: the attention's input projections (q_a and kv_a share attn_norm's
// output; V2-Lite's plain q too), q_b (reads q_a_norm's output), kv_b (reads kv_a_norm's), the
// output projection (reads the attention output: its scale folds into kv_b's value rows), then the
// FFN. A MoE layer's router sees the quantized attention; the shared expert comes before the
// routed ones, and each routed expert is its own pair of groups (gate/up, then down). AWQ's clip
// search skips the q projections, as the reference does for every "q_" linear.
std::vector<LinearGroup> deepseek_groups() {
  return {
      {"attn_in", names::kAttnNorm, {names::kAttnQA, names::kAttnQ}},
      {"attn_q_b", names::kAttnQANorm, {names::kAttnQB}},
      {"attn_kv_b", names::kAttnKvANorm, {names::kAttnKvB}},
      {"attn_out", names::kAttnKvB},
      {"ffn_in", names::kFfnNorm},
      {"ffn_out", names::kFfnUp},
      {"shexp_in", names::kFfnNorm},
      {"shexp_out", names::kFfnUpShexp},
      {"exp_in", names::kFfnNorm},
      {"exp_out", "ffn_up_exps.{E}"},
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
      {"deepseek_v3",
       {"DeepseekV3ForCausalLM", "DeepseekV2ForCausalLM"},
       {"deepseek_v3", "deepseek_v2"},
       /*gguf_arch=*/"",  // not read from GGUF (fused expert tensors)
       /*meta_rope_in_gguf=*/false,
       AttnKind::kMla,
       FfnKind::kMoe,
       deepseek_tensors(),
       deepseek_groups()},
  };
}

}  // namespace dsq::detail
