// dsq sparsify MODEL -o OUT.dsq --topk R [--targets attn,ffn] --calib FILE [--calib-samples N]
//              [--calib-len L] [--seed S] [--json REPORT]
#include <cstdio>

#include "jobs/sparsify.h"
#include "lib/core/log.h"
#include "tools/commands.h"
#include "tools/compress_flags.h"

namespace dsq::tools {
namespace {

struct {
  CompressFlags f;
  double ratio = 0.5;
  std::string targets = "attn,ffn";
} g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  add_compress_flags(sub, o.f);
  sub.add_option("--topk", o.ratio,
                 "Fraction R of each targeted linear input zeroed at inference: a per-linear "
                 "threshold on |x| at the R-quantile of the calibration activations (TEAL)")
      ->required()
      ->check(range(0.0, 1.0));
  sub.add_option("--targets", o.targets,
                 "Inputs to sparsify: attn (q/k/v and o inputs), ffn (gate/up and down inputs), or "
                 "attn_in, attn_out, ffn_in, ffn_out, comma-separated")
      ->capture_default_str();
}

int run() {
  auto& o = g_opts;
  jobs::SparsifyOptions so;
  apply_compress_flags(o.f, &so);
  so.ratio = o.ratio;
  so.targets = o.targets;
  const jobs::SparsifyReport r = jobs::run_sparsify(so);
  if (quiet()) return 0;
  std::fputs(jobs::format_sparsify_report(r).c_str(), stdout);
  std::printf("wrote '%s': thresholds on %zu linears\n", r.out.c_str(), r.thresholds.size());
  return 0;
}

}  // namespace

const Command kSparsifyCommand = {
    "sparsify", "Top-k activation sparsity (TEAL): calibrate per-linear thresholds on |x|",
    add_options, run};

}  // namespace dsq::tools
