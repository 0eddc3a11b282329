// dsq quantize MODEL -o OUT.dsq (--scheme NAME | --bits B --group G [--sym|--asym]) [--method M]
//              [--mse-clip] [--skip REGEX] [--json REPORT] [method options]
#include <cstdio>
#include <string>

#include "jobs/job_util.h"
#include "jobs/quantize.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "tools/commands.h"
#include "tools/quantize_flags.h"

namespace dsq::tools {
namespace {

struct {
  jobs::QuantizeOptions q;
  int64_t bits = 4, group = 128;
  bool sym = false, asym = false;
  std::string scheme, json_path;
  MethodFlags method_flags;
  CLI::Option *bits_opt = nullptr, *group_opt = nullptr, *scheme_opt = nullptr;
} g_opts;

std::string scheme_help() {
  std::string rows;
  for (const auto& s : kSchemes)
    if (s.quantize_target()) rows += (rows.empty() ? "" : ", ") + std::string(s.name);
  return "Scheme by name, <row>_g<group> or <row>_perchannel, e.g. int4_asym_g128 (rows: " + rows +
         "); replaces --bits/--group/--sym. FP8 block-scaled sources (fp8_e4m3_b128, DeepSeek's "
         "release format) are read as the source precision";
}

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("model", o.q.model_path, "Input model (HF directory, .safetensors, .gguf, llama2.c .bin, .dsq)")
      ->required();
  sub.add_option("-o,--output", o.q.out_path, jobs::kOutputModelHelp)
      ->required();
  o.scheme_opt = sub.add_option("--scheme", o.scheme, scheme_help());
  o.bits_opt = sub.add_option("--bits", o.bits, "Code width in bits: " + supported_bits_list())
                   ->capture_default_str();
  o.group_opt = sub.add_option("--group", o.group,
                               "Group size along the input dimension: " + supported_groups_list())
                    ->capture_default_str();
  auto* sym = sub.add_flag("--sym", o.sym, "Symmetric: zero point fixed at 2^(bits-1), no zeros stored");
  auto* asym = sub.add_flag("--asym", o.asym, "Asymmetric: a u8 zero point per group (default)");
  sym->excludes(asym);
  o.scheme_opt->excludes(o.bits_opt)->excludes(o.group_opt)->excludes(sym)->excludes(asym);
  std::string methods;
  for (const auto& m : jobs::quant_methods())
    methods += "\n  " + std::string(m.name) + ": " + std::string(m.help);
  sub.add_option("--method", o.q.method, "Quantization method:" + methods)->capture_default_str();
  sub.add_flag("--mse-clip", o.q.mse_clip,
               "Search a per-group clipping range (shrink to 0.5x) minimising squared error");
  sub.add_option("--skip", o.q.skip,
                 "Keep block linears whose canonical name matches this regex (ECMAScript, search) "
                 "unquantized, e.g. 'blk\\.0\\.|ffn_down'");
  sub.add_option("--json", o.json_path,
                 "Write the per-tensor report as JSON to this file ('-' for stdout)");
  sub.add_option("--zstd", o.q.zstd_level, "Compress tensors with zstd at this level (0 = off)")
      ->check(range(0, 22));
  o.method_flags.bind(sub);
}

int run() {
  auto& o = g_opts;
  o.q.desc = o.scheme_opt->count() ? make_quant_desc(o.scheme) : make_quant_desc(o.bits, o.group, o.sym);
  o.q.progress = !quiet();
  o.method_flags.apply(o.q);
  const jobs::QuantizeReport r = jobs::run_quantize(o.q, o.json_path);
  if (quiet()) return 0;
  std::fputs(jobs::format_report(r).c_str(), stdout);
  std::printf("wrote '%s': %s, %s\n", o.q.out_path.c_str(), o.q.method.c_str(),
              scheme_name(o.q.desc).c_str());
  return 0;
}

}  // namespace

const Command kQuantizeCommand = {"quantize",
                                  "Quantize the transformer blocks' linear weights (RTN, GPTQ, AWQ)",
                                  add_options, run};

}  // namespace dsq::tools
