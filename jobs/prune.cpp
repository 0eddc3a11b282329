#include "jobs/prune.h"

#include <chrono>
#include <optional>

#include "formats/format_table.h"
#include "jobs/compress_common.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"

namespace dsq::jobs {

using json = nlohmann::json;

void to_json(json& j, const PruneModelReport& r) {
  j = {{"model", r.model},
       {"out", r.out},
       {"layers", r.layers},
       {"params_before", r.params_before},
       {"params_after", r.params_after},
       {"params_ratio", r.params_before ? static_cast<double>(r.params_after) / r.params_before : 0.0},
       {"drift", r.has_drift ? model::to_json(r.drift) : json(nullptr)},
       {"recipe", r.recipe},
       {"file_bytes", r.file_bytes},
       {"seconds", r.seconds}};
}

std::string format_prune_report(const PruneModelReport& r) {
  std::string s = strprintf("%-5s %-5s %-10s %-12s %-12s %-9s %-6s %10s %10s\n", "src", "out",
                            "influence", "heads", "kv_heads", "d_ff", "bias", "params", "after");
  for (const auto& l : r.layers) {
    auto arrow = [](int64_t a, int64_t b) { return strprintf("%lld->%lld", static_cast<long long>(a), static_cast<long long>(b)); };
    const bool gone = l.layer < 0;
    s += strprintf("%-5lld %-5s %-10.5f %-12s %-12s %-9s %-6s %10lld %10lld\n",
                   static_cast<long long>(l.source_layer),
                   gone ? "drop" : std::to_string(l.layer).c_str(), l.influence,
                   gone ? "-" : arrow(l.before.n_heads, l.after.n_heads).c_str(),
                   gone ? "-" : arrow(l.before.n_kv_heads, l.after.n_kv_heads).c_str(),
                   gone ? "-" : arrow(l.before.d_ff, l.after.d_ff).c_str(), l.bias_added ? "yes" : "no",
                   static_cast<long long>(l.params_before), static_cast<long long>(l.params_after));
  }
  s += strprintf("parameters     %lld -> %lld (%.2f%%)\n", static_cast<long long>(r.params_before),
                 static_cast<long long>(r.params_after),
                 r.params_before ? 100.0 * static_cast<double>(r.params_after) / r.params_before : 0.0);
  if (r.has_drift)
    s += strprintf("drift          %lld held-out tokens: ppl %.4f (source %.4f), KLD %.6f, top-1 %.4f\n",
                   static_cast<long long>(r.drift.tokens_scored), r.drift.perplexity,
                   r.drift.ref_perplexity, r.drift.kld_mean, r.drift.top1_agreement);
  else
    s += "drift          not measured (no --calib)\n";
  return s;
}

PruneModelReport run_prune(const PruneModelOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const WeightStore src = open_compress_source(o);
  compress::require_structured_support(src.config, "prune", "'" + o.model_path + "'");
  const bool calibrate = !o.calib.paths.empty();
  if (o.prune.needs_stats() && !calibrate)
    throw UsageError(std::string("importance 'activation', --bias-compensation and --drop-layers "
                                 "need calibration data: give --calib FILE (or --importance magnitude)"));
  std::optional<CalibSplit> data;
  std::optional<model::Model> ref;
  compress::PruneStats stats;
  if (calibrate) {
    data.emplace(load_calib_split(src, o.calib, o.drift_samples));
    ref.emplace(model::Model::load(src));
    compress::PruneStatsObserver obs(arch_of(src.config), src.config.n_layers);
    run_windows(*ref, data->fit, &obs, "calibrate", o.progress);
    stats = obs.take();
  }
  compress::PruneResult res = compress::prune_weights(src, o.prune, calibrate ? &stats : nullptr);

  PruneModelReport r;
  r.model = o.model_path;
  r.out = o.out_path;
  r.layers = res.layers;
  r.params_before = res.params_before;
  r.params_after = res.params_after;
  json step = {{"step", "prune"},
               {"ffn_ratio", o.prune.ffn_ratio},
               {"head_ratio", o.prune.head_ratio},
               {"head_mode", compress::head_mode_name(o.prune.head_mode)},
               {"drop_layers", o.prune.drop_layers},
               {"importance", compress::importance_name(o.prune.importance)},
               {"bias_compensation", o.prune.bias_compensation},
               {"uniform", o.prune.uniform},
               {"source", o.model_path},
               {"calibration", calibrate ? data->recipe : json(nullptr)}};
  r.recipe = chain_recipe(src, step);
  if (calibrate && data->drift.n_samples > 0) {
    const model::Model pruned = model::Model::load(res.store);
    r.drift = measure_drift(pruned, *ref, data->drift, o.progress);
    r.has_drift = true;
  }
  r.file_bytes = write_output(res.store, o.out_path, r.recipe, o.zstd_level, o.progress);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.json_out.empty()) write_json_file(o.json_out, json(r));
  return r;
}

}  // namespace dsq::jobs
