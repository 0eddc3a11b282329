#include "jobs/distill.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "formats/format_table.h"
#include "jobs/compress_common.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/model/model.h"
#include "lib/train/teacher_cache.h"
#include "lib/train/train_model.h"

namespace dsq::jobs {

using json = nlohmann::json;
namespace fs = std::filesystem;

void to_json(json& j, const DistillReport& r) {
  json curve = json::array();
  for (const auto& p : r.curve)
    curve.push_back({{"step", p.step},
                     {"tokens", p.tokens},
                     {"minutes", p.minutes},
                     {"train_loss", p.train_loss},
                     {"heldout_kl", p.heldout_kl},
                     {"lr", p.lr}});
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
       {"train_windows", r.train_windows},
       {"heldout_windows", r.heldout_windows},
       {"seq_len", r.seq_len},
       {"steps", r.steps},
       {"batch", r.batch},
       {"accum", r.accum},
       {"tokens_trained", r.tokens_trained},
       {"resumed_at", r.resumed_at < 0 ? json(nullptr) : json(r.resumed_at)},
       {"teacher_cached", r.teacher_cached},
       {"teacher_seconds", r.teacher_seconds},
       {"train_seconds", r.train_seconds},
       {"tokens_per_second", r.tokens_per_second},
       {"heldout_kl_before", r.heldout_kl_before},
       {"heldout_kl_after", r.heldout_kl_after},
       {"curve", curve},
       {"recipe", r.recipe},
       {"file_bytes", r.file_bytes},
       {"seconds", r.seconds}};
}

std::string format_distill_report(const DistillReport& r) {
  std::string s = strprintf("%8s %10s %8s %12s %12s %10s\n", "step", "tokens", "minutes",
                            "train_loss", "heldout_kl", "lr");
  for (const auto& p : r.curve)
    s += strprintf("%8lld %10lld %8.2f %12.6f %12.6f %10.3g\n", static_cast<long long>(p.step),
                   static_cast<long long>(p.tokens), p.minutes, p.train_loss, p.heldout_kl, p.lr);
  const double rec = r.heldout_kl_before > 0
                         ? 100.0 * (r.heldout_kl_before - r.heldout_kl_after) / r.heldout_kl_before
                         : 0.0;
  s += strprintf("held-out KL    %.6f -> %.6f (%.1f%% recovered; %s, top-%lld of %lld, T=%g)\n",
                 r.heldout_kl_before, r.heldout_kl_after, rec, r.loss.c_str(),
                 static_cast<long long>(r.top_k), static_cast<long long>(r.vocab), r.temperature);
  s += strprintf("trained        %s (%lld of %lld parameters)\n", r.trains == "scales"
                 ? "group scales, norms and biases (codes frozen)" : "every weight",
                 static_cast<long long>(r.n_trainable), static_cast<long long>(r.n_params));
  s += strprintf("               %lld steps x %lld windows x %lld ids = %lld tokens, %.0f tokens/s "
                 "(teacher pass %.1f s%s)\n",
                 static_cast<long long>(r.steps), static_cast<long long>(r.batch * r.accum),
                 static_cast<long long>(r.seq_len), static_cast<long long>(r.tokens_trained),
                 r.tokens_per_second, r.teacher_seconds, r.teacher_cached ? ", cached" : "");
  return s;
}

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The training windows in the order of epoch e: a seeded Fisher-Yates shuffle.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  uint64_t s = seed * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(splitmix64(s) % static_cast<uint64_t>(i + 1))]);
  return p;
}

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

void write_state(const std::string& path, const json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(1) << "\n";
    f.flush();
    if (!f) throw IoError("'" + tmp + "': cannot write (disk full?)");
  }
  fs::rename(tmp, path);
}

// Removes a work directory this run created when the run fails before its first checkpoint:
// nothing in it is worth resuming then, and a corrected rerun must not be told to --resume.
struct FreshWorkDir {
  std::string dir;
  bool armed = false;
  ~FreshWorkDir() {
    if (!armed) return;
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

void maybe_kill(int64_t step) {
  if (const char* env = std::getenv(kDistillKillEnv); env && std::to_string(step) == env)
    ::kill(::getpid(), SIGKILL);
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
    io.output(o.out_path, "-o");
    io.output(o.json_out, "--json");
    io.check();
  }
  train::check_trainable(student, "'" + o.student_path + "'");
  if (teacher_ws.config.vocab_size != student.config.vocab_size)
    throw ConfigError(strprintf("the teacher '%s' has a vocabulary of %lld ids, the student '%s' %lld: "
                                "distillation needs the same tokenizer",
                                o.teacher_path.c_str(), static_cast<long long>(teacher_ws.config.vocab_size),
                                o.student_path.c_str(), static_cast<long long>(student.config.vocab_size)));
  CalibSplit data = load_calib_split(student, o.data, o.heldout_paths.empty() ? o.heldout : 0);
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
  const int64_t steps = o.steps > 0 ? o.steps
                                    : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(
                                                               o.epochs * static_cast<double>(n_fit) /
                                                               static_cast<double>(o.batch * o.accum))));
  train::AdamWOptions adam = o.adam;
  adam.total = steps;
  if (adam.warmup < 0) adam.warmup = steps / 20;
  const int64_t eval_every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, steps / 10);
  const int64_t ckpt_every = o.checkpoint_every > 0 ? o.checkpoint_every : eval_every;

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
  const json recipe = chain_recipe(student, step);
  // What the saved state must agree with to be resumed (the report cadence may change).
  const json state_key = recipe;

  // Work directory: state.json, teacher.topk, checkpoint.bin.
  const std::string state_path = work + "/state.json", cache_path = work + "/teacher.topk",
                    ckpt_path = work + "/checkpoint.bin";
  if (fs::exists(work) && !o.resume)
    throw UsageError("'" + work + "' exists (an interrupted run?): pass --resume to continue it, "
                     "or delete it to start over");
  if (o.resume && fs::exists(state_path)) {
    std::ifstream f(state_path);
    const json s = json::parse(f, nullptr, false);
    if (s.is_discarded() || !s.is_object() || s.value("recipe", json()) != state_key)
      throw ConfigError("'" + work + "' was started with other options or inputs: rerun the "
                        "original command, or delete it to start over");
  }
  FreshWorkDir fresh{work};
  if (!fs::exists(state_path)) {
    std::error_code ec;
    fs::create_directories(work, ec);
    if (ec) throw IoError("'" + work + "': cannot create: " + ec.message());
    fresh.armed = true;
    write_state(state_path, json{{"recipe", state_key}});
  }

  DistillReport r;
  r.student = o.student_path;
  r.teacher = o.teacher_path;
  r.out = o.out_path;
  r.loss = train::loss_name(o.loss.kind);
  r.temperature = o.loss.temperature;
  r.beta = o.loss.beta;
  r.top_k = k;
  r.vocab = vocab;
  r.train_windows = n_fit;
  r.heldout_windows = n_held;
  r.seq_len = L;
  r.steps = steps;
  r.batch = o.batch;
  r.accum = o.accum;
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
  train::TrainModel<float> m = train::TrainModel<float>::from_store(student, "'" + o.student_path + "'");
  r.n_params = m.n_params();
  r.n_trainable = m.n_trainable();
  r.trains = m.scale_tuning() ? "scales" : "weights";
  train::AdamW opt(adam, m.params());
  const train::LossSpec heldout_spec{train::LossKind::kForwardKl, o.loss.temperature, 0.5};
  // Loss over rows of a batch whose window i starts at cache row row_of[i] * L.
  auto row_loss = [&](const std::vector<int64_t>& first_row, const train::LossSpec& spec,
                      double scale) {
    return [&, spec, scale](int64_t row0, int64_t n, const float* logits, float* dl) {
      std::vector<double> per(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 8)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r0 = row0 + i;
        const train::TeacherRow t = cache->row(first_row[static_cast<size_t>(r0 / L)] + r0 % L);
        per[static_cast<size_t>(i)] = train::distill_row<float>(
            logits + i * vocab, vocab, t, spec, dl ? dl + i * vocab : nullptr, scale);
      }
      double s = 0.0;
      for (double x : per) s += x;
      return s;
    };
  };
  auto heldout_kl = [&]() {
    double total = 0.0;
    for (int64_t i = 0; i < n_held; i += o.batch) {
      const int64_t nb = std::min(o.batch, n_held - i);
      std::vector<int64_t> first(static_cast<size_t>(nb));
      for (int64_t j = 0; j < nb; ++j) first[static_cast<size_t>(j)] = (n_fit + i + j) * L;
      total += m.forward_loss(std::span<const int32_t>(data.drift.tokens.data() + i * L,
                                                       static_cast<size_t>(nb * L)),
                              nb, L, row_loss(first, heldout_spec, 1.0));
    }
    return total / static_cast<double>(n_held * L);
  };

  int64_t done = 0;
  double train_seconds = 0.0;
  double loss_since = 0.0;  // summed mean step losses since the last curve point
  int64_t steps_since = 0;
  if (o.resume && fs::exists(ckpt_path)) {
    const json extra = opt.load(ckpt_path, m.params());
    done = opt.steps_done();
    train_seconds = extra.value("train_seconds", 0.0);
    loss_since = extra.value("loss_since", 0.0);
    steps_since = extra.value("steps_since", int64_t{0});
    r.heldout_kl_before = extra.value("heldout_kl_before", 0.0);
    for (const auto& p : extra.value("curve", json::array()))
      r.curve.push_back({p.at("step").get<int64_t>(), p.at("tokens").get<int64_t>(),
                         p.at("minutes").get<double>(), p.at("train_loss").get<double>(),
                         p.at("heldout_kl").get<double>(), p.at("lr").get<double>()});
    r.resumed_at = done;
    log_info(strprintf("resuming '%s' at step %lld of %lld", work.c_str(),
                       static_cast<long long>(done), static_cast<long long>(steps)));
  } else {
    r.heldout_kl_before = heldout_kl();
    r.curve.push_back({0, 0, 0.0, 0.0, r.heldout_kl_before, 0.0});
  }
  const int64_t tokens_per_step = o.batch * o.accum * L;
  const double scale = 1.0 / static_cast<double>(tokens_per_step);
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch * L));
  Progress bar("distill", o.progress ? steps : 0, "step");
  bar.set(done);
  auto ts = std::chrono::steady_clock::now();
  for (int64_t s = done; s < steps; ++s) {
    double step_loss = 0.0;
    for (int64_t a = 0; a < o.accum; ++a) {
      std::vector<int64_t> first(static_cast<size_t>(o.batch));
      for (int64_t j = 0; j < o.batch; ++j) {
        const int64_t u = (s * o.accum + a) * o.batch + j;  // position in the endless window stream
        if (u / n_fit != cached_epoch) {
          cached_epoch = u / n_fit;
          order = epoch_order(n_fit, o.data.seed, cached_epoch);
        }
        const int64_t win = order[static_cast<size_t>(u % n_fit)];
        first[static_cast<size_t>(j)] = win * L;
        std::copy_n(data.fit.tokens.data() + win * L, L, tokens.data() + j * L);
      }
      step_loss += m.forward_backward(tokens, o.batch, L, row_loss(first, o.loss, scale));
    }
    const double lr = train::lr_at(adam, s);
    opt.step(m.params());
    m.zero_grad();
    loss_since += step_loss * scale;  // mean per token of this step
    ++steps_since;
    const int64_t n = s + 1;
    bar.set(n);
    if (n % eval_every == 0 || n == steps) {
      train_seconds += seconds_since(ts);
      const double kl = heldout_kl();
      ts = std::chrono::steady_clock::now();
      r.curve.push_back({n, n * tokens_per_step, train_seconds / 60.0, loss_since / steps_since, kl, lr});
      log_info(strprintf("step %lld/%lld  %lld tokens  loss %.5f  held-out KL %.5f  lr %.3g",
                         static_cast<long long>(n), static_cast<long long>(steps),
                         static_cast<long long>(n * tokens_per_step), loss_since / steps_since, kl, lr));
      loss_since = 0.0;
      steps_since = 0;
    }
    if (n % ckpt_every == 0 && n < steps) {
      const double secs = train_seconds + seconds_since(ts);
      json curve = json::array();
      for (const auto& p : r.curve)
        curve.push_back({{"step", p.step}, {"tokens", p.tokens}, {"minutes", p.minutes},
                         {"train_loss", p.train_loss}, {"heldout_kl", p.heldout_kl}, {"lr", p.lr}});
      opt.save(ckpt_path, m.params(),
               {{"train_seconds", secs}, {"heldout_kl_before", r.heldout_kl_before}, {"curve", curve},
                {"loss_since", loss_since}, {"steps_since", steps_since}});
      fresh.armed = false;  // from now on the directory is worth resuming
    }
    maybe_kill(n);
  }
  bar.finish();
  train_seconds += seconds_since(ts);
  r.train_seconds = train_seconds;
  r.tokens_trained = steps * tokens_per_step;
  const int64_t trained_here = (steps - std::max<int64_t>(0, r.resumed_at)) * tokens_per_step;
  r.tokens_per_second = train_seconds > 0 ? static_cast<double>(trained_here) / train_seconds : 0.0;
  r.heldout_kl_after = r.curve.back().heldout_kl;

  // Phase 3: the output.
  m.store_into(student);
  r.file_bytes = write_output(student, o.out_path, recipe, o.zstd_level, o.progress);
  fresh.armed = true;  // done: the work directory goes
  r.seconds = seconds_since(t0);
  if (!o.json_out.empty()) write_json_file(o.json_out, json(r));
  return r;
}

}  // namespace dsq::jobs
