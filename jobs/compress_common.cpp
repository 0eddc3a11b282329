#include "jobs/compress_common.h"

#include <algorithm>

#include "formats/format_table.h"
#include "formats/sinks.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"

namespace dsq::jobs {

CalibSplit load_calib_split(const WeightStore& ws, const calibration::CalibOptions& o,
                            int64_t drift_samples, const WindowFlags& flags) {
  if ((o.n_samples <= 0 && !o.all_windows) || drift_samples < 0)
    throw UsageError(strprintf("%s must be positive and %s not negative", flags.samples, flags.held));
  const std::unique_ptr<text::Tokenizer> tok = optional_tokenizer(ws);
  if (o.seq_len > ws.config.max_ctx)
    throw UsageError(strprintf("%s %lld exceeds the model's context length %lld", flags.len,
                               static_cast<long long>(o.seq_len),
                               static_cast<long long>(ws.config.max_ctx)));
  calibration::CalibOptions all = o;
  all.n_samples = o.n_samples + drift_samples;
  const calibration::CalibData d = calibration::load_calib_data(
      all, ws.config.vocab_size, static_cast<int32_t>(ws.config.bos_id), tok.get());
  CalibSplit s;
  s.recipe = d.recipe;
  s.recipe["drift_samples"] = drift_samples;
  // Every k-th window is held out; when the file was short, both sets shrink in proportion.
  const int64_t n = d.n_samples;
  const int64_t held = drift_samples == 0 ? 0
                       : o.all_windows  ? std::min(drift_samples, n / 2)
                                        : std::max<int64_t>(1, n * drift_samples / all.n_samples);
  const int64_t k = held ? std::max<int64_t>(2, n / held) : n + 1;
  for (auto* part : {&s.fit, &s.drift}) part->seq_len = d.seq_len, part->recipe = d.recipe;
  for (int64_t i = 0; i < n; ++i) {
    const bool out = held && i % k == k - 1 && s.drift.n_samples < held;
    calibration::CalibData& part = out ? s.drift : s.fit;
    const auto w = d.window(i);
    part.tokens.insert(part.tokens.end(), w.begin(), w.end());
    ++part.n_samples;
  }
  if (s.fit.n_samples == 0) throw UsageError("the calibration file is too short for any window");
  return s;
}

void run_windows(const model::Model& m, const calibration::CalibData& d, model::Observer* obs,
                 const char* label, bool progress) {
  Progress bar(label, progress ? d.n_samples : 0, "win");
  std::vector<float> logits(static_cast<size_t>(d.seq_len * m.vocab()));
  for (int64_t i = 0; i < d.n_samples; ++i) {
    m.forward(d.window(i), 1, d.seq_len, logits.data(), obs);
    if (progress) bar.add(1);
  }
  bar.finish();
}

model::EvalReport measure_drift(const model::Model& m, const model::Model& ref,
                                      const calibration::CalibData& d, bool progress) {
  return model::evaluate(m, &ref, d.tokens, d.seq_len, 1, progress);
}

WeightStore open_compress_source(const CompressRunOptions& o) {
  if (o.out_path.empty()) throw UsageError("an output path is required (-o)");
  if (o.drift_samples < 0) throw UsageError("--drift-samples must not be negative");
  WeightStore ws = formats::open_model(o.model_path);
  IoPlan io;
  io.model_inputs(ws);
  io.inputs(o.calib.paths);
  io.model_output(o.out_path);
  io.output(o.json_out, "--json");
  io.check();
  return ws;
}

nlohmann::json chain_recipe(const WeightStore& src, nlohmann::json step) {
  step["dsq_version"] = DSQ_VERSION;
  if (src.metadata.contains("recipe") && !src.metadata["recipe"].is_null())
    step["parent"] = src.metadata["recipe"];
  return step;
}

uint64_t write_output(const WeightStore& ws, const std::string& path, const nlohmann::json& recipe,
                      int zstd_level, bool progress) {
  formats::SinkOptions o;
  o.zstd_level = zstd_level;
  o.recipe = recipe;
  o.progress = progress;
  set_sink_tokenizer(o, ws);
  return formats::write_model(ws, path, o).file_bytes;
}

}  // namespace dsq::jobs
