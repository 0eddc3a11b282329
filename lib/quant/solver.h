// The solver interface of the calibrated methods: turn one linear's weights plus the second moment
// of its input into a quantized tensor. The layer-by-layer pipeline (calibration/pipeline.h)
// collects H and hands each linear to its method's solver (the method table,
// calibration/methods.h, says which); it never branches on the method itself.
//
// Both solvers report the output error on the calibration inputs, tr(E H E^T) with E = W - Q,
// and the reference tr(W H W^T) = ||W X||^2, measured under the undamped H (on kOutputErrorRows
// evenly spaced output rows of linears with more rows: gptq.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/tensor.h"
#include "lib/quant/awq.h"
#include "lib/quant/gptq.h"
#include "lib/quant/rtn.h"

namespace dsq::quant {

// Work that depends only on a group's shared input statistics, kept by the caller while it solves
// that group's linears (one H): a solver computes it for the first linear and reuses it.
struct GroupScratch {
  std::optional<GptqFactor> gptq;  // GPTQ's inverse-Hessian factor (gptq.h)
};

struct SolveInput {
  std::string name;                 // canonical tensor name, for messages
  const float* w = nullptr;         // [rows, cols] f32 (AWQ: already scaled by its s)
  int64_t rows = 0, cols = 0;
  const double* hessian = nullptr;  // [cols, cols] mean x x^T over the calibration tokens
  const float* hessian_f32 = nullptr;  // the same in f32 (output-error traces)
  QuantDesc desc;
  bool clip = true;  // false for linears the group leaves unclipped (LinearGroup::no_clip)
  // Clip ratios [rows * n_groups] from a statistics file (--load-stats) to apply instead of
  // searching; null to search.
  const std::vector<float>* saved_clip = nullptr;
  // Scratch shared by the linears of this input's group (same hessian); null: nothing shared.
  GroupScratch* scratch = nullptr;
};

struct SolveResult {
  Tensor q;                // kQInt in input.desc
  QuantErrorStats error;   // ||W - Q||^2, ||W||^2
  double out_err = 0.0;    // tr(E H E^T)
  double out_norm = 0.0;   // tr(W H W^T)
  nlohmann::json extra = nlohmann::json::object();  // solver fields for the report
  std::vector<float> clip_ratios;  // the clip ratios used (statistics files); empty when none
};

class LinearSolver {
 public:
  virtual ~LinearSolver() = default;
  virtual SolveResult solve(const SolveInput& in) = 0;
  // Whether the solver applies clip ratios (SolveInput::saved_clip, SolveResult::clip_ratios).
  virtual bool clips() const { return false; }
};

// GPTQ (gptq.h) with these options; extra: damp, dead_cols.
std::unique_ptr<LinearSolver> make_gptq_solver(const GptqOptions& o);
// AWQ's per-(row, group) clip search under H (awq.h), then RTN with the chosen ranges; extra:
// clip_mean. Linears with clip = false keep their min/max ranges.
std::unique_ptr<LinearSolver> make_awq_clip_solver(const AwqOptions& o);

}  // namespace dsq::quant
