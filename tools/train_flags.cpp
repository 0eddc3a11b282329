#include "tools/train_flags.h"

#include "tools/commands.h"

namespace dsq::tools {

void add_training_flags(CLI::App& sub, const TrainFlagTargets& t, const std::string& heldout_what,
                        const std::string& resume_help) {
  sub.add_option("--steps", t.steps, "Optimizer steps (0 = --epochs over the training windows)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--epochs", t.epochs, "Passes over the training windows when --steps is 0")
      ->capture_default_str();
  sub.add_option("--batch", t.batch, "Windows per micro-batch")->capture_default_str()->check(at_least(1));
  sub.add_option("--accum", t.accum, "Micro-batches accumulated per optimizer step")
      ->capture_default_str()
      ->check(at_least(1));
  sub.add_option("--lr", t.adam.lr, "Peak learning rate (AdamW)")->capture_default_str();
  sub.add_option("--min-lr-ratio", t.adam.min_lr_ratio, "The cosine decay ends at lr x this")
      ->capture_default_str()
      ->check(range(0.0, 1.0));
  sub.add_option("--warmup", t.adam.warmup, "Linear warmup steps (-1 = 5% of the steps)")
      ->capture_default_str()
      ->check(at_least(-1));
  sub.add_option("--weight-decay", t.adam.weight_decay, "AdamW's decoupled decay of the matrices")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--clip", t.adam.clip, "Global gradient-norm clip (0 = off)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--eval-every", t.eval_every,
                 "Measure the " + heldout_what + " every N steps (0 = ten times per run)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_option("--checkpoint-every", t.checkpoint_every,
                 "Save OUT.partial/checkpoint.bin every N steps (0 = at every evaluation)")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_flag("--resume", t.resume, resume_help);
  sub.add_option("--zstd", t.zstd_level, "Compress tensors with zstd at this level (0 = off)")
      ->check(range(0, 22));
  sub.add_option("--json", t.json_out,
                 "Write the report (with the curve) as JSON to this file ('-' for stdout)");
}

}  // namespace dsq::tools
