#include "jobs/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "formats/dsq/dsq_util.h"
#include "formats/format_table.h"
#include "jobs/compress_common.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/hash.h"
#include "lib/core/log.h"
#include "lib/core/rng.h"
#include "lib/core/synthetic.h"
#include "lib/text/bpe_trainer.h"
#include "lib/text/tokenizer.h"
#include "lib/train/loss.h"
#include "lib/train/train_model.h"

namespace dsq::jobs {

using json = nlohmann::json;
namespace fs = std::filesystem;

void to_json(json& j, const TrainReport& r) {
  j = {{"out", r.out},
       {"arch", r.arch},
       {"tokenizer", r.tokenizer},
       {"vocab", r.vocab},
       {"params", r.n_params},
       {"d_model", r.d_model},
       {"n_layers", r.n_layers},
       {"d_ff", r.d_ff},
       {"bpe_merges", r.bpe_merges < 0 ? json(nullptr) : json(r.bpe_merges)},
       {"stream_tokens", r.stream_tokens},
       {"tokenizer_seconds", r.tokenizer_seconds},
       {"recipe", r.recipe},
       {"file_bytes", r.file_bytes},
       {"seconds", r.seconds}};
  add_run_json(j, r.run, "heldout_ppl", "heldout_ppl_before", "heldout_ppl_after",
               [](double nll) { return std::exp(nll); });
}

std::string format_train_report(const TrainReport& r) {
  const TrainLoopResult& t = r.run.loop;
  std::string s = format_curve(t.curve, "heldout_ppl", [](double nll) { return std::exp(nll); });
  s += strprintf("model          %s, %lld layers, d_model %lld, d_ff %lld, vocab %lld: %lld parameters\n",
                 r.arch.c_str(), static_cast<long long>(r.n_layers), static_cast<long long>(r.d_model),
                 static_cast<long long>(r.d_ff), static_cast<long long>(r.vocab),
                 static_cast<long long>(r.n_params));
  s += strprintf("tokenizer      %s (%.1f s)\n", r.tokenizer.c_str(), r.tokenizer_seconds);
  s += strprintf("held-out PPL   %.3f -> %.3f on %lld windows of %lld ids\n", std::exp(t.heldout_before),
                 std::exp(t.heldout_after), static_cast<long long>(r.run.heldout_windows),
                 static_cast<long long>(r.run.seq_len));
  s += strprintf("trained        %lld steps x %lld windows = %lld tokens (%lld windows of %lld in "
                 "the text), %.0f tokens/s, %.1f min\n",
                 static_cast<long long>(r.run.steps), static_cast<long long>(r.run.batch * r.run.accum),
                 static_cast<long long>(t.tokens_trained), static_cast<long long>(r.run.train_windows),
                 static_cast<long long>(r.run.seq_len), t.tokens_per_second, t.train_seconds / 60.0);
  return s;
}

namespace {

void validate(const TrainOptions& o) {
  if (o.text_paths.empty()) throw UsageError("training text is required (--text FILE)");
  if (o.out_path.empty()) throw UsageError("an output path is required (-o)");
  if (o.d_model <= 0 || o.n_layers <= 0 || o.n_heads <= 0 || o.n_kv_heads <= 0)
    throw UsageError("--d-model, --layers, --heads and --kv-heads must be positive");
  if (o.n_heads % o.n_kv_heads != 0)
    throw UsageError(strprintf("--heads %lld is not a multiple of --kv-heads %lld",
                               static_cast<long long>(o.n_heads), static_cast<long long>(o.n_kv_heads)));
  if (o.head_dim == 0 && o.d_model % o.n_heads != 0)
    throw UsageError("--d-model must be a multiple of --heads (or give --head-dim)");
  const int64_t hd = o.head_dim ? o.head_dim : o.d_model / o.n_heads;
  if (hd % 2 != 0 || hd <= 0) throw UsageError("the head dimension must be even and positive");
  if (o.d_ff < 0 || o.head_dim < 0) throw UsageError("--d-ff and --head-dim must not be negative");
  if (o.seq_len < 2) throw UsageError("--seq-len must be at least 2");
  if (o.heldout < 1) throw UsageError("--heldout must be at least 1 window");
  if (o.batch <= 0 || o.accum <= 0) throw UsageError("--batch and --accum must be positive");
  if (o.steps < 0) throw UsageError("--steps must not be negative");
  if (!(o.epochs > 0.0) || !std::isfinite(o.epochs)) throw UsageError("--epochs must be positive");
  if (!(o.adam.lr > 0.0) || !std::isfinite(o.adam.lr)) throw UsageError("--lr must be positive");
  if (o.tokenizer_from.empty())
    for (const auto& p : o.text_paths)
      if (fs::path(p).extension() != ".txt")
        throw UsageError("'" + p + "': dsq trains its tokenizer on .txt files; give --tokenizer-from "
                         "MODEL to train on ids or .jsonl");
}

int64_t default_d_ff(int64_t d) { return (8 * d / 3 + 31) / 32 * 32; }

// GPT-2's initialisation, as small-model pretraining uses it: every matrix N(0, 0.02^2), the ones
// that write the residual stream (attn_output, ffn_down) N(0, (0.02 / sqrt(2 layers))^2), norms 1,
// biases 0. (The synthetic models' uniform 1/fan_in init starts at a perplexity of ~1e12: its
// tied classifier sees embeddings of norm 1.) Deterministic: splitmix64 + Box-Muller per tensor.
void init_for_training(WeightStore& ws, uint64_t seed) {
  const int64_t layers = ws.config.n_layers;
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 12345;
  auto next = [&]() { return splitmix64_uniform(state); };
  for (const std::string& name : std::vector<std::string>(ws.names())) {
    const Tensor src = ws.get_f32(name);
    Tensor t(DType::kF32, src.shape());
    float* w = t.mutable_data<float>();
    const int64_t n = t.numel();
    if (t.ndim() == 1) {  // norms 1, biases 0
      std::fill(w, w + n, name.find("norm") != std::string::npos ? 1.0f : 0.0f);
    } else {
      const bool out = name.find("attn_output") != std::string::npos || name.find("ffn_down") != std::string::npos;
      const double sd = out ? 0.02 / std::sqrt(2.0 * static_cast<double>(layers)) : 0.02;
      for (int64_t i = 0; i < n; i += 2) {
        const double u1 = std::max(next(), 1e-300), u2 = next();
        const double r = std::sqrt(-2.0 * std::log(u1)) * sd, a = 2.0 * 3.14159265358979323846 * u2;
        w[i] = static_cast<float>(r * std::cos(a));
        if (i + 1 < n) w[i + 1] = static_cast<float>(r * std::sin(a));
      }
    }
    ws.replace(name, std::move(t));
  }
}

}  // namespace

TrainReport run_train(const TrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(o);
  std::optional<WeightStore> tok_model;
  if (!o.tokenizer_from.empty()) tok_model.emplace(formats::open_model(o.tokenizer_from));
  {
    IoPlan io;
    io.inputs(o.text_paths);
    if (tok_model) io.model_inputs(*tok_model);
    io.model_output(o.out_path);
    io.output(o.json_out, "--json");
    io.check();
  }
  TrainReport r;
  r.out = o.out_path;
  r.arch = o.arch;
  r.d_model = o.d_model;
  r.n_layers = o.n_layers;
  r.d_ff = o.d_ff ? o.d_ff : default_d_ff(o.d_model);
  const int64_t head_dim = o.head_dim ? o.head_dim : o.d_model / o.n_heads;
  // The row must be one the trainer has a backward for (before any work).
  {
    SyntheticShape probe;
    ModelConfig pc = synthetic_config(o.arch, probe);
    train::check_trainable(pc, "--arch " + o.arch);
  }

  json text_files = json::array();
  for (const auto& p : o.text_paths) text_files.push_back(p);
  json step = {{"step", "train"},
               {"text", text_files},
               {"tokenizer_from", o.tokenizer_from.empty() ? json(nullptr) : json(o.tokenizer_from)},
               {"vocab", o.tokenizer_from.empty() ? json(o.vocab) : json(nullptr)},
               {"arch", o.arch},
               {"d_model", o.d_model},
               {"n_layers", o.n_layers},
               {"n_heads", o.n_heads},
               {"n_kv_heads", o.n_kv_heads},
               {"head_dim", head_dim},
               {"d_ff", r.d_ff},
               {"seq_len", o.seq_len},
               {"heldout", o.heldout},
               {"steps", o.steps},
               {"epochs", o.epochs},
               {"batch", o.batch},
               {"accum", o.accum},
               {"lr", o.adam.lr},
               {"min_lr_ratio", o.adam.min_lr_ratio},
               {"warmup", o.adam.warmup},
               {"weight_decay", o.adam.weight_decay},
               {"clip", o.adam.clip},
               {"seed", o.seed},
               {"dsq_version", DSQ_VERSION}};
  const std::string work = o.out_path + ".partial";
  FreshWorkDir fresh{work};
  fresh.armed = open_work_dir(work, step, o.resume);

  // 1. The tokenizer.
  const auto tt = std::chrono::steady_clock::now();
  json tok_ref;
  if (tok_model) {
    if (!tok_model->metadata.contains("tokenizer"))
      throw ConfigError("'" + o.tokenizer_from + "' has no tokenizer to train with");
    tok_ref = tok_model->metadata["tokenizer"];
  } else {
    std::string text;
    for (const auto& p : o.text_paths) {
      const std::string t = text::load_text_file(p);
      text::require_text(t, p);
      text += t;
      if (!text.empty() && text.back() != '\n') text += '\n';
    }
    text::BpeTrainOptions bo;
    bo.vocab_size = o.vocab;
    const text::TrainedBpe bpe = text::train_bpe(text, bo);
    r.bpe_merges = bpe.merges;
    // The files travel embedded (as a .dsq read back holds them): the model never points at the
    // work directory, and the same run writes the same bytes wherever -o is.
    json files = json::object();
    for (const auto& [name, doc] : {std::pair{"tokenizer.json", &bpe.tokenizer_json},
                                    std::pair{"tokenizer_config.json", &bpe.config_json}}) {
      const std::string bytes = doc->dump();
      files[name] = {{"bytes", bytes.size()},
                     {"sha256", sha256_hex(bytes.data(), bytes.size())},
                     {"base64", formats::base64_encode(bytes)}};
    }
    tok_ref = {{"kind", "hf-json"}, {"path", "tokenizer.json"}, {"files", files}};
  }
  const std::unique_ptr<text::Tokenizer> tok = text::load_tokenizer(tok_ref);
  r.tokenizer = tok->description();
  r.tokenizer_seconds = seconds_since(tt);
  const int64_t vocab = tok_model && tok_model->has_config
                            ? std::max<int64_t>(tok_model->config.vocab_size, static_cast<int64_t>(tok->vocab_size()))
                            : static_cast<int64_t>(tok->vocab_size());
  r.vocab = vocab;

  // 2. The model, initialised.
  SyntheticShape shape;
  shape.n_layers = o.n_layers;
  shape.d_model = o.d_model;
  shape.n_heads = o.n_heads;
  shape.n_kv_heads = o.n_kv_heads;
  shape.head_dim = head_dim;
  shape.d_ff = r.d_ff;
  shape.vocab = vocab;
  shape.max_ctx = o.seq_len;
  ModelConfig c = synthetic_config(o.arch, shape);
  c.tied_embeddings = true;
  c.bos_id = tok->bos_id();
  c.eos_id = tok->eos_id();
  WeightStore ws = make_synthetic_model(c, o.seed);
  init_for_training(ws, o.seed);
  ws.metadata["tokenizer"] = tok_ref;

  // 3. Windows: every one in the text, a few held out.
  calibration::CalibOptions co;
  co.paths = o.text_paths;
  co.all_windows = true;
  co.seq_len = o.seq_len;
  co.seed = o.seed;
  const CalibSplit data = load_calib_split(ws, co, o.heldout, kTrainingWindowFlags);
  const int64_t L = data.fit.seq_len, n_fit = data.fit.n_samples;
  if (data.drift.n_samples == 0) throw UsageError("the text is too short for held-out windows");
  r.run.train_windows = n_fit;
  r.run.heldout_windows = data.drift.n_samples;
  r.run.seq_len = L;
  r.stream_tokens = data.recipe.value("stream_tokens", int64_t{0});
  TrainLoopOptions lo = resolve_schedule(o.steps, o.epochs, n_fit, o.batch, o.accum, o.adam,
                                         o.eval_every, o.checkpoint_every);

  train::TrainModel<float> m = train::TrainModel<float>::from_store(ws, "the new model");
  r.n_params = m.n_params();
  // Next-token cross-entropy: row t of a window predicts id t + 1 (the last row has no target).
  const WindowLoss loss = [&](const std::vector<int64_t>& wins, bool heldout, double scale) {
    const std::vector<int32_t>& toks = heldout ? data.drift.tokens : data.fit.tokens;
    return [&, wins, scale](int64_t row0, int64_t n, const float* logits, float* dl) {
      return sum_rows(n, [&](int64_t i) {
        const int64_t r0 = row0 + i, t = r0 % L;
        float* d = dl ? dl + i * vocab : nullptr;
        if (t == L - 1) {  // no next id
          if (d) std::fill(d, d + vocab, 0.0f);
          return 0.0;
        }
        const int32_t target = toks[static_cast<size_t>(wins[static_cast<size_t>(r0 / L)] * L + t + 1)];
        const float zero = 0.0f;
        const train::TeacherRow row{&target, &zero, 1, 0.0};
        return train::distill_row<float>(logits + i * vocab, vocab, row, train::LossSpec{}, d, scale);
      });
    };
  };
  lo.label = "train";
  lo.heldout_name = "held-out NLL";
  lo.seed = o.seed;
  lo.checkpoint_path = work + "/checkpoint.bin";
  lo.resume = o.resume;
  lo.progress = o.progress;
  lo.kill_env = kTrainKillEnv;
  r.run.steps = lo.steps;
  r.run.batch = o.batch;
  r.run.accum = o.accum;
  r.run.loop = run_train_loop(m, data.fit, data.drift, L - 1, loss, lo, [&] { fresh.armed = false; });

  // 4. The output.
  m.store_into(ws);
  json recipe = step;
  recipe["data"] = data.recipe;
  r.recipe = recipe;
  r.file_bytes = write_output(ws, o.out_path, recipe, o.zstd_level, o.progress);
  fresh.armed = true;  // done: the work directory goes
  r.seconds = seconds_since(t0);
  if (!o.json_out.empty()) write_json_file(o.json_out, json(r));
  return r;
}

}  // namespace dsq::jobs
