// dsq export MODEL -o OUT [--hf float|gptq|gptq-v2|awq|compressed-tensors] [--dtype] [--shard-size]
// Writes a model where its runtime loads it: a .gguf for llama.cpp, or a Hugging Face directory
// for transformers and vLLM (docs/EXPORT.md says which schemes map exactly onto which layout).
#include <cstdio>
#include <string>

#include "jobs/convert.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

struct {
  jobs::ConvertOptions o;
  std::string shard_size = "5GB";
} g_opts;

// "5GB", "500MB", "64KB" (decimal, as Hugging Face's max_shard_size), "2GiB", or plain bytes.
uint64_t parse_size(const std::string& s) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  const std::string unit = s.substr(used);
  double mult = 0;
  for (const auto& [u, m] : {std::pair{"", 1.0}, {"B", 1.0}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
                             {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}})
    if (unit == u) mult = m;
  if (used == 0 || mult == 0 || !(v > 0) || v * mult > 1e18)
    throw UsageError("--shard-size: '" + s + "' is not a size (e.g. 5GB, 500MB, 2GiB)");
  return static_cast<uint64_t>(v * mult);
}

void add_options(CLI::App& sub) {
  auto& o = g_opts.o;
  sub.add_option("src", o.src, "Model to export: .dsq (e.g. a dsq quantize result), HF directory, "
                 ".safetensors, .gguf, llama2.c .bin")
      ->required();
  sub.add_option("-o,--output", o.out,
                 "Output: a .gguf file for llama.cpp (or .dsq), or with --hf a new directory")
      ->required();
  sub.add_option("--hf", o.hf,
                 "Write a Hugging Face directory in this layout: float (every tensor a float, "
                 "quantized ones dequantized), gptq (v1: int4/int8/int2 groups or per channel; "
                 "asymmetric zero points of 0 are refused, use gptq-v2), gptq-v2, awq (int4 groups; "
                 "transformers/vLLM GEMM), compressed-tensors (pack-quantized int4/int8, mixed "
                 "schemes allowed). Codes and scales are copied, never requantized; vLLM's Marlin "
                 "kernels need symmetric schemes")
      ->check(CLI::IsMember({"float", "gptq", "gptq-v2", "awq", "compressed-tensors"}));
  sub.add_option("--dtype", o.dtype,
                 "Float tensors: keep, f32, f16 or bf16 (--hf quantized layouts default to f16, "
                 "the kernels' dtype)")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}))
      ->capture_default_str();
  sub.add_option("--shard-size", g_opts.shard_size,
                 "--hf: the largest safetensors shard (5GB, 500MB, 2GiB...)")
      ->capture_default_str();
  sub.add_option("--json", o.json_out, "Write the report as JSON to this file ('-' for stdout)");
}

int run() {
  auto& o = g_opts.o;
  o.command = "export";
  o.progress = !quiet();
  o.shard_bytes = parse_size(g_opts.shard_size);
  while (o.out.size() > 1 && o.out.back() == '/') o.out.pop_back();
  const jobs::ConvertReport r = jobs::run_convert(o);
  if (quiet() || o.json_out == "-") return 0;
  print_convert_summary(r, "exported");
  return 0;
}

}  // namespace

const Command kExportCommand = {"export",
                                "Export a model for its runtime: .gguf for llama.cpp, or a Hugging "
                                "Face directory (--hf gptq|awq|compressed-tensors|float)",
                                add_options, run};

}  // namespace dsq::tools
