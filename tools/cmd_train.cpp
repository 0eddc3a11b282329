// dsq train --text FILE.txt -o OUT.dsq [--vocab N | --tokenizer-from MODEL] [--arch llama|qwen2|qwen3]
//           [--d-model D] [--layers L] [--heads H] [--kv-heads K] [--d-ff F] [--seq-len T]
//           [--steps N | --epochs E] [--batch B] [--lr LR] [--resume] [--json R]
#include <cstdio>

#include "jobs/job_util.h"
#include "jobs/train.h"
#include "lib/core/log.h"
#include "tools/commands.h"
#include "tools/train_flags.h"

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
  sub.add_option("--seed", o.seed, "Seed of the initial weights and the epoch shuffles")->capture_default_str();
  add_training_flags(sub,
                     {o.steps, o.epochs, o.batch, o.accum, o.adam, o.eval_every, o.checkpoint_every,
                      o.resume, o.zstd_level, o.json_out},
                     "held-out perplexity",
                     "Continue from OUT.partial/ (same bytes as an uninterrupted run)");
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
