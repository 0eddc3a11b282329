#include "lib/model/eval.h"

#include <chrono>
#include <cmath>

#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"

namespace dsq::model {

using json = nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

json nullable(bool has, double v) { return has ? json(v) : json(nullptr); }

}  // namespace

EvalReport evaluate(const Model& m, const Model* ref,
                    std::span<const int32_t> stream, int64_t ctx, int64_t batch, bool progress,
                    int64_t score_from) {
  if (ctx < 2) throw UsageError(strprintf("--ctx must be at least 2, got %lld", static_cast<long long>(ctx)));
  if (score_from < 0 || score_from > ctx - 2)
    throw UsageError(strprintf("the first scored position %lld is outside a window of %lld ids",
                               static_cast<long long>(score_from), static_cast<long long>(ctx)));
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
  r.score_from = score_from;
  r.windows = n / ctx;
  r.stream_tokens = n;
  r.tokens_dropped = n - r.windows * ctx;
  r.has_ref = ref != nullptr;
  const bool drift = ref && ref->config().n_layers == m.config().n_layers;

  const auto t_start = std::chrono::steady_clock::now();
  double model_seconds = 0;
  MetricsAccumulator acc;
  BlockOutputRecorder recorder;
  DriftMeter meter(recorder, ctx);
  SparsityMeter sparsity(m, drift ? &meter : nullptr);  // counts what thresholds zero
  Observer* obs = drift ? &meter : nullptr;
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
        score_windows(logits.data(), ref ? ref_logits.data() : nullptr, win, B, ctx, vocab, score_from);
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
    const DistStats k = acc.kld();
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
    if (!is_block_linear(ws.config, name)) continue;
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
      {"score_from", r.score_from},
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
  s += strprintf("tokens scored  %lld", static_cast<long long>(r.tokens_scored));
  s += r.score_from > 0 ? strprintf(" (positions %lld..%lld of each window)\n",
                                    static_cast<long long>(r.score_from),
                                    static_cast<long long>(r.ctx - 2))
                        : std::string("\n");
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

}  // namespace dsq::model
