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
  const WeightStore ws = formats::open_model(opts.model);
  const auto tok = model_tokenizer(ws, opts.model,
                                   "convert it from a directory with tokenizer.json or "
                                   "tokenizer.model, or from a GGUF with a vocabulary");
  const model::Model m = model::Model::load(ws);
  GenerateResult r;
  r.prompt_ids = tok->encode(opts.prompt, tok->adds_bos());
  if (r.prompt_ids.empty()) throw UsageError("the prompt encodes to no tokens");
  for (int32_t id : r.prompt_ids)
    if (id >= m.vocab())
      throw ConfigError(strprintf("'%s': the tokenizer produced id %d, beyond the model's "
                                  "vocabulary of %lld",
                                  opts.model.c_str(), id, static_cast<long long>(m.vocab())));
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
  so.stop_id = tok->eos_id() >= 0 ? tok->eos_id() : ws.config.eos_id;
  const auto t0 = std::chrono::steady_clock::now();
  r.new_ids = model::generate(m, r.prompt_ids, so);
  const double dt = seconds_since(t0);
  r.tokens_per_second = dt > 0 ? static_cast<double>(r.new_ids.size()) / dt : 0.0;
  std::vector<int32_t> all = r.prompt_ids;
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  r.text = tok->decode(all);
  return r;
}

}  // namespace dsq::jobs
