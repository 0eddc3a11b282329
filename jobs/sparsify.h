// `dsq sparsify`: TEAL-style training-free activation sparsity. From calibration activations of
// the dense model (observer hooks, act_threshold.h), a per-linear magnitude threshold that zeroes
// a fraction R of the targeted inputs is stored as the attr {"act_threshold": t} of each targeted
// linear weight; the engine applies it at inference (Linear::forward) and `dsq eval` reports the
// sparsity reached. Weights are copied unchanged (any dtype, quantized included); thresholds
// already present in the input are replaced.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calib_data.h"
#include "lib/model/eval.h"
#include "jobs/compress_common.h"

namespace dsq::jobs {

// calib is required here; drift windows also measure the sparsity reached.
struct SparsifyOptions : CompressRunOptions {
  double ratio = 0.5;  // fraction of each targeted input zeroed (--topk), in (0, 1)
  // Comma list of linear groups of the model's architecture ("attn", "ffn" = all groups of that
  // sub-block; lib/compress/act_threshold.h parse_sparsify_targets).
  std::string targets = "attn,ffn";
};

struct SparsifyReport {
  std::string model, out;
  double ratio = 0;
  std::vector<std::string> targets;  // the groups thresholded
  std::map<std::string, double> thresholds;  // canonical weight name -> t
  bool has_drift = false;
  model::EvalReport drift;  // includes the sparsity reached per linear
  nlohmann::json recipe;
  uint64_t file_bytes = 0;
  double seconds = 0;
};
void to_json(nlohmann::json& j, const SparsifyReport& r);
// Per layer: threshold and reached sparsity of each targeted input group, then drift.
std::string format_sparsify_report(const SparsifyReport& r);

SparsifyReport run_sparsify(const SparsifyOptions& opts);

}  // namespace dsq::jobs
