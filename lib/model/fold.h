// Folding per-input-channel scales into a block (AWQ, lib/quant/awq.h): the linears of a group that
// read the same input (ArchInfo::linear_groups) get their input columns multiplied by s, and the
// tensor producing that input is divided by s, so the block computes the same function; only f32
// rounding differs. Quantizing W diag(s) instead of W is what protects the salient channels.
//
//   producer is a norm (attn_norm, ffn_norm): norm weight_c /= s_c, and the group reads x / s.
//   producer is a linear (attn_v, ffn_up): its rows (and bias) c /= s_c. How the consumer's input
//     channels derive from the producer's output channels is LinearGroup::channels, which the
//     architecture table derives from the Dims of the two axes, and follows the block's
//     computation (block.h):
//       attn_v -> attn_output: attention mixes positions, not channels, and q-head h reads
//         kv-head h / (n_heads / n_kv_heads), so attn_output input channel h*hd + i comes from
//         value channel (h / rep)*hd + i: channels of q-heads sharing a kv-head share one scale
//         (GQA; the reference implementation skips this fold whenever the shapes differ).
//       ffn_up -> ffn_down: silu(gate) * up is elementwise in up, channel j from up row j.
//       attn_kv_b -> attn_output (MLA): attention is linear in v, so output channel h*d_v + i
//         comes from kv_b's value row h*(d_n+d_v) + d_n + i; the k_nope rows keep scale 1.
//   Routers reading the producer's output (LinearGroup::routers) get their columns multiplied
//   too, so routing is unchanged.
// Expert groups (LinearGroup::per_expert) fold one expert at a time: pass its index; the names
// "ffn_up_exps.{E}" resolve to that expert's resident linears.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lib/core/arch.h"
#include "lib/model/block.h"

namespace dsq::model {

// The producer channel each input channel of g's linears reads ([n_in] indices into the
// producer's channels; tied channels share an index), with the producer's channel count in
// *n_producer. Empty when g cannot be folded here: a missing (skipped) producer or group, a
// quantized producer, or widths that do not line up.
// For an expert group, `expert` picks the expert (< 0: the widths of every resident expert).
std::vector<int64_t> fold_channel_map(const BlockWeights& b, const ModelConfig& c,
                                      const LinearGroup& g, int64_t* n_producer,
                                      int64_t expert = -1);

// Multiplies the input columns of g's (non-empty) linears by s [n_in] and divides the producer's
// channels by the corresponding scale. s must be positive, finite and equal on tied channels
// (awq_scales with the channel map gives that). The touched linears and norms become owned f32
// copies. Throws ConfigError when g cannot be folded (fold_channel_map empty), a linear is
// quantized or has an activation threshold (sparsify after quantizing, not before), and
// ShapeError on a bad s.
void fold_input_scale(BlockWeights& b, const ModelConfig& c, const LinearGroup& g,
                      std::span<const float> s, int64_t expert = -1);
// One scale for several groups reading the same producer (a MoE layer's ffn_norm feeds the shared
// expert, every routed expert and the router): every consumer is scaled, the producer divided
// once. An expert group with expert < 0 means every resident expert.
void fold_input_scale(BlockWeights& b, const ModelConfig& c,
                      std::span<const LinearGroup* const> groups, std::span<const float> s,
                      int64_t expert = -1);

// The columns of one linear multiplied by s (an owned f32 copy); for consumers folded outside a
// group (a streamed expert reading a shared, already folded norm).
void scale_input_columns(Linear& l, std::span<const float> s);

// A group's member name for expert e ("ffn_up_exps.{E}" -> "ffn_up_exps.3"); other names as they
// are.
std::string group_member(std::string_view name, int64_t expert);

}  // namespace dsq::model
