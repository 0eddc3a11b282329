// Flags shared by `dsq distill` and `dsq train`: the optimizer, its schedule, the curve's and the
// checkpoints' cadence, --resume, --zstd and the JSON report, bound to the job's option fields.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "jobs/train_common.h"

namespace dsq::tools {

struct TrainFlagTargets {
  int64_t& steps;
  double& epochs;
  int64_t& batch;
  int64_t& accum;
  train::AdamWOptions& adam;
  int64_t& eval_every;
  int64_t& checkpoint_every;
  bool& resume;
  int& zstd_level;
  std::string& json_out;
};

// Binds --steps, --epochs, --batch, --accum, --lr, --min-lr-ratio, --warmup, --weight-decay,
// --clip, --eval-every (measuring `heldout_what`), --checkpoint-every, --resume (`resume_help`),
// --zstd and --json.
void add_training_flags(CLI::App& sub, const TrainFlagTargets& t, const std::string& heldout_what,
                        const std::string& resume_help);

}  // namespace dsq::tools
