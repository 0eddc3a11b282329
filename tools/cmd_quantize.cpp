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
  jobs::MixedOptions mixed;
  std::vector<std::string> tensor_types, keeps;
  std::string candidates;
  double target_bpw = 0;
  CLI::Option *target_opt = nullptr;
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

  const std::string mixed = "Mixed precision (docs/MIXED.md)";
  sub.add_option("--tensor-type", o.tensor_types,
                 "REGEX=SCHEME: block linears whose canonical name matches (searched) get SCHEME "
                 "(a scheme name or f16); repeatable, the first matching rule wins, e.g. "
                 "--tensor-type 'ffn_down=int8_sym_g128'")
      ->group(mixed);
  sub.add_option("--keep", o.keeps,
                 "REGEX: keep matching block linears in f16 (counted in the bits per weight); "
                 "repeatable, applied before --tensor-type")
      ->group(mixed);
  o.target_opt = sub.add_option("--target-bpw", o.target_bpw,
                                "Choose each linear's scheme from its measured sensitivity so that "
                                "the block linears average at most this many bits per weight (as "
                                "dsq eval counts them); calibrated methods")
                     ->check(range(0.5, 64))
                     ->group(mixed);
  sub.add_option("--candidates", o.candidates,
                 "Comma-separated schemes the search may choose (default: int2/3/4/5/6/8, sym and "
                 "asym, groups 32/64/128/256 and per channel, and f16)")
      ->group(mixed);
  sub.add_option("--kld-tokens", o.mixed.kld_tokens,
                 "Calibrate the predicted costs by the KLD each linear causes alone (RTN, on this "
                 "many calibration tokens; one forward pass per linear, per layer and kind for "
                 "experts); 0 = off")
      ->capture_default_str()
      ->check(range(0, 500000))
      ->group(mixed);
  sub.add_flag("--tie-groups", o.mixed.tie_groups,
               "Linears sharing an input (q/k/v, gate/up) get one scheme, as runtimes that fuse "
               "them need")
      ->group(mixed);
  auto* budget = sub.add_option("--budget", o.mixed.budget,
                                "Find the smallest model passing this error budget (dsq check's "
                                "format) by quantize + eval steps; needs --eval-tokens/--eval-text")
                     ->group(mixed);
  budget->excludes(o.target_opt);
  // The search's evaluation: only with --budget, listed with the other mixed-precision options.
  for (CLI::Option* opt : {
           sub.add_option("--eval-tokens", o.mixed.eval.tokens_file, "--budget: evaluation ids (.u32)"),
           sub.add_option("--eval-text", o.mixed.eval.text_file, "--budget: evaluation text"),
           sub.add_option("--eval-ctx", o.mixed.eval.ctx, "--budget: window length")
               ->capture_default_str()
               ->check(range(2, 65536)),
           sub.add_option("--eval-max-tokens", o.mixed.eval.max_tokens,
                          "--budget: evaluate the first N ids (0 = all)"),
           sub.add_flag("--eval-bos", o.mixed.eval.bos, "--budget: the stream starts with BOS"),
           sub.add_option("--eval-batch", o.mixed.eval.batch, "--budget: windows per forward pass")
               ->capture_default_str()
               ->check(range(1, 4096)),
           sub.add_option("--ref", o.mixed.ref,
                          "--budget: the reference model (default: the input model)"),
           sub.add_option("--budget-steps", o.mixed.budget_steps,
                          "--budget: bisection steps after trying the largest and smallest plans")
               ->capture_default_str()
               ->check(range(0, 30)),
       })
    opt->needs(budget)->group(mixed);
}

int run() {
  auto& o = g_opts;
  o.q.desc = o.scheme_opt->count() ? make_quant_desc(o.scheme) : make_quant_desc(o.bits, o.group, o.sym);
  o.q.progress = !quiet();
  o.method_flags.apply(o.q);
  for (const auto& k : o.keeps) o.mixed.rules.push_back(jobs::parse_tensor_type_rule(k + "=f16"));
  for (const auto& t : o.tensor_types) o.mixed.rules.push_back(jobs::parse_tensor_type_rule(t));
  if (o.target_opt->count()) o.mixed.target_bpw = o.target_bpw;
  for (size_t p = 0; !o.candidates.empty() && p <= o.candidates.size();) {
    const size_t c = std::min(o.candidates.find(',', p), o.candidates.size());
    o.mixed.candidates.push_back(jobs::parse_tensor_scheme(o.candidates.substr(p, c - p)));
    p = c + 1;
  }
  const jobs::QuantizeReport r = jobs::run_quantize(o.q, o.json_path, o.mixed);
  if (quiet()) return 0;
  std::fputs(jobs::format_report(r).c_str(), stdout);
  if (o.mixed.active())
    std::printf("wrote '%s': %s, mixed precision, %.4f bits per weight (block linears)\n",
                o.q.out_path.c_str(), o.q.method.c_str(), r.block_bpw());
  else
    std::printf("wrote '%s': %s, %s\n", o.q.out_path.c_str(), o.q.method.c_str(),
                scheme_name(o.q.desc).c_str());
  return 0;
}

}  // namespace

const Command kQuantizeCommand = {"quantize",
                                  "Quantize the transformer blocks' linear weights (RTN, GPTQ, AWQ)",
                                  add_options, run};

}  // namespace dsq::tools
