// `dsq prune`: open a model, gather calibration statistics through the engine's observers when
// the options need them (activation importance, bias compensation, block influence), prune
// (lib/compress/prune.h), measure the drift on held-out calibration windows, write a smaller .dsq.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobs/compress_common.h"
#include "lib/compress/prune.h"
#include "lib/model/eval.h"

namespace dsq::jobs {

using compress::PruneOptions;
using compress::parse_head_mode;
using compress::parse_importance;

struct PruneModelOptions : CompressRunOptions {
  compress::PruneOptions prune;
};

struct PruneModelReport {
  std::string model, out;
  std::vector<compress::LayerPruneReport> layers;
  int64_t params_before = 0, params_after = 0;
  bool has_drift = false;
  model::EvalReport drift;  // the pruned model against the source on held-out windows
  nlohmann::json recipe;
  uint64_t file_bytes = 0;
  double seconds = 0;
};
void to_json(nlohmann::json& j, const PruneModelReport& r);
// Per-layer table (what was removed, parameters before/after) plus drift and summary lines.
std::string format_prune_report(const PruneModelReport& r);

// The whole job. Throws UsageError for bad options (or statistics needed without --calib).
PruneModelReport run_prune(const PruneModelOptions& opts);

}  // namespace dsq::jobs
