#include "jobs/distill.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "formats/format_table.h"
#include "jobs/compress_common.h"
#include "jobs/job_util.h"
#include "jobs/train_common.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/model/model.h"
#include "lib/train/teacher_cache.h"
#include "lib/train/train_model.h"

namespace dsq::jobs {

using json = nlohmann::json;

void to_json(json& j, const DistillReport& r) {
  j = {{"student", r.student},
       {"teacher", r.teacher},
       {"out", r.out},
       {"loss", r.loss},
       {"temperature", r.temperature},
       {"beta", r.beta},
       {"top_k", r.top_k},
       {"vocab", r.vocab},
       {"params", r.n_params},
       {"trainable_params", r.n_trainable},
       {"trains", r.trains},
       {"zeros_moved", r.zeros_moved},
       {"teacher_cached", r.teacher_cached},
       {"teacher_seconds", r.teacher_seconds},
       {"recipe", r.recipe},
       {"file_bytes", r.file_bytes},
       {"seconds", r.seconds}};
  add_run_json(j, r.run, "heldout_kl", "heldout_kl_before", "heldout_kl_after",
               [](double x) { return x; });
}

std::string format_distill_report(const DistillReport& r) {
  const TrainLoopResult& t = r.run.loop;
  std::string s = format_curve(t.curve, "heldout_kl", [](double x) { return x; });
  const double rec =
      t.heldout_before > 0 ? 100.0 * (t.heldout_before - t.heldout_after) / t.heldout_before : 0.0;
  s += strprintf("held-out KL    %.6f -> %.6f (%.1f%% recovered; %s, top-%lld of %lld, T=%g)\n",
                 t.heldout_before, t.heldout_after, rec, r.loss.c_str(),
                 static_cast<long long>(r.top_k), static_cast<long long>(r.vocab), r.temperature);
  s += strprintf("trained        %s (%lld of %lld parameters)\n",
                 r.trains == "scales"         ? "group scales, norms and biases (codes frozen)"
                 : r.trains == "scales+zeros" ? "group scales and zero points, norms and biases (codes frozen)"
                                              : "every weight",
                 static_cast<long long>(r.n_trainable), static_cast<long long>(r.n_params));
  if (r.trains == "scales+zeros")
    s += strprintf("               %lld zero points moved\n", static_cast<long long>(r.zeros_moved));
  s += strprintf("               %lld steps x %lld windows x %lld ids = %lld tokens, %.0f tokens/s "
                 "(teacher pass %.1f s%s)\n",
                 static_cast<long long>(r.run.steps), static_cast<long long>(r.run.batch * r.run.accum),
                 static_cast<long long>(r.run.seq_len), static_cast<long long>(t.tokens_trained),
                 t.tokens_per_second, r.teacher_seconds, r.teacher_cached ? ", cached" : "");
  return s;
}

namespace {

void validate(const DistillOptions& o) {
  if (o.student_path.empty()) throw UsageError("a student model is required");
  if (o.teacher_path.empty()) throw UsageError("a teacher model is required (--teacher)");
  if (o.out_path.empty()) throw UsageError("an output path is required (-o)");
  if (o.data.paths.empty()) throw UsageError("training data is required (--data FILE)");
  if (o.batch <= 0 || o.accum <= 0) throw UsageError("--batch and --accum must be positive");
  if (o.steps < 0) throw UsageError("--steps must not be negative");
  if (!(o.epochs > 0.0) || !std::isfinite(o.epochs)) throw UsageError("--epochs must be positive");
  if (o.heldout < 1) throw UsageError("--heldout must be at least 1 window");
  if (o.top_k < 0) throw UsageError("--top-k must not be negative (0 = the whole vocabulary)");
  if (!(o.loss.temperature > 0.0) || !std::isfinite(o.loss.temperature))
    throw UsageError("--temperature must be positive");
  if (!(o.loss.beta > 0.0 && o.loss.beta < 1.0)) throw UsageError("--beta must be in (0, 1)");
  if (!(o.adam.lr > 0.0) || !std::isfinite(o.adam.lr)) throw UsageError("--lr must be positive");
  if (!(o.adam.min_lr_ratio >= 0.0 && o.adam.min_lr_ratio <= 1.0))
    throw UsageError("--min-lr-ratio must be in [0, 1]");
  if (!(o.adam.weight_decay >= 0.0)) throw UsageError("--weight-decay must not be negative");
  if (!(o.adam.clip >= 0.0)) throw UsageError("--clip must not be negative");
  if (o.eval_every < 0 || o.checkpoint_every < 0)
    throw UsageError("--eval-every and --checkpoint-every must not be negative");
}

}  // namespace

DistillReport run_distill(const DistillOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(o);
  WeightStore student = formats::open_model(o.student_path);
  // The teacher's store is dropped after its pass (phase 1): its mapped pages leave the RSS.
  std::optional<WeightStore> teacher_store(formats::open_model(o.teacher_path));
  const WeightStore& teacher_ws = *teacher_store;
  const std::string work = o.out_path + ".partial";
  {
    IoPlan io;
    io.model_inputs(student);
    io.model_inputs(teacher_ws);
    io.inputs(o.data.paths);
    io.inputs(o.heldout_paths);
    io.model_output(o.out_path);
    io.output(o.json_out, "--json");
    io.check();
  }
  train::check_trainable(student, "'" + o.student_path + "'");
  if (teacher_ws.config.vocab_size != student.config.vocab_size)
    throw ConfigError(strprintf("the teacher '%s' has a vocabulary of %lld ids, the student '%s' %lld: "
                                "distillation needs the same tokenizer",
                                o.teacher_path.c_str(), static_cast<long long>(teacher_ws.config.vocab_size),
                                o.student_path.c_str(), static_cast<long long>(student.config.vocab_size)));
  CalibSplit data = load_calib_split(student, o.data, o.heldout_paths.empty() ? o.heldout : 0,
                                     kTrainingWindowFlags);
  if (!o.heldout_paths.empty()) {
    calibration::CalibOptions h = o.data;
    h.paths = o.heldout_paths;
    h.n_samples = o.heldout;
    h.seq_len = data.fit.seq_len;
    const std::unique_ptr<text::Tokenizer> tok = optional_tokenizer(student);
    data.drift = calibration::load_calib_data(h, student.config.vocab_size,
                                              static_cast<int32_t>(student.config.bos_id), tok.get());
    if (data.drift.seq_len != data.fit.seq_len)
      throw UsageError("the --heldout-data files are shorter than one window of --seq-len ids");
    data.recipe["heldout"] = data.drift.recipe;
  }
  const int64_t L = data.fit.seq_len, n_fit = data.fit.n_samples, n_held = data.drift.n_samples;
  if (n_held == 0) throw UsageError("the data file is too short for held-out windows");
  const int64_t vocab = student.config.vocab_size;
  const int64_t k = o.top_k == 0 ? vocab : std::min(o.top_k, vocab);
  TrainLoopOptions lo = resolve_schedule(o.steps, o.epochs, n_fit, o.batch, o.accum, o.adam,
                                         o.eval_every, o.checkpoint_every);
  const int64_t steps = lo.steps;
  const train::AdamWOptions& adam = lo.adam;

  json step = {{"step", "distill"},
               {"teacher", o.teacher_path},
               {"student", o.student_path},
               {"loss", train::loss_name(o.loss.kind)},
               {"temperature", o.loss.temperature},
               {"top_k", k},
               {"steps", steps},
               {"batch", o.batch},
               {"accum", o.accum},
               {"lr", adam.lr},
               {"min_lr_ratio", adam.min_lr_ratio},
               {"warmup", adam.warmup},
               {"weight_decay", adam.weight_decay},
               {"clip", adam.clip},
               {"data", data.recipe}};
  if (o.loss.kind == train::LossKind::kJsd) step["beta"] = o.loss.beta;
  if (o.tune_zeros) step["tune_zeros"] = true;
  const json recipe = chain_recipe(student, step);
  // What the saved state must agree with to be resumed (the report cadence may change).
  const json state_key = recipe;

  // Work directory: state.json, teacher.topk, checkpoint.bin.
  const std::string cache_path = work + "/teacher.topk", ckpt_path = work + "/checkpoint.bin";
  FreshWorkDir fresh{work};
  fresh.armed = open_work_dir(work, state_key, o.resume);

  DistillReport r;
  r.student = o.student_path;
  r.teacher = o.teacher_path;
  r.out = o.out_path;
  r.loss = train::loss_name(o.loss.kind);
  r.temperature = o.loss.temperature;
  r.beta = o.loss.beta;
  r.top_k = k;
  r.vocab = vocab;
  r.run.train_windows = n_fit;
  r.run.heldout_windows = n_held;
  r.run.seq_len = L;
  r.run.steps = steps;
  r.run.batch = o.batch;
  r.run.accum = o.accum;
  r.recipe = recipe;

  // Phase 1: the teacher's soft labels (training windows, then held-out windows).
  json sources = json::array();
  for (const auto& s : teacher_ws.sources) sources.push_back(s.path);
  const json cache_key = {{"teacher", sources}, {"data", data.recipe}, {"seq_len", L},
                          {"train_windows", n_fit}, {"heldout_windows", n_held}};
  std::optional<train::TeacherCache> cache = train::TeacherCache::open_if_matches(cache_path, cache_key);
  if (cache && (cache->k() != k || cache->temperature() != o.loss.temperature ||
                cache->rows() != (n_fit + n_held) * L || cache->vocab() != vocab))
    cache.reset();
  r.teacher_cached = cache.has_value();
  if (!cache) {
    const auto tt = std::chrono::steady_clock::now();
    const model::Model teacher = model::Model::load(teacher_ws);
    train::TeacherCacheWriter w(cache_path, k, vocab, (n_fit + n_held) * L, o.loss.temperature,
                                cache_key);
    const int64_t per = std::max<int64_t>(1, std::min(o.batch, (int64_t{1} << 26) / (L * vocab)));
    Progress bar("teacher", o.progress ? n_fit + n_held : 0, "win");
    std::vector<float> logits;
    for (const calibration::CalibData* part : {&data.fit, &data.drift})
      for (int64_t i = 0; i < part->n_samples; i += per) {
        const int64_t nb = std::min(per, part->n_samples - i);
        logits.resize(static_cast<size_t>(nb * L * vocab));
        teacher.forward(std::span<const int32_t>(part->tokens.data() + i * L, static_cast<size_t>(nb * L)),
                        nb, L, logits.data());
        w.add(logits.data(), nb * L);
        bar.add(nb);
      }
    bar.finish();
    w.finish();
    cache = train::TeacherCache::open_if_matches(cache_path, cache_key);
    DSQ_ASSERT(cache.has_value(), "the teacher cache just written does not open");
    r.teacher_seconds = seconds_since(tt);
  }
  teacher_store.reset();

  // Phase 2: the student.
  train::TrainModel<float> m =
      train::TrainModel<float>::from_store(student, "'" + o.student_path + "'", o.tune_zeros);
  r.n_params = m.n_params();
  r.n_trainable = m.n_trainable();
  r.trains = m.zero_tuning() ? "scales+zeros" : m.scale_tuning() ? "scales" : "weights";
  const train::LossSpec heldout_spec{train::LossKind::kForwardKl, o.loss.temperature, 0.5};
  // The loss of a batch: window i of the batch reads the teacher rows of its cache window.
  const WindowLoss loss = [&](const std::vector<int64_t>& wins, bool heldout, double scale) {
    std::vector<int64_t> first(wins.size());
    for (size_t j = 0; j < wins.size(); ++j) first[j] = ((heldout ? n_fit : 0) + wins[j]) * L;
    const train::LossSpec spec = heldout ? heldout_spec : o.loss;
    return [&, first, spec, scale](int64_t row0, int64_t n, const float* logits, float* dl) {
      return sum_rows(n, [&](int64_t i) {
        const int64_t r0 = row0 + i;
        const train::TeacherRow t = cache->row(first[static_cast<size_t>(r0 / L)] + r0 % L);
        return train::distill_row<float>(logits + i * vocab, vocab, t, spec,
                                         dl ? dl + i * vocab : nullptr, scale);
      });
    };
  };
  lo.label = "distill";
  lo.heldout_name = "held-out KL";
  lo.seed = o.data.seed;
  lo.checkpoint_path = ckpt_path;
  lo.resume = o.resume;
  lo.progress = o.progress;
  lo.kill_env = kDistillKillEnv;
  r.run.loop = run_train_loop(m, data.fit, data.drift, L, loss, lo, [&] { fresh.armed = false; });

  // Phase 3: the output.
  r.zeros_moved = m.zeros_moved();
  m.store_into(student);
  r.file_bytes = write_output(student, o.out_path, recipe, o.zstd_level, o.progress);
  fresh.armed = true;  // done: the work directory goes
  r.seconds = seconds_since(t0);
  if (!o.json_out.empty()) write_json_file(o.json_out, json(r));
  return r;
}

}  // namespace dsq::jobs
