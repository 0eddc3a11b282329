// dsq eval MODEL (--text FILE | --tokens FILE) [--ctx N] [--max-tokens N] [--bos] [--ref REF]
//          [--json OUT] [--batch B]
#include <cstdio>
#include <string>

#include "jobs/eval.h"
#include "lib/core/log.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

jobs::EvalOptions g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts;
  sub.add_option("model", o.model, "Model to evaluate (HF directory, .safetensors, .gguf, llama2.c .bin, .dsq)")
      ->required();
  auto* text = sub.add_option("--text", o.text_file,
                              "UTF-8 text file, tokenized with the model's tokenizer");
  auto* toks = sub.add_option("--tokens", o.tokens_file,
                              "Pre-tokenized ids: little-endian uint32, no header (.u32)");
  text->excludes(toks);
  sub.add_option("--ctx", o.ctx,
                 "Window length in ids. Windows are consecutive, non-overlapping slices of the "
                 "stream, each run from a fresh context; position t predicts id t+1, so each "
                 "window scores ctx-1 ids. A trailing partial window is not evaluated")
      ->capture_default_str();
  sub.add_option("--max-tokens", o.max_tokens,
                 "Use only the first N ids of the stream (after --bos; 0 = all)")
      ->capture_default_str();
  sub.add_flag("--bos", o.bos,
               "The stream starts with the model's BOS id: it is prepended unless the stream "
               "already starts with it (the shared .u32 files do). Later windows are taken as-is, "
               "without a BOS of their own: this is the protocol of shared/data/MANIFEST.md");
  sub.add_flag("--llama-ppl", o.llama_protocol,
               "Score as llama.cpp's llama-perplexity does, so the numbers compare: --text is "
               "tokenized with BOS when the tokenizer adds one, every window's first id is "
               "replaced by BOS (same condition), and only the second half of each window is "
               "scored (positions ctx/2 .. ctx-2)");
  sub.add_option("--ref", o.ref,
                 "Reference model: adds KL(ref||model), top-1 agreement, reference perplexity and "
                 "per-block hidden-state drift over the same scored ids");
  sub.add_option("--json", o.json_out, "Write the report as JSON to this file");
  sub.add_option("--batch", o.batch, "Windows per forward pass (more = faster, more memory)")
      ->capture_default_str();
}

int run() {
  g_opts.progress = !quiet();
  const jobs::EvalReport r = jobs::run_eval(g_opts);
  std::fputs(model::format_eval_summary(r).c_str(), stdout);
  if (!g_opts.json_out.empty()) std::printf("wrote '%s'\n", g_opts.json_out.c_str());
  return 0;
}

}  // namespace

const Command kEvalCommand = {
    "eval", "Perplexity, and KL divergence / top-1 agreement / drift against a reference model",
    add_options, run};

}  // namespace dsq::tools
