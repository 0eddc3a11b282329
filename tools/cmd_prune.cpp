// dsq prune MODEL -o OUT.dsq [--ffn R] [--heads R] [--head-mode kv-groups|per-group]
//           [--drop-layers N] [--importance activation|magnitude] [--bias-compensation] [--global]
//           [--calib FILE --calib-samples N --calib-len L --seed S] [--json REPORT]
#include <cstdio>

#include "jobs/prune.h"
#include "lib/core/log.h"
#include "tools/commands.h"
#include "tools/compress_flags.h"

namespace dsq::tools {
namespace {

struct {
  CompressFlags f;
  jobs::PruneOptions p;
  std::string importance = "activation", head_mode = "kv-groups";
  bool global = false;
} g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  add_compress_flags(sub, o.f);
  sub.add_option("--ffn", o.p.ffn_ratio, "Fraction of FFN channels to remove per layer, [0, 1)")
      ->check(range(0.0, 1.0));
  sub.add_option("--heads", o.p.head_ratio,
                 "Fraction of attention heads to remove per layer, [0, 1) (see --head-mode)")
      ->check(range(0.0, 1.0));
  sub.add_option("--head-mode", o.head_mode,
                 "GQA-safe head removal: 'kv-groups' removes whole kv groups (a kv head, its k/v "
                 "rows and every q head reading it); 'per-group' removes the same number of q "
                 "heads from every group and keeps all kv heads")
      ->capture_default_str();
  sub.add_option("--drop-layers", o.p.drop_layers,
                 "Delete the N blocks of lowest influence (1 - cos(h_in, h_out), ShortGPT); needs --calib")
      ->check(at_least(0));
  sub.add_option("--importance", o.importance,
                 "'activation': |W| x input channel norm from calibration (Wanda/FLAP; needs "
                 "--calib); 'magnitude': weights only")
      ->capture_default_str();
  sub.add_flag("--bias-compensation", o.p.bias_compensation,
               "Fold the removed channels' mean output into attn_output/ffn_down biases (FLAP); "
               "ranks channels by fluctuation; needs --calib");
  sub.add_flag("--global", o.global,
               "Rank channels/kv groups across layers (scores standardised per layer): per-layer "
               "widths then differ");
}

int run() {
  auto& o = g_opts;
  jobs::PruneModelOptions po;
  apply_compress_flags(o.f, &po);
  po.prune = o.p;
  po.prune.importance = jobs::parse_importance(o.importance);
  po.prune.head_mode = jobs::parse_head_mode(o.head_mode);
  po.prune.uniform = !o.global;
  const jobs::PruneModelReport r = jobs::run_prune(po);
  if (quiet()) return 0;
  std::fputs(jobs::format_prune_report(r).c_str(), stdout);
  std::printf("wrote '%s': %lld -> %lld parameters\n", r.out.c_str(),
              static_cast<long long>(r.params_before), static_cast<long long>(r.params_after));
  return 0;
}

}  // namespace

const Command kPruneCommand = {
    "prune", "Structured pruning: remove FFN channels, attention heads (GQA-safe) and whole blocks",
    add_options, run};

}  // namespace dsq::tools
