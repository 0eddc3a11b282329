#include "jobs/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "formats/format_table.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/model/generate.h"
#include "lib/model/model.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {

GenerateResult run_generate(const GenerateOptions& opts) {
  if (opts.n_new < 0) throw UsageError("-n must not be negative");
  if (!(opts.temperature >= 0) || !std::isfinite(opts.temperature))
    throw UsageError("--temp must be a finite number >= 0 (0 = greedy)");
  if (opts.top_k < 0) throw UsageError("--top-k must not be negative");
  const bool by_ids = !opts.prompt_ids.empty();
  if (by_ids && !opts.prompt.empty())
    throw UsageError("give the prompt as text (--prompt) or as ids (--prompt-ids), not both");
  if (!by_ids && opts.prompt.empty())
    throw UsageError("no prompt: give --prompt TEXT or --prompt-ids IDS");
  const WeightStore ws = formats::open_model(opts.model);
  IoPlan io;
  io.model_inputs(ws);
  io.output(opts.json_out, "--json");
  io.check();
  // A prompt of ids needs no tokenizer (a synthetic benchmark model has none).
  const auto tok = by_ids ? optional_tokenizer(ws)
                          : model_tokenizer(ws, opts.model,
                                            "convert it from a directory with tokenizer.json or "
                                            "tokenizer.model, or from a GGUF with a vocabulary, "
                                            "or give the prompt as ids (--prompt-ids)");
  GenerateResult r;
  r.prompt_ids = by_ids ? opts.prompt_ids : tok->encode(opts.prompt, tok->adds_bos());
  if (r.prompt_ids.empty()) throw UsageError("the prompt encodes to no tokens");
  for (int32_t id : r.prompt_ids) {
    if (id >= 0 && id < ws.config.vocab_size) continue;
    const auto vocab = static_cast<long long>(ws.config.vocab_size);
    if (by_ids)
      throw UsageError(strprintf("--prompt-ids: id %d is outside the model's vocabulary [0, %lld)",
                                 id, vocab));
    throw ConfigError(strprintf("'%s': the tokenizer produced id %d, beyond the model's "
                                "vocabulary of %lld", opts.model.c_str(), id, vocab));
  }
  const model::Model m = model::Model::load(ws);
  model::SampleOptions so;
  const int64_t room = ws.config.max_ctx - static_cast<int64_t>(r.prompt_ids.size());
  if (room <= 0)
    throw UsageError(strprintf("the prompt has %zu tokens, the model's context is %lld",
                               r.prompt_ids.size(), static_cast<long long>(ws.config.max_ctx)));
  if (opts.n_new > room)
    log_warn(strprintf("-n %lld: the model's context (%lld) leaves room for %lld new tokens; "
                       "stopping there",
                       static_cast<long long>(opts.n_new), static_cast<long long>(ws.config.max_ctx),
                       static_cast<long long>(room)));
  so.n_new = std::min(opts.n_new, room);
  so.temperature = opts.temperature;
  so.top_k = opts.top_k;
  so.seed = opts.seed;
  so.stop_id = tok && tok->eos_id() >= 0 ? tok->eos_id() : ws.config.eos_id;
  const auto t0 = std::chrono::steady_clock::now();
  model::GenerateTiming t;
  r.new_ids = model::generate(m, r.prompt_ids, so, &t);
  const double dt = seconds_since(t0);
  auto rate = [](double n, double s) { return s > 0 ? n / s : 0.0; };
  r.tokens_per_second = rate(static_cast<double>(r.new_ids.size()), dt);
  r.prompt_seconds = t.prompt_seconds;
  r.prompt_tokens_per_second = rate(static_cast<double>(r.prompt_ids.size()), t.prompt_seconds);
  r.decode_tokens_per_second = rate(static_cast<double>(t.decode_steps), t.decode_seconds);
  std::vector<int32_t> all = r.prompt_ids;
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  if (tok) r.text = tok->decode(all);
  if (!opts.json_out.empty())
    write_json_file(opts.json_out, {{"model", opts.model},
                                    {"prompt_ids", r.prompt_ids},
                                    {"new_ids", r.new_ids},
                                    {"text", r.text},
                                    {"temperature", opts.temperature},
                                    {"top_k", opts.top_k},
                                    {"seed", opts.seed},
                                    {"prompt_seconds", r.prompt_seconds},
                                    {"prompt_tokens_per_second", r.prompt_tokens_per_second},
                                    {"decode_steps", t.decode_steps},
                                    {"decode_seconds", t.decode_seconds},
                                    {"decode_tokens_per_second", r.decode_tokens_per_second},
                                    {"tokens_per_second", r.tokens_per_second}});
  return r;
}

}  // namespace dsq::jobs
