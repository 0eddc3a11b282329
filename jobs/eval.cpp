#include "jobs/eval.h"

#include <memory>
#include <optional>

#include "formats/format_table.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {

std::vector<int32_t> eval_token_stream(const EvalOptions& opts, const WeightStore& ws) {
  const std::string& src = opts.text_file.empty() ? opts.tokens_file : opts.text_file;
  std::vector<int32_t> ids;
  std::unique_ptr<text::Tokenizer> tok;  // loaded once: for text, and for --llama-ppl's BOS rule
  if (!opts.text_file.empty()) {
    tok = model_tokenizer(ws, opts.model, "use --tokens FILE.u32");
    const std::string text = text::load_text_file(opts.text_file);
    text::require_text(text, opts.text_file);
    ids = tok->encode(text, /*add_bos=*/opts.llama_protocol && tok->adds_bos());
  } else {
    ids = text::read_token_ids(opts.tokens_file);
    if (opts.llama_protocol) tok = optional_tokenizer(ws);
  }
  if (ids.empty()) throw FormatError("'" + src + "': no tokens");
  if (opts.bos) {
    const int64_t bos = ws.config.bos_id;
    if (bos < 0) throw ConfigError("'" + opts.model + "': --bos given but the model has no BOS id");
    if (ids.front() != bos) ids.insert(ids.begin(), static_cast<int32_t>(bos));
  }
  if (opts.max_tokens > 0 && static_cast<int64_t>(ids.size()) > opts.max_tokens)
    ids.resize(static_cast<size_t>(opts.max_tokens));
  // llama-perplexity: tokens[chunk start] = BOS for every chunk when the vocabulary adds BOS.
  if (opts.llama_protocol && tok && tok->adds_bos())
    for (size_t w = 0; w + static_cast<size_t>(opts.ctx) <= ids.size(); w += static_cast<size_t>(opts.ctx))
      ids[w] = tok->bos_id();
  const int64_t vocab = ws.config.vocab_size;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw FormatError(strprintf("'%s': token id %d at position %zu is outside the model's "
                                  "vocabulary of %lld",
                                  src.c_str(), ids[i], i, static_cast<long long>(vocab)));
  return ids;
}

EvalReport run_eval(const EvalOptions& opts) {
  if (opts.text_file.empty() == opts.tokens_file.empty())
    throw UsageError("give exactly one of --text FILE or --tokens FILE");
  if (opts.ctx < 2)
    throw UsageError(strprintf("--ctx must be at least 2, got %lld", static_cast<long long>(opts.ctx)));
  if (opts.batch < 1) throw UsageError("--batch must be at least 1");
  if (opts.llama_protocol && opts.ctx < 3)
    throw UsageError("--llama-ppl needs --ctx of at least 3 (it scores positions ctx/2 .. ctx-2)");
  if (opts.max_tokens < 0) throw UsageError("--max-tokens must not be negative (0 = all)");
  const WeightStore ws = formats::open_model(opts.model);
  std::optional<WeightStore> ref_ws;
  if (!opts.ref.empty()) ref_ws.emplace(formats::open_model(opts.ref));
  IoPlan io;
  io.model_inputs(ws);
  if (ref_ws) io.model_inputs(*ref_ws);
  io.input(opts.text_file);
  io.input(opts.tokens_file);
  io.output(opts.json_out, "--json");
  io.check();
  const auto stream = eval_token_stream(opts, ws);
  const int64_t score_from = opts.llama_protocol ? opts.ctx / 2 : 0;
  const model::Model m = model::Model::load(ws);
  std::optional<model::Model> ref;
  if (ref_ws) {
    if (ref_ws->config.vocab_size != ws.config.vocab_size)
      throw ConfigError(strprintf("'%s' has a vocabulary of %lld ids, the reference '%s' %lld",
                                  opts.model.c_str(), static_cast<long long>(ws.config.vocab_size),
                                  opts.ref.c_str(),
                                  static_cast<long long>(ref_ws->config.vocab_size)));
    ref.emplace(model::Model::load(*ref_ws));
  }
  EvalReport r = model::evaluate(m, ref ? &*ref : nullptr, stream, opts.ctx, opts.batch,
                                 opts.progress, score_from);
  r.model = opts.model;
  r.ref = opts.ref;
  r.bits_per_weight = model::block_linear_bits_per_weight(ws);
  if (!opts.json_out.empty()) write_json_file(opts.json_out, model::to_json(r));
  return r;
}

}  // namespace dsq::jobs
