#include "jobs/train_common.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/core/rng.h"

namespace dsq::jobs {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The training windows in the order of epoch e: a seeded Fisher-Yates shuffle.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  uint64_t s = seed * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(splitmix64(s) % static_cast<uint64_t>(i + 1))]);
  return p;
}

json curve_json(const std::vector<TrainPoint>& curve) {
  json c = json::array();
  for (const auto& p : curve)
    c.push_back({{"step", p.step}, {"tokens", p.tokens}, {"minutes", p.minutes},
                 {"train_loss", p.train_loss}, {"heldout", p.heldout}, {"lr", p.lr}});
  return c;
}

}  // namespace

double sum_rows(int64_t n, const std::function<double(int64_t)>& f) {
  std::vector<double> per(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t i = 0; i < n; ++i) per[static_cast<size_t>(i)] = f(i);
  double sum = 0.0;
  for (double x : per) sum += x;
  return sum;
}

void add_run_json(json& j, const TrainRun& r, const std::string& point_key,
                  const std::string& before_key, const std::string& after_key,
                  double (*value)(double)) {
  json curve = json::array();
  for (const auto& p : r.loop.curve)
    curve.push_back({{"step", p.step}, {"tokens", p.tokens}, {"minutes", p.minutes},
                     {"train_loss", p.train_loss}, {point_key, value(p.heldout)}, {"lr", p.lr}});
  j["train_windows"] = r.train_windows;
  j["heldout_windows"] = r.heldout_windows;
  j["seq_len"] = r.seq_len;
  j["steps"] = r.steps;
  j["batch"] = r.batch;
  j["accum"] = r.accum;
  j["tokens_trained"] = r.loop.tokens_trained;
  j["resumed_at"] = r.loop.resumed_at < 0 ? json(nullptr) : json(r.loop.resumed_at);
  j["train_seconds"] = r.loop.train_seconds;
  j["tokens_per_second"] = r.loop.tokens_per_second;
  j[before_key] = value(r.loop.heldout_before);
  j[after_key] = value(r.loop.heldout_after);
  j["curve"] = std::move(curve);
}

std::string format_curve(const std::vector<TrainPoint>& curve, const std::string& title,
                         double (*value)(double)) {
  std::string s = strprintf("%8s %10s %8s %12s %12s %10s\n", "step", "tokens", "minutes",
                            "train_loss", title.c_str(), "lr");
  for (const auto& p : curve)
    s += strprintf("%8lld %10lld %8.2f %12.6f %12.6f %10.3g\n", static_cast<long long>(p.step),
                   static_cast<long long>(p.tokens), p.minutes, p.train_loss, value(p.heldout), p.lr);
  return s;
}

TrainLoopOptions resolve_schedule(int64_t steps, double epochs, int64_t train_windows,
                                  int64_t batch, int64_t accum, const train::AdamWOptions& adam,
                                  int64_t eval_every, int64_t checkpoint_every) {
  TrainLoopOptions o;
  o.steps = steps > 0 ? steps
                      : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(
                                                 epochs * static_cast<double>(train_windows) /
                                                 static_cast<double>(batch * accum))));
  o.batch = batch;
  o.accum = accum;
  o.adam = adam;
  o.adam.total = o.steps;
  if (o.adam.warmup < 0) o.adam.warmup = o.steps / 20;
  o.eval_every = eval_every > 0 ? eval_every : std::max<int64_t>(1, o.steps / 10);
  o.checkpoint_every = checkpoint_every > 0 ? checkpoint_every : o.eval_every;
  return o;
}

FreshWorkDir::~FreshWorkDir() {
  if (!armed) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

bool open_work_dir(const std::string& dir, const json& recipe, bool resume) {
  const std::string state = dir + "/state.json";
  if (fs::exists(dir) && !resume)
    throw UsageError("'" + dir + "' exists (an interrupted run?): pass --resume to continue it, "
                     "or delete it to start over");
  if (resume && fs::exists(state)) {
    std::ifstream f(state);
    const json s = json::parse(f, nullptr, false);
    if (s.is_discarded() || !s.is_object() || s.value("recipe", json()) != recipe)
      throw ConfigError("'" + dir + "' was started with other options or inputs: rerun the "
                        "original command, or delete it to start over");
    return false;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("'" + dir + "': cannot create: " + ec.message());
  write_json_file(state, json{{"recipe", recipe}});
  return true;
}

TrainLoopResult run_train_loop(train::TrainModel<float>& m, const calibration::CalibData& fit,
                               const calibration::CalibData& held, int64_t scored_per_window,
                               const WindowLoss& loss, const TrainLoopOptions& o,
                               const std::function<void()>& on_checkpoint) {
  const int64_t L = fit.seq_len, n_fit = fit.n_samples, n_held = held.n_samples;
  DSQ_ASSERT(n_fit > 0 && n_held > 0 && held.seq_len == L, "train loop: bad windows");
  train::AdamW opt(o.adam, m.params());
  auto heldout_loss = [&]() {
    double total = 0.0;
    for (int64_t i = 0; i < n_held; i += o.batch) {
      const int64_t nb = std::min(o.batch, n_held - i);
      std::vector<int64_t> wins(static_cast<size_t>(nb));
      std::iota(wins.begin(), wins.end(), i);
      total += m.forward_loss(
          std::span<const int32_t>(held.tokens.data() + i * L, static_cast<size_t>(nb * L)), nb, L,
          loss(wins, true, 1.0));
    }
    return total / static_cast<double>(n_held * scored_per_window);
  };

  TrainLoopResult r;
  int64_t done = 0;
  double loss_since = 0.0;  // summed mean step losses since the last curve point
  int64_t steps_since = 0;
  if (o.resume && fs::exists(o.checkpoint_path)) {
    const json extra = opt.load(o.checkpoint_path, m.params());
    done = opt.steps_done();
    if (done > o.steps)
      throw FormatError(strprintf("'%s': a checkpoint at step %lld of a run of %lld steps",
                                  o.checkpoint_path.c_str(), static_cast<long long>(done),
                                  static_cast<long long>(o.steps)));
    try {
      r.train_seconds = extra.value("train_seconds", 0.0);
      loss_since = extra.value("loss_since", 0.0);
      steps_since = extra.value("steps_since", int64_t{0});
      r.heldout_before = extra.value("heldout_before", 0.0);
      for (const auto& p : extra.value("curve", json::array()))
        r.curve.push_back({p.at("step").get<int64_t>(), p.at("tokens").get<int64_t>(),
                           p.at("minutes").get<double>(), p.at("train_loss").get<double>(),
                           p.at("heldout").get<double>(), p.at("lr").get<double>()});
    } catch (const json::exception& e) {
      throw FormatError("'" + o.checkpoint_path + "': the run's state in the checkpoint is malformed (" +
                        e.what() + ")");
    }
    r.resumed_at = done;
    log_info(strprintf("resuming '%s' at step %lld of %lld", o.checkpoint_path.c_str(),
                       static_cast<long long>(done), static_cast<long long>(o.steps)));
  } else {
    r.heldout_before = heldout_loss();
    r.curve.push_back({0, 0, 0.0, 0.0, r.heldout_before, 0.0});
  }
  const int64_t tokens_per_step = o.batch * o.accum * L;
  const double scale = 1.0 / static_cast<double>(o.batch * o.accum * scored_per_window);
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch * L));
  std::vector<int64_t> wins(static_cast<size_t>(o.batch));
  Progress bar(o.label, o.progress ? o.steps : 0, "step");
  bar.set(done);
  double seconds_here = 0.0;
  auto ts = std::chrono::steady_clock::now();
  for (int64_t s = done; s < o.steps; ++s) {
    double step_loss = 0.0;
    for (int64_t a = 0; a < o.accum; ++a) {
      for (int64_t j = 0; j < o.batch; ++j) {
        const int64_t u = (s * o.accum + a) * o.batch + j;  // position in the endless window stream
        if (u / n_fit != cached_epoch) {
          cached_epoch = u / n_fit;
          order = epoch_order(n_fit, o.seed, cached_epoch);
        }
        const int64_t win = order[static_cast<size_t>(u % n_fit)];
        wins[static_cast<size_t>(j)] = win;
        std::copy_n(fit.tokens.data() + win * L, L, tokens.data() + j * L);
      }
      step_loss += m.forward_backward(tokens, o.batch, L, loss(wins, false, scale));
    }
    const double lr = train::lr_at(o.adam, s);
    opt.step(m.params());
    m.zero_grad();
    loss_since += step_loss * scale;  // the step's mean per scored token
    ++steps_since;
    const int64_t n = s + 1;
    bar.set(n);
    if (n % o.eval_every == 0 || n == o.steps) {
      const double dt = seconds_since(ts);
      r.train_seconds += dt;
      seconds_here += dt;
      const double h = heldout_loss();
      ts = std::chrono::steady_clock::now();
      r.curve.push_back({n, n * tokens_per_step, r.train_seconds / 60.0, loss_since / steps_since, h, lr});
      log_info(strprintf("step %lld/%lld  %lld tokens  loss %.5f  %s %.5f  lr %.3g",
                         static_cast<long long>(n), static_cast<long long>(o.steps),
                         static_cast<long long>(n * tokens_per_step), loss_since / steps_since,
                         o.heldout_name.c_str(), h, lr));
      loss_since = 0.0;
      steps_since = 0;
    }
    if (n % o.checkpoint_every == 0 && n < o.steps) {
      opt.save(o.checkpoint_path, m.params(),
               {{"train_seconds", r.train_seconds + seconds_since(ts)},
                {"heldout_before", r.heldout_before},
                {"curve", curve_json(r.curve)},
                {"loss_since", loss_since},
                {"steps_since", steps_since}});
      on_checkpoint();
    }
    if (!o.kill_env.empty())
      if (const char* env = std::getenv(o.kill_env.c_str()); env && std::to_string(n) == env)
        ::kill(::getpid(), SIGKILL);
  }
  bar.finish();
  r.tokens_trained = o.steps * tokens_per_step;
  const int64_t trained_here = (o.steps - done) * tokens_per_step;
  r.tokens_per_second = seconds_here > 0 ? static_cast<double>(trained_here) / seconds_here : 0.0;
  r.heldout_after = r.curve.back().heldout;
  return r;
}

}  // namespace dsq::jobs
