// dsq generate MODEL --prompt TEXT [-n N] [--temp T] [--seed S] [--top-k K]
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
  sub.add_option("-p,--prompt", o.prompt, "Prompt text; encode(prompt) is fed to the model, with BOS first when the model's "
                 "tokenizer adds one")
      ->required();
  sub.add_option("-n", o.n_new, "Tokens to generate (stops early at EOS)")->capture_default_str();
  sub.add_option("--temp", o.temperature, "Sampling temperature; 0 = greedy (argmax)")
      ->capture_default_str();
  sub.add_option("--top-k", o.top_k, "Sample among the K most likely ids (0 = all)")
      ->capture_default_str();
  sub.add_option("--seed", o.seed, "Random seed for sampling")->capture_default_str();
}

int run() {
  const jobs::GenerateResult r = jobs::run_generate(g_opts);
  std::printf("%s\n", r.text.c_str());
  if (!quiet()) {
    std::string ids;
    for (int32_t id : r.new_ids) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    std::fprintf(stderr, "generated %zu ids [%s] at %.1f tokens/s\n", r.new_ids.size(),
                 ids.c_str(), r.tokens_per_second);
  }
  return 0;
}

}  // namespace

const Command kGenerateCommand = {"generate",
                                  "Generate text from a prompt (greedy or sampled, KV cache)",
                                  add_options, run};

}  // namespace dsq::tools
