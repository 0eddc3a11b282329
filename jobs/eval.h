// `dsq eval`: open a model (and optionally a reference), build the token stream, score it
// (lib/model/eval.h) and write the JSON report.
//
// Token stream (the protocol of shared/data/MANIFEST.md):
//   - --tokens FILE.u32: the ids as stored; --text FILE: encode(text) with the model's tokenizer
//     (no BOS added by the tokenizer).
//   - --bos: the stream must start with the model's BOS id; it is prepended unless the stream
//     already starts with it (the shared .u32 files do: they are [BOS] + encode(text)). BOS is
//     NOT inserted into later windows: reproducing the reference numbers requires windows taken
//     from the stream as-is.
//   - --max-tokens N: keep the first N ids of the stream (after BOS handling).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/core/weight_store.h"
#include "lib/model/eval.h"

namespace dsq::jobs {

using model::EvalReport;

struct EvalOptions {
  std::string model;        // model path (any format formats::open_model reads)
  std::string ref;          // optional reference model
  std::string text_file;    // exactly one of text_file / tokens_file
  std::string tokens_file;
  int64_t ctx = 512;        // window length in ids (>= 2)
  int64_t max_tokens = 0;   // 0 = the whole stream
  bool bos = false;
  int64_t batch = 1;        // windows per forward pass
  // llama.cpp's llama-perplexity protocol, so the numbers compare: text tokenized with BOS when
  // the tokenizer adds one, the first id of every window replaced by BOS (same condition), and
  // only positions ctx/2 .. ctx-2 of each window scored.
  bool llama_protocol = false;
  std::string json_out;     // optional JSON report path (written via <path>.tmp + rename)
  bool progress = true;
};

// The stream for `opts` (text or ids, BOS rule, --max-tokens, --llama-ppl's BOS-led windows), ids
// checked against the model's vocabulary (FormatError naming the file and position).
std::vector<int32_t> eval_token_stream(const EvalOptions& opts, const WeightStore& ws);

// Everything `dsq eval` does: validate options, open, tokenize, evaluate, write the JSON.
EvalReport run_eval(const EvalOptions& opts);

}  // namespace dsq::jobs
