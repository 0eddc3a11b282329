// dsq quantize MODEL -o OUT.dsq --bits B --group G [--method M] [--sym|--asym] [--mse-clip]
//              [--skip REGEX] [--json REPORT]
#include <cstdio>
#include <fstream>
#include <string>

#include "calibration/quantize.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/quant/quant_types.h"
#include "tools/commands.h"
#include "tools/quantize_calib_flags.h"

namespace dsq::tools {
namespace {

struct {
  calibration::QuantizeOptions q;
  int bits = 4;
  int group = 128;
  bool sym = false, asym = false;
  std::string json_path;
} g_opts;

std::string bits_help() {
  std::string s = "Code width in bits: " + quant::supported_bits_list() + " (schemes:";
  for (size_t i = 0; i < quant::kNumQuantTypes; ++i) s += " " + std::string(quant::kQuantTraits[i].name);
  return s + ")";
}

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("model", o.q.model_path, "Input model (HF directory, .safetensors, .gguf, llama2.c .bin, .dsq)")
      ->required();
  sub.add_option("-o,--output", o.q.out_path, "Output .dsq file")->required();
  sub.add_option("--bits", o.bits, bits_help())->capture_default_str();
  sub.add_option("--group", o.group,
                 "Group size along the input dimension: 32, 64, 128, 256, or 0 for one group per "
                 "output channel")
      ->capture_default_str();
  sub.add_option("--method", o.q.method, "Quantization method: " + calibration::quant_method_names())
      ->capture_default_str();
  auto* sym = sub.add_flag("--sym", o.sym, "Symmetric: zero point fixed at 2^(bits-1), no zeros stored");
  auto* asym = sub.add_flag("--asym", o.asym, "Asymmetric: a u8 zero point per group (default)");
  sym->excludes(asym);
  sub.add_flag("--mse-clip", o.q.mse_clip,
               "Search a per-group clipping range (shrink to 0.5x) minimising squared error");
  sub.add_option("--skip", o.q.skip,
                 "Keep block linears whose canonical name matches this regex (ECMAScript, search) "
                 "unquantized, e.g. 'blk\\.0\\.|ffn_down'");
  sub.add_option("--json", o.json_path, "Write the per-tensor report as JSON to this file");
  sub.add_option("--zstd", o.q.zstd_level, "Compress tensors with zstd at this level (0 = off)")
      ->check(CLI::Range(0, 22));
  add_calib_quantize_flags(sub);
}

int run() {
  auto& o = g_opts;
  if (o.bits < 1 || o.bits > 8) throw UsageError("--bits must be one of " + quant::supported_bits_list());
  if (o.group < 0) throw UsageError("--group must be 32, 64, 128, 256 or 0");
  o.q.desc = QuantDesc{static_cast<uint8_t>(o.bits), static_cast<uint32_t>(o.group), o.sym};
  o.q.progress = !quiet();
  apply_calib_quantize_flags(o.q);
  const calibration::QuantizeReport r = calibration::quantize_model(o.q);
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << nlohmann::json(r).dump(2) << "\n";
    if (!f) throw IoError("'" + o.json_path + "': cannot write report");
  }
  if (!quiet()) std::fputs(calibration::format_report(r).c_str(), stdout);
  std::printf("wrote '%s': %s, %s\n", o.q.out_path.c_str(), o.q.method.c_str(),
              quant::desc_str(o.q.desc).c_str());
  return 0;
}

}  // namespace

const Command kQuantizeCommand = {"quantize",
                                  "Quantize the transformer blocks' linear weights (RTN, ...)",
                                  add_options, run};

}  // namespace dsq::tools
