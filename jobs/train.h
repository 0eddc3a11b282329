// `dsq train`: pretrain a small Llama/Qwen-shaped model from scratch on text, on the CPU.
//   1. the tokenizer: a byte-level BPE trained on the same text (lib/text/bpe_trainer.h, --vocab
//      entries), or an existing model's (--tokenizer-from);
//   2. the model: the architecture table's row at the given widths (lib/core/synthetic.h), tied
//      embeddings, GPT-2's initialisation (matrices N(0, 0.02^2), residual outputs scaled by
//      1/sqrt(2 layers), norms 1, biases 0);
//   3. training on every window of the text but the held-out ones: next-token cross-entropy
//      through lib/train, AdamW with warmup + cosine and weight decay, the shared loop of
//      jobs/train_common.h (held-out perplexity curve, checkpoints, --resume to the same bytes);
//   4. the .dsq (any -o format), with the tokenizer embedded, ready for every other command.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobs/train_common.h"
#include "lib/train/adamw.h"

namespace dsq::jobs {

struct TrainOptions {
  TrainOptions() {
    adam.lr = 1e-3;
    adam.warmup = -1;  // 5% of the steps
    adam.weight_decay = 0.1;
  }
  std::vector<std::string> text_paths;  // .txt / .jsonl (or .u32 ids with --tokenizer-from)
  std::string out_path, json_out;
  std::string tokenizer_from;  // a model whose tokenizer to use; empty: train a BPE
  int64_t vocab = 2048;        // the trained BPE's size
  std::string arch = "llama";  // a dense row of the architecture table: llama, qwen2, qwen3
  int64_t d_model = 128, n_layers = 4, n_heads = 4, n_kv_heads = 2;
  int64_t head_dim = 0;  // 0: d_model / n_heads
  int64_t d_ff = 0;      // 0: 8/3 d_model rounded up to a multiple of 32
  int64_t seq_len = 256;
  int64_t heldout = 16;  // windows never trained on
  int64_t steps = 0;     // 0: --epochs over the training windows
  double epochs = 1.0;
  int64_t batch = 8, accum = 1;
  int64_t eval_every = 0, checkpoint_every = 0;  // 0: ten points; at every point
  uint64_t seed = 0;  // initial weights and epoch shuffles
  train::AdamWOptions adam;
  bool resume = false;
  int zstd_level = 0;
  bool progress = true;
};

struct TrainReport {
  std::string out, arch, tokenizer;
  int64_t vocab = 0, n_params = 0, d_model = 0, n_layers = 0, d_ff = 0;
  int64_t bpe_merges = -1;  // -1 with --tokenizer-from
  int64_t stream_tokens = 0;
  double tokenizer_seconds = 0;
  TrainRun run;  // run.loop.curve[].heldout: mean NLL per held-out token (nats)
  nlohmann::json recipe;
  uint64_t file_bytes = 0;
  double seconds = 0;
};
void to_json(nlohmann::json& j, const TrainReport& r);
std::string format_train_report(const TrainReport& r);

inline constexpr const char* kTrainKillEnv = "DSQ_TRAIN_KILL";  // tests, as kDistillKillEnv

TrainReport run_train(const TrainOptions& opts);

}  // namespace dsq::jobs
