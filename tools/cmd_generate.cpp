// dsq generate MODEL (--prompt TEXT | --prompt-ids IDS) [-n N] [--temp T] [--seed S] [--top-k K]
//              [--json FILE]
#include <cstdio>
#include <string>

#include "jobs/generate.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

jobs::GenerateOptions g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("model", o.model, "Model (HF directory, .safetensors, .gguf, llama2.c .bin, .dsq)")
      ->required();
  auto* text = sub.add_option("-p,--prompt", o.prompt, "Prompt text; encode(prompt) is fed to the model, with BOS first when the "
                              "model's tokenizer adds one");
  // One of the two is required (run_generate says so).
  sub.add_option("--prompt-ids", o.prompt_ids, "The prompt as token ids (comma-separated), fed as they are: no BOS is added "
                 "and no tokenizer is needed (e.g. a synthetic benchmark model)")
      ->delimiter(',')
      ->excludes(text);
  sub.add_option("-n", o.n_new, "Tokens to generate (stops early at EOS)")->capture_default_str();
  sub.add_option("--temp", o.temperature, "Sampling temperature; 0 = greedy (argmax)")
      ->capture_default_str();
  sub.add_option("--top-k", o.top_k, "Sample among the K most likely ids (0 = all)")
      ->capture_default_str();
  sub.add_option("--seed", o.seed, "Random seed for sampling")->capture_default_str();
  sub.add_option("--json", o.json_out, "Write ids, text and timings (prompt and decode tokens/s) as JSON to this file "
                 "('-' for stdout)");
}

int run() {
  const jobs::GenerateResult r = jobs::run_generate(g_opts);
  if (g_opts.json_out != "-") {
    std::string ids;
    for (int32_t id : r.new_ids) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    // Without a tokenizer the ids are the output.
    if (!r.text.empty() || g_opts.prompt_ids.empty()) std::printf("%s\n", r.text.c_str());
    else std::printf("%s\n", ids.c_str());
    if (!quiet())
      std::fprintf(stderr, "generated %zu ids [%s]: prompt %zu ids at %.1f tokens/s, then %.2f tokens/s\n",
                   r.new_ids.size(), ids.c_str(), r.prompt_ids.size(), r.prompt_tokens_per_second,
                   r.decode_tokens_per_second);
  }
  return 0;
}

}  // namespace

const Command kGenerateCommand = {"generate",
                                  "Generate text from a prompt (greedy or sampled, KV cache)",
                                  add_options, run};

}  // namespace dsq::tools
