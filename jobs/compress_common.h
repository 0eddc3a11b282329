// Plumbing shared by `dsq prune` and `dsq sparsify`: calibration windows (split into windows that
// fit statistics and held-out windows that measure drift), forward passes with an observer, the
// drift of the compressed model against its source, the recipe chain and the .dsq output.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "calibration/calib_data.h"
#include "lib/core/weight_store.h"
#include "lib/model/eval.h"
#include "lib/model/model.h"

namespace dsq::jobs {

using calibration::CalibData;
using calibration::CalibOptions;

// The inputs every compression step shares (`dsq prune`, `dsq sparsify`).
struct CompressRunOptions {
  std::string model_path;           // any format formats::open_model reads (float weights)
  std::string out_path;             // .dsq
  calibration::CalibOptions calib;  // no paths: no calibration (prune by magnitude, no drift)
  int64_t drift_samples = 16;       // held-out calibration windows for the drift report
  int zstd_level = 0;
  std::string json_out;             // the report as JSON: a file, "-" for stdout, empty for none
  bool progress = true;
};

// Opens the source and checks every input and destination of a compression step before any work
// (IoPlan): the model, the calibration files, -o and --json.
WeightStore open_compress_source(const CompressRunOptions& o);

struct CalibSplit {
  calibration::CalibData fit;    // statistics / thresholds come from these windows
  calibration::CalibData drift;  // held out: drift is measured here (distinct slots)
  nlohmann::json recipe;         // calibration recipe (file, sha256, samples, seed, ...)
};

// The flags that set the windows in a command, as its messages name them (prune and sparsify;
// distill and train call them --samples, --seq-len and --heldout).
struct WindowFlags {
  const char* samples = "--calib-samples";
  const char* len = "--calib-len";
  const char* held = "--drift-samples";
};
inline constexpr WindowFlags kTrainingWindowFlags = {"--samples", "--seq-len", "--heldout"};

// Draws o.n_samples + drift_samples distinct windows from o.path (tokenizer from the model's
// metadata when the file is text) and splits them: every k-th window (in file order) is held out
// for drift, so both sets span the file.
CalibSplit load_calib_split(const WeightStore& ws, const calibration::CalibOptions& o,
                            int64_t drift_samples, const WindowFlags& flags = {});

// Runs `m` over every window of `d` (one window per forward pass) with observer `obs`.
void run_windows(const model::Model& m, const calibration::CalibData& d, model::Observer* obs,
                 const char* label, bool progress);

// Drift of `m` against `ref` on the windows of `d`: perplexity, KLD, top-1 agreement, per-block
// drift when depths agree (lib/model/eval.h).
model::EvalReport measure_drift(const model::Model& m, const model::Model& ref,
                                      const calibration::CalibData& d, bool progress);

// The recipe of a compression step: `step` plus the input's recipe as "parent" (when it has one).
nlohmann::json chain_recipe(const WeightStore& src, nlohmann::json step);

// Writes `ws` to the sink of `path` (.tmp + rename) with `recipe`; returns the file size in bytes.
uint64_t write_output(const WeightStore& ws, const std::string& path, const nlohmann::json& recipe,
                      int zstd_level, bool progress);

}  // namespace dsq::jobs
