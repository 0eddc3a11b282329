#include "calibration/eval.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "calibration/tokenizer.h"
#include "formats/format_table.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/model/generate.h"

namespace dsq::calibration {

using json = nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::unique_ptr<Tokenizer> model_tokenizer(const WeightStore& ws, const std::string& path) {
  if (!ws.metadata.contains("tokenizer") || ws.metadata["tokenizer"].is_null())
    throw ConfigError("'" + path + "': the model has no tokenizer (use --tokens FILE.u32)");
  return load_tokenizer(ws.metadata["tokenizer"]);
}

void write_json_file(const std::string& path, const json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError("'" + tmp + "': cannot open for writing");
    f << j.dump(2) << "\n";
    if (!f.flush()) throw IoError("'" + tmp + "': write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IoError("'" + path + "': cannot rename from '" + tmp + "': " + ec.message());
  }
}

json nullable(bool has, double v) { return has ? json(v) : json(nullptr); }

}  // namespace

std::vector<int32_t> eval_token_stream(const EvalOptions& opts, const WeightStore& ws) {
  const std::string& src = opts.text_file.empty() ? opts.tokens_file : opts.text_file;
  std::vector<int32_t> ids;
  if (!opts.text_file.empty()) {
    const auto tok = model_tokenizer(ws, opts.model);
    ids = tok->encode(load_text_file(opts.text_file), /*add_bos=*/false);
  } else {
    ids = read_token_ids(opts.tokens_file);
  }
  if (ids.empty()) throw FormatError("'" + src + "': no tokens");
  if (opts.bos) {
    const int64_t bos = ws.config.bos_id;
    if (bos < 0) throw ConfigError("'" + opts.model + "': --bos given but the model has no BOS id");
    if (ids.front() != bos) ids.insert(ids.begin(), static_cast<int32_t>(bos));
  }
  if (opts.max_tokens > 0 && static_cast<int64_t>(ids.size()) > opts.max_tokens)
    ids.resize(static_cast<size_t>(opts.max_tokens));
  const int64_t vocab = ws.config.vocab_size;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw FormatError(strprintf("'%s': token id %d at position %zu is outside the model's "
                                  "vocabulary of %lld",
                                  src.c_str(), ids[i], i, static_cast<long long>(vocab)));
  return ids;
}

EvalReport evaluate(const model::Model& m, const model::Model* ref,
                    std::span<const int32_t> stream, int64_t ctx, int64_t batch, bool progress) {
  if (ctx < 2) throw UsageError(strprintf("--ctx must be at least 2, got %lld", static_cast<long long>(ctx)));
  if (batch < 1) throw UsageError("--batch must be at least 1");
  const int64_t n = static_cast<int64_t>(stream.size()), vocab = m.vocab();
  if (n < ctx)
    throw UsageError(strprintf("the token stream has %lld ids, fewer than one window of --ctx %lld",
                               static_cast<long long>(n), static_cast<long long>(ctx)));
  if (ref && ref->vocab() != vocab)
    throw ConfigError(strprintf("vocabulary mismatch: the model has %lld ids, the reference %lld",
                                static_cast<long long>(vocab),
                                static_cast<long long>(ref->vocab())));
  if (ctx > m.config().max_ctx)
    log_warn(strprintf("--ctx %lld exceeds the model's context length %lld",
                       static_cast<long long>(ctx), static_cast<long long>(m.config().max_ctx)));
  EvalReport r;
  r.ctx = ctx;
  r.batch = batch;
  r.windows = n / ctx;
  r.stream_tokens = n;
  r.tokens_dropped = n - r.windows * ctx;
  r.has_ref = ref != nullptr;
  const bool drift = ref && ref->config().n_layers == m.config().n_layers;

  const auto t_start = std::chrono::steady_clock::now();
  double model_seconds = 0;
  model::MetricsAccumulator acc;
  model::BlockOutputRecorder recorder;
  model::DriftMeter meter(recorder, ctx);
  model::SparsityMeter sparsity(m, drift ? &meter : nullptr);  // counts what thresholds zero
  model::Observer* obs = drift ? &meter : nullptr;
  if (sparsity.active()) obs = &sparsity;
  std::vector<float> logits, ref_logits;
  Progress bar("eval", progress ? r.windows : 0, "win");
  for (int64_t w0 = 0; w0 < r.windows; w0 += batch) {
    const int64_t B = std::min(batch, r.windows - w0);
    const auto win = stream.subspan(static_cast<size_t>(w0 * ctx), static_cast<size_t>(B * ctx));
    if (ref) {
      ref_logits.resize(static_cast<size_t>(B * ctx * vocab));
      ref->forward(win, B, ctx, ref_logits.data(), drift ? &recorder : nullptr);
    }
    logits.resize(static_cast<size_t>(B * ctx * vocab));
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(win, B, ctx, logits.data(), obs);
    model_seconds += seconds_since(t0);
    const auto scores =
        model::score_windows(logits.data(), ref ? ref_logits.data() : nullptr, win, B, ctx, vocab);
    acc.add(scores);
    if (progress) bar.add(B);
  }
  bar.finish();
  r.seconds = seconds_since(t_start);
  r.tokens_scored = acc.count();
  r.sparsity = sparsity.result();
  r.mean_nll = acc.mean_nll();
  r.perplexity = acc.perplexity();
  r.tokens_per_second =
      model_seconds > 0 ? static_cast<double>(r.windows * ctx) / model_seconds : 0.0;
  if (ref) {
    r.ref_perplexity = acc.ref_perplexity();
    r.ppl_ratio = r.perplexity / r.ref_perplexity;
    r.ppl_diff = r.perplexity - r.ref_perplexity;
    const model::DistStats k = acc.kld();
    r.kld_mean = k.mean;
    r.kld_stderr = k.stderr_;
    r.kld_p99 = k.p99;
    r.kld_max = k.max;
    r.top1_agreement = acc.top1_agreement();
    if (drift) r.layers = meter.result();
  }
  return r;
}

std::optional<double> block_linear_bits_per_weight(const WeightStore& ws) {
  double bits = 0, params = 0;
  bool any_q = false;
  for (const auto& name : ws.names()) {
    if (!is_block_linear(name)) continue;
    const auto& e = ws.entry(name);
    const double n = static_cast<double>(shape_numel(e.shape, name));
    if (e.dtype == DType::kQInt) {
      any_q = true;
      bits += n * quant_bits_per_weight(e.quant, e.shape.at(0), e.shape.at(1));
    } else {
      bits += n * 8.0 * static_cast<double>(dtype_size(e.dtype));
    }
    params += n;
  }
  if (!any_q || params == 0) return std::nullopt;
  return bits / params;
}

EvalReport run_eval(const EvalOptions& opts) {
  if (opts.text_file.empty() == opts.tokens_file.empty())
    throw UsageError("give exactly one of --text FILE or --tokens FILE");
  if (opts.ctx < 2)
    throw UsageError(strprintf("--ctx must be at least 2, got %lld", static_cast<long long>(opts.ctx)));
  const WeightStore ws = formats::open_model(opts.model);
  const auto stream = eval_token_stream(opts, ws);
  const model::Model m = model::Model::load(ws);
  std::optional<WeightStore> ref_ws;
  std::optional<model::Model> ref;
  if (!opts.ref.empty()) {
    ref_ws.emplace(formats::open_model(opts.ref));
    if (ref_ws->config.vocab_size != ws.config.vocab_size)
      throw ConfigError(strprintf("'%s' has a vocabulary of %lld ids, the reference '%s' %lld",
                                  opts.model.c_str(), static_cast<long long>(ws.config.vocab_size),
                                  opts.ref.c_str(),
                                  static_cast<long long>(ref_ws->config.vocab_size)));
    ref.emplace(model::Model::load(*ref_ws));
  }
  EvalReport r = evaluate(m, ref ? &*ref : nullptr, stream, opts.ctx, opts.batch, opts.progress);
  r.model = opts.model;
  r.ref = opts.ref;
  r.bits_per_weight = block_linear_bits_per_weight(ws);
  if (!opts.json_out.empty()) write_json_file(opts.json_out, to_json(r));
  return r;
}

json to_json(const EvalReport& r) {
  json layers = json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"layer", l.layer}, {"rel_l2", l.rel_l2}, {"cosine", l.cosine}});
  json j = {
      {"perplexity", r.perplexity},
      {"tokens_scored", r.tokens_scored},
      {"ref_perplexity", nullable(r.has_ref, r.ref_perplexity)},
      {"kld_mean", nullable(r.has_ref, r.kld_mean)},
      {"kld_stderr", nullable(r.has_ref, r.kld_stderr)},
      {"kld_p99", nullable(r.has_ref, r.kld_p99)},
      {"kld_max", nullable(r.has_ref, r.kld_max)},
      {"top1_agreement", nullable(r.has_ref, r.top1_agreement)},
      {"tokens_per_second", r.tokens_per_second},
      {"layers", layers},
      {"model", r.model},
      {"ref", r.ref.empty() ? json(nullptr) : json(r.ref)},
      {"ppl_ratio", nullable(r.has_ref, r.ppl_ratio)},
      {"ppl_diff", nullable(r.has_ref, r.ppl_diff)},
      {"mean_nll", r.mean_nll},
      {"ctx", r.ctx},
      {"windows", r.windows},
      {"batch", r.batch},
      {"stream_tokens", r.stream_tokens},
      {"tokens_dropped", r.tokens_dropped},
      {"seconds", r.seconds},
  };
  if (r.bits_per_weight) j["bits_per_weight"] = *r.bits_per_weight;
  if (!r.sparsity.empty()) {
    json sp = json::array();
    int64_t zeros = 0, total = 0;
    for (const auto& e : r.sparsity) {
      sp.push_back({{"layer", e.layer}, {"linear", e.name}, {"threshold", e.threshold},
                    {"sparsity", e.sparsity()}});
      zeros += e.zeros;
      total += e.total;
    }
    j["sparsity"] = sp;
    j["sparsity_overall"] = total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
  }
  return j;
}

std::string format_eval_summary(const EvalReport& r) {
  std::string s = strprintf("model          %s\n", r.model.c_str());
  s += strprintf("windows        %lld x %lld ids (%lld trailing ids not evaluated)\n",
                 static_cast<long long>(r.windows), static_cast<long long>(r.ctx),
                 static_cast<long long>(r.tokens_dropped));
  s += strprintf("tokens scored  %lld\n", static_cast<long long>(r.tokens_scored));
  if (r.bits_per_weight) s += strprintf("bits/weight    %.3f (block linears)\n", *r.bits_per_weight);
  s += strprintf("perplexity     %.4f (mean NLL %.5f nats)\n", r.perplexity, r.mean_nll);
  if (r.has_ref) {
    s += strprintf("reference      %s\n", r.ref.c_str());
    s += strprintf("ref perplexity %.4f (ratio %.4f, diff %+.4f)\n", r.ref_perplexity, r.ppl_ratio,
                   r.ppl_diff);
    s += strprintf("KLD            mean %.6f +- %.6f, p99 %.6f, max %.6f\n", r.kld_mean,
                   r.kld_stderr, r.kld_p99, r.kld_max);
    s += strprintf("top-1 agree    %.4f\n", r.top1_agreement);
    for (const auto& l : r.layers)
      s += strprintf("  block %-3lld   rel_l2 %.6f  cosine %.6f\n", static_cast<long long>(l.layer),
                     l.rel_l2, l.cosine);
  }
  if (!r.sparsity.empty()) {  // per layer: zeroed share of each thresholded linear's input
    int64_t zeros = 0, total = 0;
    for (const auto& e : r.sparsity) zeros += e.zeros, total += e.total;
    s += strprintf("act. sparsity  %.4f over %zu thresholded linears\n",
                   static_cast<double>(zeros) / static_cast<double>(total), r.sparsity.size());
    for (size_t i = 0; i < r.sparsity.size(); ++i) {
      const auto& e = r.sparsity[i];
      if (i == 0 || r.sparsity[i - 1].layer != e.layer)
        s += strprintf("%s  block %-3lld  ", i ? "\n" : "", static_cast<long long>(e.layer));
      s += strprintf(" %s %.3f", e.name.c_str(), e.sparsity());
    }
    s += "\n";
  }
  s += strprintf("throughput     %.0f tokens/s (%.2f s total)\n", r.tokens_per_second, r.seconds);
  return s;
}

GenerateResult run_generate(const GenerateOptions& opts) {
  if (opts.n_new < 0) throw UsageError("-n must not be negative");
  if (opts.temperature < 0) throw UsageError("--temp must not be negative");
  if (opts.top_k < 0) throw UsageError("--top-k must not be negative");
  const WeightStore ws = formats::open_model(opts.model);
  const auto tok = model_tokenizer(ws, opts.model);
  const model::Model m = model::Model::load(ws);
  GenerateResult r;
  r.prompt_ids = tok->encode(opts.prompt, /*add_bos=*/true);
  if (r.prompt_ids.empty()) throw UsageError("the prompt encodes to no tokens and the model has no BOS");
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

}  // namespace dsq::calibration
