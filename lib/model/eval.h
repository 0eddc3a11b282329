// Scoring a model on windows of a token stream (the protocol of shared/data/MANIFEST.md), with an
// optional reference model for drift: perplexity, KL(ref || model) over the full vocabulary,
// top-1 agreement and per-block hidden-state drift.
//
//   - windows: consecutive non-overlapping slices of ctx ids, each evaluated from a fresh context
//     (positions 0..ctx-1); a trailing remainder shorter than ctx is not evaluated.
//   - scoring: position t of a window predicts id t+1, so a window scores ids 1..ctx-1:
//     windows x (ctx-1) tokens. ppl = exp(mean NLL), log-softmax in f64. With score_from = s,
//     only positions s..ctx-2 are scored (llama.cpp's llama-perplexity scores s = ctx/2 on).
// How the stream is built from a file (BOS rule, --max-tokens) is the eval job's (jobs/eval.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/weight_store.h"
#include "lib/model/act_sparsity.h"
#include "lib/model/metrics.h"
#include "lib/model/model.h"

namespace dsq::model {

struct EvalReport {
  std::string model, ref;
  int64_t ctx = 0, windows = 0, batch = 1;
  int64_t score_from = 0;      // first scored position of each window
  int64_t stream_tokens = 0;   // ids in the stream (after BOS and --max-tokens)
  int64_t tokens_dropped = 0;  // trailing ids not forming a full window
  int64_t tokens_scored = 0;
  double mean_nll = 0, perplexity = 0;
  bool has_ref = false;
  double ref_perplexity = 0, ppl_ratio = 0, ppl_diff = 0;
  double kld_mean = 0, kld_stderr = 0, kld_p99 = 0, kld_max = 0, top1_agreement = 0;
  std::vector<LayerDrift> layers;  // empty without a reference or when depths differ
  // Thresholded linears (dsq sparsify): share of input entries zeroed, per linear; empty if none.
  std::vector<LinearSparsity> sparsity;
  double tokens_per_second = 0;  // ids through the evaluated model per second of its forwards
  double seconds = 0;            // wall time of the whole evaluation
  std::optional<double> bits_per_weight;  // block linears, when the model has quantized ones
};

// Top-level keys: perplexity, tokens_scored, ref_perplexity, kld_mean, kld_stderr, kld_p99,
// kld_max, top1_agreement, tokens_per_second, layers [{layer, rel_l2, cosine}], plus model, ref,
// ctx, windows, ppl_ratio, ppl_diff, mean_nll, ... (reference fields are null without --ref).
nlohmann::json to_json(const EvalReport& r);
// The human-readable summary `dsq eval` prints.
std::string format_eval_summary(const EvalReport& r);

// Scores `model` (and `ref` when non-null) on the windows of `stream`, positions score_from..ctx-2
// of each. Throws UsageError for ctx < 2, score_from outside [0, ctx-2] or a stream shorter than
// one window, ConfigError when the vocabularies differ.
EvalReport evaluate(const Model& model, const Model* ref,
                    std::span<const int32_t> stream, int64_t ctx, int64_t batch,
                    bool progress = false, int64_t score_from = 0);

// Average stored bits per weight of the block linears, or nullopt when none is quantized.
std::optional<double> block_linear_bits_per_weight(const WeightStore& ws);

}  // namespace dsq::model
