// What `dsq distill` and `dsq train` share: the training loop over windows of ids (epoch
// shuffles, micro-batches and accumulation, AdamW, the held-out curve, checkpoints and --resume)
// and the work directory's helpers. The jobs differ only in their loss per token row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calib_data.h"
#include "lib/train/adamw.h"
#include "lib/train/train_model.h"

namespace dsq::jobs {

struct TrainPoint {
  int64_t step = 0, tokens = 0;
  double minutes = 0;     // training time so far (held-out evaluations and setup excluded)
  double train_loss = 0;  // mean loss per scored token of the steps since the previous point
  double heldout = 0;     // mean loss per scored held-out token
  double lr = 0;
};

struct TrainLoopOptions {
  std::string label = "train";          // progress bar
  std::string heldout_name = "held-out loss";  // log lines
  int64_t steps = 1, batch = 8, accum = 1;
  int64_t eval_every = 1, checkpoint_every = 1;
  uint64_t seed = 0;  // epoch shuffles
  train::AdamWOptions adam;  // total = steps
  std::string checkpoint_path;
  bool resume = false;  // continue from checkpoint_path when it exists
  bool progress = true;
  std::string kill_env;  // tests: SIGKILL right after the step this variable names
};

// A job's schedule from its flags: steps (0: `epochs` passes over the training windows), the
// warmup (-1: 5% of the steps), the curve's cadence (0: ten points) and the checkpoints' (0: at
// every point); the other fields are left to the job.
TrainLoopOptions resolve_schedule(int64_t steps, double epochs, int64_t train_windows,
                                  int64_t batch, int64_t accum, const train::AdamWOptions& adam,
                                  int64_t eval_every, int64_t checkpoint_every);

// The loss of a batch of windows (their indices in the training or the held-out set), with its
// per-row gradient scaled by `scale`.
using WindowLoss = std::function<train::TrainModel<float>::RowLoss(
    const std::vector<int64_t>& windows, bool heldout, double scale)>;

struct TrainLoopResult {
  std::vector<TrainPoint> curve;  // step 0 (before training), every eval_every steps, the last
  double heldout_before = 0, heldout_after = 0;
  double train_seconds = 0, tokens_per_second = 0;  // tokens/s of this process's steps
  int64_t resumed_at = -1;  // the checkpoint's step when resumed
  int64_t tokens_trained = 0;
};

// The sum of f(i) over i < n: terms computed in parallel, added in index order (the same sum for
// any thread count). What a WindowLoss's rows need.
double sum_rows(int64_t n, const std::function<double(int64_t)>& f);

// What both jobs report about a run: its windows and batch shape, and the loop's result.
struct TrainRun {
  int64_t train_windows = 0, heldout_windows = 0, seq_len = 0;
  int64_t steps = 0, batch = 0, accum = 0;
  TrainLoopResult loop;
};
// Adds the run's fields to a report: the shape, tokens_trained, resumed_at (null when fresh),
// train_seconds, tokens_per_second, the held-out value before and after under before_key /
// after_key, and "curve": [{step, tokens, minutes, train_loss, <point_key>, lr}]. Held-out
// values go through `value` (the identity for a KL, exp for an NLL's perplexity).
void add_run_json(nlohmann::json& j, const TrainRun& r, const std::string& point_key,
                  const std::string& before_key, const std::string& after_key,
                  double (*value)(double));
// The curve as a table with the held-out column titled `title` (values through `value`).
std::string format_curve(const std::vector<TrainPoint>& curve, const std::string& title,
                         double (*value)(double));

// Trains m for o.steps steps of o.accum micro-batches of o.batch windows of `fit` (shuffled per
// epoch), each window scoring `scored_per_window` rows; the held-out loss over `held` at every
// curve point. Writes a checkpoint every o.checkpoint_every steps (except after the last) and
// calls on_checkpoint after each.
TrainLoopResult run_train_loop(train::TrainModel<float>& m, const calibration::CalibData& fit,
                               const calibration::CalibData& held, int64_t scored_per_window,
                               const WindowLoss& loss, const TrainLoopOptions& o,
                               const std::function<void()>& on_checkpoint);

// A work directory this run created, removed when the run fails before its first checkpoint
// (nothing in it is worth resuming then, and a corrected rerun must not be told to --resume) or
// when it succeeds (armed again at the end).
struct FreshWorkDir {
  std::string dir;
  bool armed = false;
  ~FreshWorkDir();
};

// Opens a job's work directory: refuses an existing one without --resume (UsageError), one made
// with another recipe (ConfigError), creates it otherwise with state.json = {"recipe": ...}.
// Returns whether this call created it.
bool open_work_dir(const std::string& dir, const nlohmann::json& recipe, bool resume);

}  // namespace dsq::jobs
