#include "tools/quantize_calib_flags.h"

#include "calibration/pipeline.h"
#include "lib/core/error.h"

namespace dsq::tools {
namespace {

struct {
  calibration::CalibMethodOptions method;
  calibration::PipelineRuntime runtime;
  bool no_bos = false;
} g_flags;

}  // namespace

void add_calib_quantize_flags(CLI::App& sub) {
  auto& f = g_flags;
  const char* kGroup = "Calibrated methods (gptq, awq, awq+gptq)";
  sub.add_option("--calib", f.method.calib.path,
                 "Calibration data: token ids (.u32) or text (.txt, .jsonl with a 'text' field)")
      ->group(kGroup);
  sub.add_option("--calib-samples", f.method.calib.n_samples, "Calibration windows")
      ->capture_default_str()->check(CLI::PositiveNumber)->group(kGroup);
  sub.add_option("--calib-len", f.method.calib.seq_len, "Tokens per calibration window")
      ->capture_default_str()->check(CLI::Range(2, 1 << 20))->group(kGroup);
  sub.add_option("--seed", f.method.calib.seed, "Seed of the calibration window draw")
      ->capture_default_str()->group(kGroup);
  sub.add_flag("--calib-no-bos", f.no_bos, "Do not start calibration windows with BOS")
      ->group(kGroup);
  sub.add_option("--damp", f.method.gptq.damp,
                 "GPTQ damping as a fraction of the Hessian's mean diagonal (raised x10 when "
                 "the Cholesky fails)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0))->group(kGroup);
  sub.add_option("--block", f.method.gptq.block, "GPTQ lazy-batch width (columns)")
      ->capture_default_str()->check(CLI::PositiveNumber)->group(kGroup);
  sub.add_flag("--act-order", f.method.gptq.act_order,
               "GPTQ: quantize columns by decreasing activation energy (static groups: no "
               "reordering at load)")
      ->group(kGroup);
  sub.add_option("--awq-grid", f.method.awq.grid,
                 "AWQ: number of alpha values tried for the scales s = mean|x|^alpha (0, "
                 "1/N, ..., (N-1)/N)")
      ->capture_default_str()->check(CLI::Range(1, 1000))->group(kGroup);
  sub.add_flag("--resume", f.runtime.resume,
               "Continue an interrupted run from OUT.partial/ (same output bytes)")
      ->group(kGroup);
  sub.add_option("--save-stats", f.runtime.save_stats,
                 "Write the per-linear Hessians and input norms (and AWQ's scales and clips) to "
                 "this HDF5 file")
      ->group(kGroup);
  sub.add_option("--load-stats", f.runtime.load_stats,
                 "Quantize from saved statistics instead of calibrating (docs/STATS.md)")
      ->group(kGroup);
}

void apply_calib_quantize_flags(calibration::QuantizeOptions& q) {
  if (q.method == "rtn") return;
  g_flags.method.calib.bos = !g_flags.no_bos;
  q.method_options = calibration::to_method_options(g_flags.method, q.method);
  q.method_runtime = calibration::to_method_runtime(g_flags.runtime);
}

}  // namespace dsq::tools
