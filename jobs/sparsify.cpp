#include "jobs/sparsify.h"

#include <chrono>

#include "formats/format_table.h"
#include "lib/compress/act_threshold.h"
#include "lib/compress/prune.h"
#include "jobs/compress_common.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/model/model.h"

namespace dsq::jobs {

using json = nlohmann::json;

void to_json(json& j, const SparsifyReport& r) {
  j = {{"model", r.model},
       {"out", r.out},
       {"ratio", r.ratio},
       {"targets", r.targets},
       {"thresholds", r.thresholds},
       {"drift", r.has_drift ? model::to_json(r.drift) : json(nullptr)},
       {"recipe", r.recipe},
       {"file_bytes", r.file_bytes},
       {"seconds", r.seconds}};
}

std::string format_sparsify_report(const SparsifyReport& r) {
  std::string s = strprintf("%-5s %-12s %12s %9s\n", "layer", "linear", "threshold", "reached");
  for (const auto& e : r.drift.sparsity)
    s += strprintf("%-5lld %-12s %12.6g %9.4f\n", static_cast<long long>(e.layer), e.name.c_str(),
                   static_cast<double>(e.threshold), e.sparsity());
  s += strprintf("target         %.2f of every input of %zu linears zeroed\n", r.ratio,
                 r.thresholds.size());
  if (r.has_drift) {
    int64_t zeros = 0, total = 0;
    for (const auto& e : r.drift.sparsity) zeros += e.zeros, total += e.total;
    s += strprintf("drift          %lld held-out tokens: sparsity %.4f, ppl %.4f (dense %.4f), "
                   "KLD %.6f, top-1 %.4f\n",
                   static_cast<long long>(r.drift.tokens_scored),
                   total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0,
                   r.drift.perplexity, r.drift.ref_perplexity, r.drift.kld_mean,
                   r.drift.top1_agreement);
  }
  return s;
}

SparsifyReport run_sparsify(const SparsifyOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!(o.ratio > 0.0 && o.ratio < 1.0)) throw UsageError("--topk must be in (0, 1)");
  if (o.calib.paths.empty()) throw UsageError("sparsify needs calibration data: give --calib FILE");
  // The dense model: any thresholds of the input are dropped (calibration sees dense activations
  // and the output gets only the new ones).
  WeightStore ws = open_compress_source(o);
  compress::require_structured_support(ws.config, "sparsify", "'" + o.model_path + "'");
  const std::vector<std::string> targets =
      compress::parse_sparsify_targets(arch_of(ws.config), o.targets);
  for (const auto& name : ws.names()) ws.entry(name).attrs.erase("act_threshold");
  const CalibSplit data = load_calib_split(ws, o.calib, o.drift_samples);
  const model::Model dense = model::Model::load(ws);
  compress::ThresholdObserver obs(ws.config, targets);
  run_windows(dense, data.fit, &obs, "calibrate", o.progress);

  SparsifyReport r;
  r.model = o.model_path;
  r.out = o.out_path;
  r.ratio = o.ratio;
  r.targets = targets;
  r.thresholds = obs.thresholds(o.ratio);
  const WeightStore src = ws;  // dense copy for the recipe chain
  for (const auto& [name, t] : r.thresholds) ws.entry(name).attrs["act_threshold"] = t;
  r.recipe = chain_recipe(src, {{"step", "sparsify"},
                                {"method", "teal-threshold"},
                                {"ratio", o.ratio},
                                {"targets", targets},
                                {"source", o.model_path},
                                {"calibration", data.recipe}});
  if (data.drift.n_samples > 0) {
    const model::Model sparse = model::Model::load(ws);
    r.drift = measure_drift(sparse, dense, data.drift, o.progress);
    r.has_drift = true;
  }
  r.file_bytes = write_output(ws, o.out_path, r.recipe, o.zstd_level, o.progress);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.json_out.empty()) write_json_file(o.json_out, json(r));
  return r;
}

}  // namespace dsq::jobs
