#include "jobs/generate.h"

#include <chrono>

#include "formats/format_table.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/model/generate.h"
#include "lib/model/model.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {

GenerateResult run_generate(const GenerateOptions& opts) {
  if (opts.n_new < 0) throw UsageError("-n must not be negative");
  if (opts.temperature < 0) throw UsageError("--temp must not be negative");
  if (opts.top_k < 0) throw UsageError("--top-k must not be negative");
  const WeightStore ws = formats::open_model(opts.model);
  const auto tok = model_tokenizer(ws, opts.model);
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
  so.n_new = opts.n_new;
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
