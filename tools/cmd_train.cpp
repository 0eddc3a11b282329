// dsq train --text FILE.txt -o OUT.dsq [--vocab N | --tokenizer-from MODEL] [--arch llama|qwen2|qwen3]
//           [--d-model D] [--layers L] [--heads H] [--kv-heads K] [--d-ff F] [--seq-len T]
//           [--steps N | --epochs E] [--batch B] [--lr LR] [--resume] [--json R]
#include <cstdio>

#include "jobs/job_util.h"
#include "jobs/train.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

jobs::TrainOptions g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("--text", o.text_paths,
                 "Training text (.txt; with --tokenizer-from also .jsonl or .u32 ids); repeat to "
                 "mix files")
      ->required();
  sub.add_option("-o,--output", o.out_path, jobs::kOutputModelHelp)->required();
  sub.add_option("--vocab", o.vocab, "Entries of the byte-level BPE dsq trains on the text")
      ->capture_default_str()
      ->check(range(259, 1 << 20));
  sub.add_option("--tokenizer-from", o.tokenizer_from,
                 "Use this model's tokenizer instead of training one");
  sub.add_option("--arch", o.arch, "Architecture row: llama, qwen2 (q/k/v biases), qwen3 (q/k norms)")
      ->capture_default_str();
  sub.add_option("--d-model", o.d_model, "Hidden width")->capture_default_str()->check(at_least(2));
  sub.add_option("--layers", o.n_layers, "Blocks")->capture_default_str()->check(at_least(1));
  sub.add_option("--heads", o.n_heads, "Attention heads")->capture_default_str()->check(at_least(1));
  sub.add_option("--kv-heads", o.n_kv_heads, "Key/value heads (GQA)")->capture_default_str()->check(at_least(1));
  sub.add_option("--head-dim", o.head_dim, "Head width (0 = d_model / heads)")->capture_default_str()->check(at_least(0));
  sub.add_option("--d-ff", o.d_ff, "FFN width (0 = 8/3 d_model, rounded up to 32)")->capture_default_str()->check(at_least(0));
  sub.add_option("--seq-len", o.seq_len, "Tokens per training window (BOS included); the model's context")
      ->capture_default_str()
      ->check(at_least(2));
  sub.add_option("--heldout", o.heldout, "Windows of the text held out for the perplexity curve")
      ->capture_default_str()
      ->check(at_least(1));
  sub.add_option("--steps", o.steps, "Optimizer steps (0 = --epochs over the training windows)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--epochs", o.epochs, "Passes over the training windows when --steps is 0")->capture_default_str();
  sub.add_option("--batch", o.batch, "Windows per micro-batch")->capture_default_str()->check(at_least(1));
  sub.add_option("--accum", o.accum, "Micro-batches per optimizer step")->capture_default_str()->check(at_least(1));
  sub.add_option("--lr", o.adam.lr, "Peak learning rate (AdamW)")->capture_default_str();
  sub.add_option("--min-lr-ratio", o.adam.min_lr_ratio, "The cosine decay ends at lr x this")
      ->capture_default_str()
      ->check(range(0.0, 1.0));
  sub.add_option("--warmup", o.adam.warmup, "Linear warmup steps (-1 = 5% of the steps)")
      ->capture_default_str()
      ->check(at_least(-1));
  sub.add_option("--weight-decay", o.adam.weight_decay, "AdamW's decoupled decay of the matrices")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--clip", o.adam.clip, "Global gradient-norm clip (0 = off)")->capture_default_str()->check(at_least(0));
  sub.add_option("--eval-every", o.eval_every, "Held-out perplexity every N steps (0 = ten times per run)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--checkpoint-every", o.checkpoint_every,
                 "Save OUT.partial/checkpoint.bin every N steps (0 = at every evaluation)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--seed", o.seed, "Seed of the initial weights and the epoch shuffles")->capture_default_str();
  sub.add_flag("--resume", o.resume, "Continue from OUT.partial/ (same bytes as an uninterrupted run)");
  sub.add_option("--zstd", o.zstd_level, "Compress tensors with zstd at this level (0 = off)")->check(range(0, 22));
  sub.add_option("--json", o.json_out, "Write the report (with the curve) as JSON to this file ('-' for stdout)");
}

int run() {
  g_opts.progress = !quiet();
  const jobs::TrainReport r = jobs::run_train(g_opts);
  if (quiet() || g_opts.json_out == "-") return 0;
  std::fputs(jobs::format_train_report(r).c_str(), stdout);
  std::printf("wrote '%s' (%.1f MB) in %.1f s\n", r.out.c_str(), static_cast<double>(r.file_bytes) / 1e6,
              r.seconds);
  return 0;
}

}  // namespace

const Command kTrainCommand = {"train",
                               "Pretrain a small Llama/Qwen-shaped model from scratch on text, "
                               "with a byte-level BPE tokenizer trained on the same text",
                               add_options, run};

}  // namespace dsq::tools
