// dsq convert SRC -o OUT.dsq [--dtype keep|f32|f16|bf16] [--zstd LEVEL] [--json]
// Streams any supported model into one .dsq file (docs/FORMAT.md), tensor by tensor.
#include <cstdio>
#include <string>

#include "jobs/convert.h"
#include "jobs/job_util.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

struct {
  jobs::ConvertOptions convert;
} g_opts;

std::string group_digits(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

void add_options(CLI::App& sub) {
  auto& o = g_opts.convert;
  sub.add_option("src", o.src, "Model to convert: HF directory, .safetensors, .gguf, llama2.c .bin, .dsq")
      ->required();
  sub.add_option("-o,--output", o.out, jobs::kOutputModelHelp)->required();
  sub.add_option("--dtype", o.dtype,
                 "Tensor dtype: keep, or f32/f16/bf16 for matrices (1-D norms and biases stay f32)")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}))
      ->capture_default_str();
  sub.add_option("--zstd", o.zstd_level, "Compress each tensor with zstd at this level (0 = off)")
      ->check(range(0, 22))
      ->capture_default_str();
  sub.add_option("--json", o.json_out, "Write the report as JSON to this file ('-' for stdout)");
}

int run() {
  g_opts.convert.progress = !quiet();
  const jobs::ConvertReport r = jobs::run_convert(g_opts.convert);
  if (quiet() || g_opts.convert.json_out == "-") return 0;
  print_convert_summary(r, "converted");
  return 0;
}

}  // namespace

void print_convert_summary(const jobs::ConvertReport& r, const char* verb) {
  std::printf("%s '%s' (%s) -> '%s'%s%s\n", verb, r.src.c_str(), r.source_format.c_str(),
              r.out.c_str(), r.hf_layout.empty() ? "" : " as ", r.hf_layout.c_str());
  std::printf("  tensors     %lld (%lld zstd-compressed)\n", static_cast<long long>(r.tensors),
              static_cast<long long>(r.written.compressed));
  std::printf("  parameters  %s\n", group_digits(static_cast<uint64_t>(r.parameters)).c_str());
  std::printf("  bytes in    %s tensor bytes (%s in source files)\n",
              group_digits(r.tensor_bytes_in).c_str(), group_digits(r.source_bytes).c_str());
  std::printf("  bytes out   %s tensor bytes, %s stored, file %s\n",
              group_digits(r.written.raw_bytes).c_str(), group_digits(r.written.stored_bytes).c_str(),
              group_digits(r.written.file_bytes).c_str());
  std::printf("  time        %.2f s\n", r.seconds);
}

const Command kConvertCommand = {"convert", "Convert a model to .dsq (or .gguf for llama.cpp)", add_options, run};

}  // namespace dsq::tools
