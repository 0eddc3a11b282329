// `dsq eval` and `dsq generate` orchestration: open models, build the token stream, cut it into
// windows, run the reference engine (lib/model) and aggregate metrics into a report.
//
// Token stream and windows (the protocol of shared/data/MANIFEST.md):
//   - --tokens FILE.u32: the ids as stored; --text FILE: encode(text) with the model's tokenizer
//     (no BOS added by the tokenizer).
//   - --bos: the stream must start with the model's BOS id; it is prepended unless the stream
//     already starts with it (the shared .u32 files do: they are [BOS] + encode(text)). BOS is
//     NOT inserted into later windows: reproducing the reference numbers requires windows taken
//     from the stream as-is.
//   - --max-tokens N: keep the first N ids of the stream (after BOS handling).
//   - windows: consecutive non-overlapping slices of ctx ids, each evaluated from a fresh context
//     (positions 0..ctx-1); a trailing remainder shorter than ctx is not evaluated.
//   - scoring: position t of a window predicts id t+1, so a window scores ids 1..ctx-1:
//     windows x (ctx-1) tokens. ppl = exp(mean NLL), log-softmax in f64.
// With a reference model the same windows are scored for KL(ref || model) (full vocabulary),
// top-1 agreement and per-block hidden-state drift.
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

namespace dsq::calibration {

struct EvalOptions {
  std::string model;        // model path (any format formats::open_model reads)
  std::string ref;          // optional reference model
  std::string text_file;    // exactly one of text_file / tokens_file
  std::string tokens_file;
  int64_t ctx = 512;        // window length in ids (>= 2)
  int64_t max_tokens = 0;   // 0 = the whole stream
  bool bos = false;
  int64_t batch = 1;        // windows per forward pass
  std::string json_out;     // optional JSON report path (written via <path>.tmp + rename)
  bool progress = true;
};

struct EvalReport {
  std::string model, ref;
  int64_t ctx = 0, windows = 0, batch = 1;
  int64_t stream_tokens = 0;   // ids in the stream (after BOS and --max-tokens)
  int64_t tokens_dropped = 0;  // trailing ids not forming a full window
  int64_t tokens_scored = 0;
  double mean_nll = 0, perplexity = 0;
  bool has_ref = false;
  double ref_perplexity = 0, ppl_ratio = 0, ppl_diff = 0;
  double kld_mean = 0, kld_stderr = 0, kld_p99 = 0, kld_max = 0, top1_agreement = 0;
  std::vector<model::LayerDrift> layers;  // empty without a reference or when depths differ
  // Thresholded linears (dsq sparsify): share of input entries zeroed, per linear; empty if none.
  std::vector<model::LinearSparsity> sparsity;
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

// The stream for `opts` (text or ids, BOS rule, --max-tokens), ids checked against the model's
// vocabulary (FormatError naming the file and position).
std::vector<int32_t> eval_token_stream(const EvalOptions& opts, const WeightStore& ws);

// Scores `model` (and `ref` when non-null) on the windows of `stream`. Throws UsageError for
// ctx < 2 or a stream shorter than one window, ConfigError when the vocabularies differ.
EvalReport evaluate(const model::Model& model, const model::Model* ref,
                    std::span<const int32_t> stream, int64_t ctx, int64_t batch,
                    bool progress = false);

// Everything `dsq eval` does: validate options, open, tokenize, evaluate, write the JSON.
EvalReport run_eval(const EvalOptions& opts);

// Average stored bits per weight of the block linears, or nullopt when none is quantized.
std::optional<double> block_linear_bits_per_weight(const WeightStore& ws);

struct GenerateOptions {
  std::string model;
  std::string prompt;
  int64_t n_new = 32;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;
  uint64_t seed = 0;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;  // BOS + encode(prompt)
  std::vector<int32_t> new_ids;     // generated (stops early after EOS)
  std::string text;                 // decode(prompt_ids + new_ids)
  double tokens_per_second = 0;     // generated ids per second (prompt processing included)
};

// `dsq generate`: BOS + encode(prompt) through the KV cache, then sampling.
GenerateResult run_generate(const GenerateOptions& opts);

}  // namespace dsq::calibration
