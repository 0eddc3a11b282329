// dsq distill STUDENT --teacher TEACHER --data FILE -o OUT.dsq [--loss forward-kl|reverse-kl|jsd]
//             [--temperature T] [--top-k K] [--steps N | --epochs E] [--batch B] [--accum A]
//             [--lr LR] [--warmup W] [--samples N --seq-len L --heldout H] [--resume] [--json R]
#include <cstdio>

#include "jobs/distill.h"
#include "jobs/job_util.h"
#include "lib/core/log.h"
#include "tools/commands.h"
#include "tools/train_flags.h"

namespace dsq::tools {
namespace {

struct {
  jobs::DistillOptions d;
  std::string loss = "forward-kl";
} g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts.d;
  o.data.n_samples = 256;
  o.data.seq_len = 256;
  sub.add_option("student", o.student_path,
                 "The model to heal (pruned or original; HF directory, .safetensors, .gguf, "
                 "llama2.c .bin, .dsq): a dense Llama, Qwen2 or Qwen3")
      ->required();
  sub.add_option("--teacher", o.teacher_path, "The model whose soft labels the student learns")
      ->required();
  sub.add_option("--data", o.data.paths,
                 "Training text: .u32 ids, .txt or .jsonl (tokenized with the student's "
                 "tokenizer); repeat to mix files")
      ->required();
  sub.add_option("-o,--output", o.out_path, jobs::kOutputModelHelp)->required();
  sub.add_option("--loss", g_opts.loss,
                 "forward-kl: KL(teacher || student), mean-seeking (default); reverse-kl: "
                 "KL(student || teacher), mode-seeking; jsd: GKD's generalized Jensen-Shannon "
                 "divergence with --beta")
      ->capture_default_str();
  sub.add_option("--temperature", o.loss.temperature,
                 "Softmax temperature of both distributions; the loss is scaled by T^2")
      ->capture_default_str()
      ->check(range(1e-3, 1e3));
  sub.add_option("--beta", o.loss.beta, "JSD's mixing weight, in (0, 1)")->capture_default_str();
  sub.add_option("--top-k", o.top_k,
                 "Teacher tokens kept per position (the rest is one bucket); 0 = the whole "
                 "vocabulary, the exact loss")
      ->capture_default_str()
      ->check(at_least(0));
  sub.add_flag("--tune-zeros", o.tune_zeros,
               "A quantized student's asymmetric groups train their zero points too (integers, "
               "straight-through; rows that must stay exact for GGUF Q4_1 keep them); without it "
               "only the scales train");
  sub.add_option("--samples", o.data.n_samples, "Training windows drawn from --data")
      ->capture_default_str()
      ->check(at_least(1));
  sub.add_option("--seq-len", o.data.seq_len, "Tokens per window (BOS included)")
      ->capture_default_str()
      ->check(at_least(2));
  sub.add_option("--heldout", o.heldout,
                 "Further windows, never trained on, on which the divergence is measured")
      ->capture_default_str()
      ->check(at_least(1));
  sub.add_option("--heldout-data", o.heldout_paths,
                 "Draw the held-out windows from these files instead of --data (e.g. the text "
                 "the model will be evaluated on)");
  sub.add_option("--seed", o.data.seed, "Seed of the window draw and of the epoch shuffles")
      ->capture_default_str();
  add_training_flags(sub,
                     {o.steps, o.epochs, o.batch, o.accum, o.adam, o.eval_every, o.checkpoint_every,
                      o.resume, o.zstd_level, o.json_out},
                     "held-out divergence",
                     "Continue from OUT.partial/ (the teacher's labels and the last checkpoint); "
                     "the output is the same bytes as an uninterrupted run's");
}

int run() {
  auto& o = g_opts.d;
  o.loss.kind = jobs::parse_loss(g_opts.loss);
  o.progress = !quiet();
  const jobs::DistillReport r = jobs::run_distill(o);
  if (quiet() || o.json_out == "-") return 0;
  std::fputs(jobs::format_distill_report(r).c_str(), stdout);
  std::printf("wrote '%s' (%.1f MB) in %.1f s\n", r.out.c_str(),
              static_cast<double>(r.file_bytes) / 1e6, r.seconds);
  return 0;
}

}  // namespace

const Command kDistillCommand = {
    "distill",
    "Heal a pruned or compressed student against its teacher (KL on the teacher's soft labels)",
    add_options, run};

}  // namespace dsq::tools
