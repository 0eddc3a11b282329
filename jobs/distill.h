// `dsq distill`: heal a compressed student against its teacher with a divergence on the teacher's
// soft labels (lib/train). Phases, so that teacher and student are never in memory together:
//   1. the teacher runs once over the training and held-out windows and its top-k soft labels
//      go to OUT.partial/teacher.topk (reused by --resume);
//   2. the student (any dense Llama/Qwen2/Qwen3 model, pruned ones included; a quantized one by its
//      group scales, norms and biases, with its codes frozen) trains with AdamW
//      (warmup + cosine), gradient accumulation and f32 master weights; the held-out divergence
//      is measured every --eval-every steps; OUT.partial/checkpoint.bin is written every
//      --checkpoint-every steps, and --resume continues from it to the same bytes;
//   3. the trained weights are written to -o (f32) with the recipe chained to the student's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calib_data.h"
#include "jobs/train_common.h"
#include "lib/train/adamw.h"
#include "lib/train/loss.h"

namespace dsq::jobs {

using train::parse_loss;

struct DistillOptions {
  DistillOptions() {
    adam.lr = 3e-4;    // bench/RESULTS.md "Distillation": 1e-3 and above set qwen2-tiny back
    adam.warmup = -1;  // 5% of the steps
  }
  std::string student_path, teacher_path, out_path;
  calibration::CalibOptions data;  // --data files, --samples windows of --seq-len ids, --seed
  int64_t heldout = 16;            // held-out windows (distinct from the training windows)
  // Files the held-out windows come from instead of --data (e.g. an evaluation text, so the
  // curve tracks it); empty: every k-th window of --data is held out.
  std::vector<std::string> heldout_paths;
  train::LossSpec loss;
  int64_t top_k = 64;  // teacher ids kept per token; 0 = the whole vocabulary (exact loss)
  // A quantized student's asymmetric zero points train too (train_model.h); off: scales only.
  bool tune_zeros = false;
  int64_t steps = 0;   // optimizer steps; 0 = --epochs over the training windows
  double epochs = 1.0;
  int64_t batch = 8;   // windows per micro-batch
  int64_t accum = 1;   // micro-batches per step
  train::AdamWOptions adam;  // adam.warmup < 0: 5% of the steps; total is set from steps
  int64_t eval_every = 0;        // 0: about 10 points over the run
  int64_t checkpoint_every = 0;  // 0: at every evaluation
  bool resume = false;
  int zstd_level = 0;
  std::string json_out;
  bool progress = true;
};

struct DistillReport {
  std::string student, teacher, out;
  std::string loss;
  double temperature = 1, beta = 0.5;
  int64_t top_k = 0, vocab = 0;
  int64_t n_params = 0, n_trainable = 0;
  // "weights" (every float tensor trains), "scales" (a quantized student: the group scales of
  // its quantized tensors with their codes frozen, plus norms and biases) or "scales+zeros"
  // (--tune-zeros: the asymmetric tensors' zero points too)
  std::string trains;
  int64_t zeros_moved = 0;  // "scales+zeros": zero points that differ from the student's
  bool teacher_cached = false;  // the teacher's labels were already in OUT.partial/
  double teacher_seconds = 0;
  TrainRun run;  // run.loop.curve[].heldout: forward KL per held-out token (top-k buckets)
  nlohmann::json recipe;
  uint64_t file_bytes = 0;
  double seconds = 0;
};
void to_json(nlohmann::json& j, const DistillReport& r);
std::string format_distill_report(const DistillReport& r);

// Environment hook for tests: DSQ_DISTILL_KILL=N sends SIGKILL to the process right after step N
// (1-based) finished (and its checkpoint, when one falls there, was written).
inline constexpr const char* kDistillKillEnv = "DSQ_DISTILL_KILL";

DistillReport run_distill(const DistillOptions& opts);

}  // namespace dsq::jobs
