// Structured pruning on a WeightStore: tensors become physically smaller and the config records
// the new per-layer widths (ModelConfig::layers), so every reader, writer and the engine see an
// ordinary (possibly non-uniform) model.
//
// What is removed, per layer (one-shot: every score comes from the unpruned model):
//   FFN channels c:  rows c of ffn_gate and ffn_up, column c of ffn_down.
//   Attention heads: rows of attn_q and columns of attn_output of each removed q head. With
//     grouped-query attention the q -> kv mapping (q head h reads kv head h / group) must stay
//     valid, so there are two modes:
//       kv-groups (default): remove whole kv groups: kv head g, its rows of attn_k and attn_v, and
//         all `group` q heads that read it. n_heads and n_kv_heads fall together; group is kept.
//       per-group: remove the same number of q heads from every kv group (k/v untouched); the
//         group size shrinks. Needs round(ratio * group) >= 1 to remove anything.
//   Blocks: the `drop_layers` blocks of lowest influence (prune_stats.h) are deleted and the
//     remaining blk.N names renumbered; n_layers shrinks.
//
// Importance (lower = removed first); X_j is column j of the linear's input over calibration rows:
//   magnitude:  sum of squared weights of the structure (FFN channel: gate row + up row + down
//               column; q head: q rows + o columns; kv group: its q heads + k and v rows).
//   activation: Wanda (Sun et al. 2023): S_j = ||X_j||_2 * sum_i |W_ij| for the input channels j of
//               the consuming linear (ffn_down for FFN channels, attn_output for heads); a head or
//               group sums its channels. With bias compensation the fluctuation metric of FLAP
//               (An et al. 2024, eq. 4) is used instead, S_j = var(X_j) * ||W_:,j||_2^2, because
//               the compensation restores the mean and only the fluctuation is lost.
// Bias compensation (FLAP "baseline correction", eq. 6): the removed channels' mean contribution
//   is folded into an output bias of the consuming linear, b += W[:, removed] * mean(X[removed]),
//   stored as the canonical optional tensors blk.{L}.attn_output.bias / blk.{L}.ffn_down.bias
//   (arch.h), which the engine adds after the matmul.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lib/compress/prune_stats.h"
#include "lib/core/weight_store.h"

namespace dsq::compress {

// On-disk names (recorded in the recipe): "magnitude", "activation".
enum class Importance : uint8_t { kMagnitude = 0, kActivation = 1 };
// On-disk names: "kv-groups", "per-group".
enum class HeadMode : uint8_t { kKvGroups = 0, kPerGroup = 1 };

std::string_view importance_name(Importance i);
std::string_view head_mode_name(HeadMode m);
Importance parse_importance(std::string_view s);  // throws UsageError
HeadMode parse_head_mode(std::string_view s);     // throws UsageError

struct PruneOptions {
  double ffn_ratio = 0.0;   // fraction of each layer's d_ff channels to remove, [0, 1]
  double head_ratio = 0.0;  // fraction of each layer's heads (kv groups or q heads per group)
  HeadMode head_mode = HeadMode::kKvGroups;
  int64_t drop_layers = 0;  // blocks to delete (needs stats with block influence)
  Importance importance = Importance::kActivation;
  bool bias_compensation = false;  // needs stats
  // True: every layer removes round(ratio * width). False (global): FLAP's adaptive structure,
  // scores standardised per layer then ranked across layers, so widths may differ per layer.
  bool uniform = true;
  bool needs_stats() const;
};

struct LayerPruneReport {
  int64_t source_layer = 0;  // index in the input model
  int64_t layer = -1;        // index in the output model (-1: dropped)
  double influence = 0.0;    // 1 - cos(h_in, h_out) (0 when not measured)
  LayerDims before, after;
  std::vector<int64_t> removed_heads;     // q heads removed (source indices)
  std::vector<int64_t> removed_kv_heads;  // kv heads removed (source indices)
  int64_t ffn_removed = 0;
  bool bias_added = false;  // an output bias was created or updated
  int64_t params_before = 0, params_after = 0;
};

struct PruneResult {
  WeightStore store;  // the pruned model (untouched tensors keep their lazy loaders)
  std::vector<LayerPruneReport> layers;  // one per source layer
  int64_t params_before = 0, params_after = 0;
};
void to_json(nlohmann::json& j, const LayerPruneReport& r);

// Prunes `src` (float tensors; throws UsageError for quantized linears: prune before quantizing).
// `stats` may be null when !opts.needs_stats(). Throws UsageError for ratios outside [0, 1] or
// drop_layers >= n_layers. Deterministic: ties in importance go to the lower index.
// Structured pruning and activation sparsity cover the GQA + dense-FFN families (llama, qwen2,
// qwen3). Throws ConfigError naming `where` and the command for other rows (DeepSeek's latent
// attention and experts are not supported yet).
void require_structured_support(const ModelConfig& c, std::string_view command,
                                const std::string& where);

PruneResult prune_weights(const WeightStore& src, const PruneOptions& opts,
                          const PruneStats* stats);

}  // namespace dsq::compress
