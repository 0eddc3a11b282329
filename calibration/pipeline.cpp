#include "calibration/pipeline.h"

#include "calibration/pipeline_impl.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>

#include "calibration/methods.h"
#include "calibration/pipeline_workdir.h"
#include "formats/hdf5/stats_file.h"
#include "lib/core/dist.h"
#include "lib/core/error.h"
#include "lib/core/memory.h"
#include "lib/core/json_io.h"
#include "lib/core/linalg.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/model/block.h"
#include "lib/model/fold.h"
#include "lib/model/model.h"
#include "lib/quant/qmatmul.h"
#include "lib/quant/rtn.h"
#include "lib/quant/solver.h"
#include "lib/text/tokenizer.h"

namespace dsq::calibration {
namespace detail {
namespace {

// The model's tokenizer when it has a usable one (only text calibration data needs it).
std::unique_ptr<text::Tokenizer> model_tokenizer_or_null(const WeightStore& src) {
  if (!src.metadata.contains("tokenizer")) return nullptr;
  try {
    return text::load_tokenizer(src.metadata["tokenizer"]);
  } catch (const Error& e) {
    log_debug(std::string("no tokenizer: ") + e.what());
    return nullptr;
  }
}

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The saved AWQ clips apply when the statistics were searched for the same bits, group and sym.
bool same_scheme(const json& saved_stats_recipe, const json& recipe) {
  const json saved = saved_stats_recipe.value("quantize", json::object());
  for (const char* key : {"bits", "group", "sym"})
    if (saved.value(key, json()) != recipe.value(key, json())) return false;
  return true;
}

}  // namespace

model::Linear& block_linear(model::BlockWeights& b, std::string_view short_name) {
  model::Linear* l = b.linear(short_name);
  DSQ_ASSERT(l != nullptr, "no block linear '%.*s'", static_cast<int>(short_name.size()),
             short_name.data());
  return *l;
}

bool contains(const std::vector<std::string_view>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

StatsAccumulator::StatsAccumulator(int64_t n)
    : n_(n), hsum_(static_cast<size_t>(n * n), 0.0), abs_sum_(static_cast<size_t>(n), 0.0),
      abs_max_(static_cast<size_t>(n), 0.0) {}

void StatsAccumulator::add(const float* x, int64_t rows) {
  linalg::gram_accumulate_f32(x, rows, n_, 1.0, hsum_.data());
  // Columns in blocks, one block per task: each column sums its rows in order, on any thread.
  constexpr int64_t kCols = 64;
#pragma omp parallel for schedule(static) if (rows * n_ >= (int64_t{1} << 18))
  for (int64_t j0 = 0; j0 < n_; j0 += kCols) {
    const int64_t j1 = std::min(n_, j0 + kCols);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * n_;
      for (int64_t j = j0; j < j1; ++j) {
        const double a = std::fabs(static_cast<double>(xr[j]));
        abs_sum_[static_cast<size_t>(j)] += a;
        abs_max_[static_cast<size_t>(j)] = std::max(abs_max_[static_cast<size_t>(j)], a);
      }
    }
  }
  tokens_ += rows;
}

h5::InputStats StatsAccumulator::finish(int64_t layer, std::string group,
                                        std::vector<std::string> linears) {
  h5::InputStats s;
  s.layer = layer;
  s.group = std::move(group);
  s.linears = std::move(linears);
  s.n_in = n_;
  s.n_tokens = tokens_;
  const double inv = tokens_ > 0 ? 1.0 / static_cast<double>(tokens_) : 0.0;
  for (auto& v : hsum_) v *= inv;
  for (auto& v : abs_sum_) v *= inv;
  s.hessian = std::move(hsum_);
  s.abs_mean = std::move(abs_sum_);
  s.abs_max = std::move(abs_max_);
  return s;
}

void CaptureObserver::on_linear_input(int64_t, std::string_view name, model::ActView x) {
  if (name != linear_) return;
  DSQ_ASSERT(x.cols == acc_.width(), "capture width mismatch");
  const auto t0 = Clock::now();
  acc_.add(x.data, x.rows);
  statistics_seconds_ += seconds_since(t0);
  if (keep_) keep_->insert(keep_->end(), x.data, x.data + x.rows * x.cols);
  if (stop_) throw StopForward{};
}

h5::InputStats CaptureObserver::finish(int64_t layer, const LinearGroup& g) {
  std::vector<std::string> linears;
  for (auto l : g.linears) linears.emplace_back(l);
  return acc_.finish(layer, std::string(g.name), std::move(linears));
}

void maybe_kill(const char* when, int64_t layer) {
  const char* env = std::getenv(kPipelineKillEnv);
  if (!env) return;
  std::string spec = env;
  if (const size_t at = spec.find('@'); at != std::string::npos) {  // "during:1@1": rank 1 only
    if (spec.substr(at + 1) != std::to_string(dist::rank())) return;
    spec.resize(at);
  }
  int sig = SIGKILL;
  for (const auto& [suffix, s] : {std::pair{":TERM", SIGTERM}, std::pair{":INT", SIGINT}})
    if (spec.ends_with(suffix)) {
      sig = s;
      spec.resize(spec.size() - std::string_view(suffix).size());
    }
  if (spec == std::string(when) + ":" + std::to_string(layer)) ::kill(::getpid(), sig);
}

CalibratedQuantizer::CalibratedQuantizer(const WeightStore& src, const QuantizeOptions& o)
    : src_(src), cfg_(src.config), arch_(require_arch(src.config.arch, o.model_path)), opts_(o),
      method_(find_quant_method(o.method)),
      solver_(method_.solver(o.method_options, o.mse_clip)),
      calib_opts_(calib_options(o.method_options)), awq_opts_(awq_options(o.method_options)),
      expert_calib_(expert_calib_options(o.method_options)) {
  const nlohmann::json rt = resolve_runtime_options(o.method_runtime);
  resume_ = rt["resume"].get<bool>();
  save_stats_ = rt["save_stats"].get<std::string>();
  load_stats_path_ = rt["load_stats"].get<std::string>();
  const bool calibrate = load_stats_path_.empty();
  if (calibrate && calib_opts_.paths.empty())
    throw UsageError("--method " + o.method + " needs calibration data (--calib FILE) or "
                     "--load-stats FILE.h5");
  if (awq()) {
    // Folding rescales a linear's input: a sparsified model's thresholds would no longer apply.
    for (const auto& name : src.names()) {
      if (src.entry(name).attrs.contains("act_threshold"))
        throw ConfigError("'" + o.model_path + "': tensor '" + name + "' has an activation "
                          "threshold: run --method " + o.method + " before dsq sparsify");
    }
  }
  json recipe = quantize_recipe(o, src.metadata.value("source_format", std::string()));
  // Every input is validated before the work directory exists, so a corrected rerun starts clean.
  if (calibrate) {
    const auto tc = Clock::now();
    const std::unique_ptr<text::Tokenizer> tok = model_tokenizer_or_null(src);
    calib_ = load_calib_data(calib_opts_, cfg_.vocab_size, static_cast<int32_t>(cfg_.bos_id),
                             tok.get());
    prof_.calibration_data = seconds_since(tc);
    if (calib_.seq_len > cfg_.max_ctx)
      throw UsageError(strprintf("--calib-len %lld exceeds the model's context length %lld",
                                 static_cast<long long>(calib_.seq_len),
                                 static_cast<long long>(cfg_.max_ctx)));
  } else {
    h5::run_isolated(load_stats_path_, [&] {  // a corrupt file may crash libhdf5: see hdf5_file.h
      const h5::Reader r(load_stats_path_);
      read_needed_stats(r, same_scheme(h5::read_stats_header(r).recipe, recipe));
    });
    load_stats_.emplace(load_stats_path_);
    const h5::StatsHeader h = h5::read_stats_header(*load_stats_);
    if (h.n_layers != cfg_.n_layers)
      throw ShapeError("'" + load_stats_path_ + "': statistics for " +
                       std::to_string(h.n_layers) + " blocks, the model has " +
                       std::to_string(cfg_.n_layers));
    // True-sequential statistics depend on everything that shaped the quantized prefix.
    const json saved = h.recipe.value("quantize", json::object());
    json a = saved.value("method_options", json::object()), b = recipe["method_options"];
    for (const char* key : {"bits", "group", "sym", "mse_clip", "skip", "method"}) {
      a[key] = saved.value(key, json());
      b[key] = recipe.value(key, json());
    }
    for (const auto& [key, value] : b.items()) {
      if (key.rfind("calib", 0) == 0 || key == "seed" || a.value(key, json()) == value) continue;
      log_warn("'" + load_stats_path_ + "': statistics were collected while quantizing with " +
               key + " = " + json_excerpt(a.value(key, json())) + " (true-sequential inputs); reusing " +
               "them with " + json_excerpt(value) + " is an approximation");
      break;
    }
    load_clips_ = same_scheme(h.recipe, recipe);
    recipe["load_stats"] = h.recipe;  // the resumable recipe depends on the statistics used
  }
  if (dist::size() > 1 && !save_stats_.empty() && cfg_.moe.n_experts > 0)
    log_warn("--save-stats under mpirun: the routed experts are not split among the ranks (rank "
             "0 writes their statistics, so every rank computes every expert; docs/MPI.md)");
  fresh_work_ = !std::filesystem::exists(o.out_path + ".partial");
  // Under MPI rank 0 owns the work directory; the others read its state once it is open.
  if (dist::is_root()) work_.emplace(o.out_path + ".partial", recipe, resume_);
  dist::barrier();
  if (!dist::is_root()) work_.emplace(o.out_path + ".partial", recipe, resume_, /*writer=*/false);
  if (work_->completed() > 0)
    log_info(strprintf("resuming after block %lld", static_cast<long long>(work_->completed() - 1)));
  if (calibrate && work_->completed() < cfg_.n_layers) {
    const int64_t rows = calib_.n_samples * calib_.seq_len, d = cfg_.d_model;
    if (work_->completed() == 0) {
      hidden_.resize(static_cast<size_t>(rows * d));
      model::Embedding::load(src).lookup(calib_.tokens, hidden_.data());
    } else {
      hidden_ = work_->load_acts(work_->completed(), rows, d);
    }
  }
  if (opts_.progress)
    bar_.emplace(o.method + " blocks", cfg_.n_layers, "blocks").set(work_->completed());
}

CalibratedQuantizer::~CalibratedQuantizer() {
  // The driver destroys the quantizer after writing the output: the work directory is no longer
  // needed unless the run is failing (an exception in flight keeps it for --resume). A directory
  // this run created and that holds no finished block is removed too: nothing to resume.
  if (!work_) return;
  const bool failing = std::uncaught_exceptions() > 0;
  if ((!failing && work_->completed() == cfg_.n_layers) ||
      (failing && fresh_work_ && work_->completed() == 0))
    work_->remove();
}

bool CalibratedQuantizer::selected_in_config(int64_t layer, std::string_view short_name) const {
  const ArchTensor* row = arch_.find(short_name);
  const LayerDims d = cfg_.layer(layer);
  if (!row || !row_in_layer(*row, cfg_, layer) ||
      (row->part == Part::kAttn ? d.n_heads : d.d_ff) == 0)
    return false;
  const std::string name = linear_name(layer, short_name);
  return src_.has(name) && opts_.quantizes(cfg_, name, src_.entry(name).dtype, &src_.entry(name).quant);
}

bool CalibratedQuantizer::moe_group(const LinearGroup& g) const {
  for (const auto l : g.linears)
    if (const ArchTensor* t = arch_.find(l); t && t->only == Only::kMoe) return true;
  return false;
}

void CalibratedQuantizer::read_needed_stats(const h5::Reader& r, bool clips) const {
  for (int64_t l = 0; l < cfg_.n_layers; ++l)
    for (const LinearGroup& g : arch_.linear_groups) {
      // Expert groups are stored per expert ("exp_in.17").
      const int64_t n_inst = g.per_expert ? cfg_.moe.n_experts : 1;
      for (int64_t e = 0; e < n_inst; ++e) {
        const int64_t ex = g.per_expert ? e : -1;
        const std::string gname = g.per_expert ? expert_name(g.name, e) : std::string(g.name);
        std::vector<std::string> targets;
        for (const auto s : g.linears)
          if (selected_in_config(l, model::group_member(s, ex))) targets.push_back(model::group_member(s, ex));
        if (targets.empty()) continue;
        const ArchTensor* first = arch_.find(g.linears.front());
        const int64_t n_in = dim_size(first->shape[1], cfg_, cfg_.layer(l));
        h5::read_input_stats(r, l, gname, n_in);
        if (!awq()) continue;
        std::vector<h5::AwqClip> clip_shapes;
        if (clips && solver_->clips())
          for (const auto& s : targets) {
            if (contains(g.no_clip, arch_.find(s)->short_name())) continue;
            const int64_t rows = dim_size(arch_.find(s)->shape[0], cfg_, cfg_.layer(l));
            clip_shapes.push_back(
                {s, rows, quant_layout(opts_.desc_for(linear_name(l, s)), rows, n_in).n_groups, {}});
          }
        h5::read_awq_search(r, l, gname, n_in, clip_shapes);
      }
    }
}

bool CalibratedQuantizer::selected(int64_t layer, std::string_view short_name,
                                   const model::BlockWeights& bw) const {
  const model::Linear* l = bw.linear(short_name);
  if (!l || l->empty()) return false;
  const std::string name = linear_name(layer, short_name);
  return opts_.quantizes(cfg_, name, src_.entry(name).dtype, &src_.entry(name).quant);
}

void CalibratedQuantizer::run_block(const model::BlockWeights& bw, Run mode, float* out,
                                    model::Observer* obs, int64_t n_samples, model::BlockPart part) {
  const int64_t T = calib_.seq_len, d = cfg_.d_model;
  DSQ_ASSERT(n_samples <= calib_.n_samples && (mode != Run::kInPlace || n_samples == calib_.n_samples),
             "run_block: bad sample count");
  const int64_t per = samples_per_chunk(T);
  if (bw.is_moe()) {
    // Attention chunk by chunk, then the MoE FFN over every row: each streamed expert is loaded
    // once per pass.
    std::vector<float> h(hidden_.begin(), hidden_.begin() + n_samples * T * d);
    bool stopped = false;
    for (int64_t s0 = 0; s0 < n_samples; s0 += per) {
      const int64_t nb = std::min(per, n_samples - s0);
      try {
        model::block_forward(bw, cfg_, h.data() + s0 * T * d, nb, T, obs, nullptr, 0,
                             model::BlockPart::kAttn);
      } catch (const StopForward&) {
        stopped = true;
      }
    }
    if (stopped) return;  // an observer of the attention's inputs has what it needs
    try {
      model::block_forward(bw, cfg_, h.data(), n_samples, T, obs, nullptr, 0,
                           model::BlockPart::kFfn);
    } catch (const StopForward&) {
      return;
    }
    if (mode == Run::kInPlace) hidden_ = std::move(h);
    if (mode == Run::kCopy) std::copy(h.begin(), h.end(), out);
    return;
  }
  ScratchFloats scratch;  // pooled: every collect pass needs one (lib/core/memory.h)
  if (mode == Run::kDiscard) scratch = ScratchFloats(std::min(per, n_samples) * T * d);
  for (int64_t s0 = 0; s0 < n_samples; s0 += per) {
    const int64_t nb = std::min(per, n_samples - s0);
    const float* in = hidden_.data() + s0 * T * d;
    float* x = mode == Run::kInPlace ? hidden_.data() + s0 * T * d
               : mode == Run::kCopy  ? out + s0 * T * d
                                     : scratch.data();
    if (mode != Run::kInPlace) std::copy(in, in + nb * T * d, x);
    try {
      model::block_forward(bw, cfg_, x, nb, T, obs, nullptr, 0, part);
    } catch (const StopForward&) {
    }
  }
}

h5::InputStats CalibratedQuantizer::collect(const model::BlockWeights& bw, int64_t layer,
                                            const LinearGroup& g, std::vector<float>* keep) {
  const std::string_view first = g.linears.front();
  const int64_t n = block_linear(const_cast<model::BlockWeights&>(bw), first).n_in();
  if (load_stats_) return h5::read_input_stats(*load_stats_, layer, std::string(g.name), n);
  CaptureObserver obs(first, n, /*stop=*/true, keep);
  run_block(bw, Run::kDiscard, nullptr, &obs, calib_.n_samples,
            attn_applied_ ? model::BlockPart::kFfn : model::BlockPart::kAll);
  prof_.statistics += obs.statistics_seconds();
  return obs.finish(layer, g);
}

bool CalibratedQuantizer::keeps_inputs(const model::BlockWeights& bw, const LinearGroup& g) const {
  if (load_stats_ || bw.is_moe() || g.linears.size() != 1) return false;
  const std::string_view l = g.linears.front();
  if (l != names::kAttnOutput && l != names::kFfnDown) return false;
  const int64_t n_in = block_linear(const_cast<model::BlockWeights&>(bw), l).n_in();
  const int64_t bytes = calib_.n_samples * calib_.seq_len * n_in * int64_t{sizeof(float)};
  return bytes <= kKeptInputsBytes;
}

void CalibratedQuantizer::advance_hidden(const model::BlockWeights& bw, model::BlockPart part) {
  const int64_t T = calib_.seq_len, d = cfg_.d_model, rows = calib_.n_samples * T;
  const std::string_view last =
      part == model::BlockPart::kAttn ? names::kAttnOutput : names::kFfnDown;
  if (part == model::BlockPart::kAll || kept_linear_ != last || kept_.empty() ||
      static_cast<int64_t>(kept_.size()) % rows != 0) {
    kept_.clear();
    kept_linear_ = {};
    run_block(bw, Run::kInPlace, nullptr, nullptr, calib_.n_samples, part);
    return;
  }
  // run_block's chunks, so that every product has the shapes of block_forward's.
  const int64_t n_in = static_cast<int64_t>(kept_.size()) / rows;
  const int64_t per = samples_per_chunk(T);
  for (int64_t s0 = 0; s0 < calib_.n_samples; s0 += per) {
    const int64_t nb = std::min(per, calib_.n_samples - s0);
    model::add_residual_linear(bw, cfg_, last, kept_.data() + s0 * T * n_in,
                               hidden_.data() + s0 * T * d, nb * T, nullptr);
  }
  kept_.clear();  // the capacity serves the next block: no fresh pages to fault in
  kept_linear_ = {};
}

bool CalibratedQuantizer::scale_group(model::BlockWeights& bw, int64_t layer,
                                      const LinearGroup& g) {
  std::vector<std::string_view> targets;
  for (const auto l : g.linears)
    if (selected(layer, l, bw)) targets.push_back(l);
  int64_t n_prod = 0;
  const std::vector<int64_t> map = model::fold_channel_map(bw, cfg_, g, &n_prod);
  if (targets.empty() || map.empty()) {
    if (!targets.empty())
      log_debug(strprintf("block %lld: group %s: AWQ scale not foldable into %s, skipped",
                          static_cast<long long>(layer), std::string(g.name).c_str(),
                          std::string(g.producer).c_str()));
    return false;
  }
  const int64_t n = static_cast<int64_t>(map.size());
  GroupScale gs;
  if (load_stats_) {
    const auto a = h5::read_awq_search(*load_stats_, layer, std::string(g.name), n, {});
    if (!a)
      throw FormatError("'" + load_stats_->path() + "': no AWQ scales for '" +
                        h5::stats_object(layer, std::string(g.name)) +
                        "' (statistics of a --method gptq run?)");
    gs.alpha = a->alpha;
    gs.scales.assign(a->scales.begin(), a->scales.end());
  } else {
    const h5::InputStats st = collect(bw, layer, g);
    std::vector<quant::AwqLinear> lins;
    for (const auto l : targets) {
      const model::Linear& lin = block_linear(bw, l);
      lins.push_back({lin.weight().data<float>(), lin.n_out()});
    }
    const quant::AwqScaleResult r =
        quant::awq_search_scales(lins, n, st.hessian.data(), st.abs_mean.data(), opts_.desc,
                                 awq_opts_, map.data(), n_prod);
    gs.alpha = r.alpha;
    gs.scales = r.scales;
    gs.search_rel = r.norm > 0 ? r.err / r.norm : 0.0;
    gs.search_rel_rtn = r.norm > 0 ? r.err_rtn / r.norm : 0.0;
  }
  model::fold_input_scale(bw, cfg_, g, gs.scales);
  scales_[std::string(g.name)] = std::move(gs);
  return true;
}

json CalibratedQuantizer::probe(quant::SolveInput in, const quant::SolveResult& own,
                               const std::vector<float>& h32) {
  const int64_t rows = in.rows, cols = in.cols;
  json out = json::array();
  // Candidates whose groups span the same columns here (g128 and g256 of a 64-wide row, g256 and
  // per channel up to 256) quantize identically: solved once.
  std::map<std::pair<QuantScheme, int64_t>, double> solved;
  const auto span = [&](const QuantDesc& d) {
    return std::pair{d.scheme, d.group == 0 ? cols : std::min<int64_t>(d.group, cols)};
  };
  if (in.desc.info().layout == SchemeLayout::kGroupedInt) solved[span(in.desc)] = own.out_err;
  for (const std::optional<QuantDesc>& c : opts_.probe) {
    double cost = 0.0;
    const bool grouped = c && c->info().layout == SchemeLayout::kGroupedInt;
    if (grouped && solved.count(span(*c))) {
      cost = solved[span(*c)];
    } else if (!c) {  // kept in f16: the rounding error
      const size_t n = static_cast<size_t>(rows * cols);
      std::vector<uint16_t> half(n);
      std::vector<float> e(n);
      convert_elements(DType::kF32, in.w, DType::kF16, half.data(), n);
      convert_elements(DType::kF16, half.data(), DType::kF32, e.data(), n);
      for (size_t k = 0; k < n; ++k) e[k] = in.w[k] - e[k];
      cost = quant::hessian_quadratic(e.data(), rows, cols, h32.data(), quant::kOutputErrorRows);
    } else {
      quant::SolveInput ci = in;
      ci.desc = *c;
      ci.saved_clip = nullptr;  // saved clips belong to in.desc
      cost = solver_->solve(ci).out_err;
      if (grouped) solved[span(*c)] = cost;
    }
    out.push_back({{"scheme", tensor_scheme_name(c)},
                   {"bits", tensor_scheme_bits(c, rows, cols)},
                   {"cost", cost}});
  }
  return out;
}

LinearResult CalibratedQuantizer::solve_linear(int64_t layer, std::string_view short_name,
                                               const Tensor& w, const h5::InputStats& st,
                                               const std::vector<float>& h32, bool clip,
                                               const GroupScale* gs, const std::string& group,
                                               h5::AwqSearch* awq_out, quant::GroupScratch* scratch) {
  const std::string name = linear_name(layer, short_name);
  const auto t0 = Clock::now();
  const int64_t rows = w.dim(0), cols = w.dim(1);
  LinearResult r;
  r.name = name;
  r.extra = {{"method", opts_.method}, {"calib_tokens", st.n_tokens}};
  if (st.routed_tokens >= 0) r.extra["routed_tokens"] = st.routed_tokens;
  quant::SolveInput in;
  in.name = name;
  in.w = w.data<float>();
  in.rows = rows;
  in.cols = cols;
  in.hessian = st.hessian.data();
  in.hessian_f32 = h32.data();
  in.desc = opts_.desc_for(name);
  in.clip = clip;
  in.scratch = scratch;
  std::optional<h5::AwqSearch> saved;  // clip ratios of a statistics file (AWQ)
  if (load_stats_ && load_clips_ && in.clip && solver_->clips()) {
    const QuantLayout L = quant_layout(in.desc, rows, cols);
    saved = h5::read_awq_search(*load_stats_, layer, group, cols,
                                {{std::string(short_name), rows, L.n_groups, {}}});
    if (saved) in.saved_clip = &saved->clips.front().ratios;
  }
  quant::SolveResult sr = solver_->solve(in);
  r.q = std::move(sr.q);
  r.error = sr.error;
  r.extra.update(sr.extra);
  const double norm = sr.out_norm, err = sr.out_err;
  if (awq_out && !sr.clip_ratios.empty()) {
    const QuantLayout L = quant_layout(in.desc, rows, cols);
    awq_out->clips.push_back({std::string(short_name), rows, L.n_groups, std::move(sr.clip_ratios)});
  }
  // Plain RTN of the unscaled weights for comparison: E_rtn diag(s) under the scaled input's H.
  const Tensor w0 = gs ? src_.entry(name).load().to(DType::kF32) : w;  // the unscaled W
  std::vector<float> e(static_cast<size_t>(rows * cols));
  quant::fake_quantize_rtn(w0.data<float>(), rows, cols, in.desc, e.data());
  const float* w0p = w0.data<float>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = static_cast<size_t>(i * cols + j);
      e[k] = (w0p[k] - e[k]) * (gs ? gs->scales[static_cast<size_t>(j)] : 1.0f);
    }
  const double err_rtn =
      quant::hessian_quadratic(e.data(), rows, cols, h32.data(), quant::kOutputErrorRows);
  r.extra["out_rel_err"] = norm > 0 ? err / norm : 0.0;
  r.extra["out_rel_err_rtn"] = norm > 0 ? err_rtn / norm : 0.0;
  if (!opts_.probe.empty())  // RTN of the unscaled weights: what dsq's KLD calibration substitutes
    r.extra["sensitivity"] = {{"options", probe(in, sr, h32)},
                              {"rtn", {{"scheme", scheme_name(in.desc)}, {"cost", err_rtn}}}};
  if (gs) {
    const auto [lo, hi] = std::minmax_element(gs->scales.begin(), gs->scales.end());
    r.extra.update({{"awq_alpha", gs->alpha}, {"awq_scale_min", *lo}, {"awq_scale_max", *hi}});
    if (!load_stats_)
      r.extra.update({{"awq_search_rel_err", gs->search_rel},
                      {"awq_search_rel_err_rtn", gs->search_rel_rtn}});
  }
  r.extra["solve_seconds"] = seconds_since(t0);
  return r;
}

void CalibratedQuantizer::share_result(int owner, std::optional<LinearResult>* r,
                                       std::optional<h5::AwqClip>* clip) {
  // One message: a JSON header, the quantized bytes, the clip ratios.
  std::string msg;
  if (dist::rank() == owner) {
    const Tensor& q = (*r)->q;
    json h = {{"name", (*r)->name},
              {"shape", q.shape()},
              {"scheme", scheme_name(q.quant())},
              {"err_sq", (*r)->error.err_sq},
              {"norm_sq", (*r)->error.norm_sq},
              {"extra", (*r)->extra},
              {"bytes", q.nbytes()}};
    if (*clip) h["clip"] = {{"linear", (*clip)->linear}, {"rows", (*clip)->rows},
                            {"n_groups", (*clip)->n_groups}, {"n", (*clip)->ratios.size()}};
    const std::string head = h.dump();
    const uint64_t n = head.size();
    msg.append(reinterpret_cast<const char*>(&n), sizeof n).append(head);
    msg.append(reinterpret_cast<const char*>(q.bytes()), q.nbytes());
    if (*clip)
      msg.append(reinterpret_cast<const char*>((*clip)->ratios.data()),
                 (*clip)->ratios.size() * sizeof(float));
  }
  dist::bcast(msg, owner);
  if (dist::rank() == owner) return;
  uint64_t n = 0;
  std::memcpy(&n, msg.data(), sizeof n);
  const json h = json::parse(msg.substr(sizeof n, n));
  size_t at = sizeof n + n;
  LinearResult x;
  x.name = h["name"].get<std::string>();
  const QuantDesc d = make_quant_desc(h["scheme"].get<std::string>());
  x.q = Tensor(DType::kQInt, h["shape"].get<Shape>(), &d);
  DSQ_ASSERT(x.q.nbytes() == h["bytes"].get<size_t>(), "share_result: size mismatch");
  std::memcpy(x.q.mutable_bytes(), msg.data() + at, x.q.nbytes());
  at += x.q.nbytes();
  x.error.err_sq = h["err_sq"].get<double>();
  x.error.norm_sq = h["norm_sq"].get<double>();
  x.extra = h["extra"];
  *r = std::move(x);
  if (h.contains("clip")) {
    h5::AwqClip c;
    c.linear = h["clip"]["linear"].get<std::string>();
    c.rows = h["clip"]["rows"].get<int64_t>();
    c.n_groups = h["clip"]["n_groups"].get<int64_t>();
    c.ratios.resize(h["clip"]["n"].get<size_t>());
    std::memcpy(c.ratios.data(), msg.data() + at, c.ratios.size() * sizeof(float));
    *clip = std::move(c);
  }
}

void CalibratedQuantizer::solve_group(model::BlockWeights& bw, const LinearGroup& g,
                                      const h5::InputStats& st, BlockResult* res,
                                      h5::AwqSearch* awq_out) {
  const auto sc = scales_.find(g.name);
  const GroupScale* gs = sc == scales_.end() ? nullptr : &sc->second;
  std::vector<float> h32(st.hessian.begin(), st.hessian.end());  // H as f32 for the traces
  quant::GroupScratch scratch;  // the group's linears share H (and GPTQ's factor of it)
  std::vector<std::string_view> todo;
  for (const auto short_name : g.linears) {
    if (selected(bw.layer, short_name, bw)) {
      todo.push_back(short_name);
      continue;
    }
    // A linear kept in f16 computes the later groups' inputs as it will be stored.
    model::Linear* kept = bw.linear(short_name);
    if (kept && !kept->empty() && opts_.kept_float(linear_name(bw.layer, short_name)))
      *kept = model::Linear::from_tensors(kept->name(),
                                          kept->weight().to(DType::kF16).to(DType::kF32),
                                          kept->bias());
  }
  // Under MPI each rank solves its share (lib/core/dist.h: cost-balanced by rows x cols^2, GPTQ's
  // update work), then every result goes out from its owner in the group's order, so every rank
  // continues with the same block.
  std::vector<double> cost;
  for (const auto l : todo) {
    const model::Linear& lin = block_linear(bw, l);
    cost.push_back(static_cast<double>(lin.n_out()) * static_cast<double>(lin.n_in()) *
                   static_cast<double>(lin.n_in()));
  }
  const std::vector<int> owner = dist::assign(cost, dist::size());
  std::vector<std::optional<LinearResult>> mine(todo.size());
  std::vector<std::optional<h5::AwqClip>> clips(todo.size());
  for (size_t i = 0; i < todo.size(); ++i) {
    if (owner[i] != dist::rank()) continue;
    h5::AwqSearch found;
    mine[i] = solve_linear(bw.layer, todo[i], block_linear(bw, todo[i]).weight(), st, h32,
                           !contains(g.no_clip, todo[i]), gs, std::string(g.name),
                           awq_out ? &found : nullptr, &scratch);
    if (!found.clips.empty()) clips[i] = std::move(found.clips.front());
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    if (dist::size() > 1) share_result(owner[i], &mine[i], &clips[i]);
    LinearResult& r = *mine[i];
    model::Linear& lin = block_linear(bw, todo[i]);
    lin = model::Linear::from_tensors(r.name, r.q, lin.bias());
    if (awq_out && clips[i]) awq_out->clips.push_back(std::move(*clips[i]));
    res->linears.push_back(std::move(r));
  }
}

void CalibratedQuantizer::process_block(int64_t layer) {
  const auto t0 = Clock::now();
  // f32 linears (FP8 sources dequantized) for the solvers; a MoE layer's experts stay in the
  // source and are loaded one at a time.
  model::BlockWeights bw = model::BlockWeights::load(src_, layer, {.f32 = true, .stream_experts = true});
  prof_.load += seconds_since(t0);
  BlockResult res;
  res.layer = layer;
  std::optional<h5::Writer> stats;
  if (!save_stats_.empty() && work_->writer()) stats.emplace(work_->stats_path(layer));
  hidden_done_ = false;
  attn_applied_ = false;
  kept_.clear();
  kept_linear_ = {};
  scales_.clear();
  double capture_s = 0.0, awq_s = 0.0;
  // Step 2: AWQ scales, searched on the FP block and folded (exact up to f32 rounding).
  std::vector<std::string> changed;  // canonical names of float tensors the folds changed
  if (awq()) {
    for (const LinearGroup& g : arch_.linear_groups) {
      if (bw.is_moe() && moe_group(g)) continue;  // moe_stage searches and folds these
      const auto tc = Clock::now();
      const bool folded = scale_group(bw, layer, g);
      awq_s += seconds_since(tc);
      if (!folded) continue;
      const bool norm_producer = bw.norm(g.producer) != nullptr;
      changed.push_back(expand_name(std::string("blk.{L}.") + std::string(g.producer) + ".weight", layer));
      if (!norm_producer && !bw.linear(g.producer)->bias().empty())
        changed.push_back(expand_name(std::string("blk.{L}.") + std::string(g.producer) + ".bias", layer));
      for (const auto l : g.linears)
        if (bw.linear(l) && !bw.linear(l)->empty()) changed.push_back(linear_name(layer, l));
    }
  }
  // The drift reference: the FP block (AWQ folds included) on the first samples.
  if (!load_stats_) {
    const auto tc = Clock::now();
    const int64_t nd = std::min(kDriftSamples, calib_.n_samples);
    fp_out_.resize(static_cast<size_t>(nd * calib_.seq_len * cfg_.d_model));
    run_block(bw, Run::kCopy, fp_out_.data(), nullptr, nd);
    capture_s += seconds_since(tc);
    prof_.drift_reference += seconds_since(tc);
  }
  // Step 3: quantize the groups in true-sequential order.
  bool first = true, moe_done = false;
  for (const LinearGroup& g : arch_.linear_groups) {
    if (bw.is_moe() && moe_group(g)) {  // the experts: all of them at the first expert group
      if (!moe_done) {
        const auto tc = Clock::now();
        moe_stage(bw, layer, &res, stats ? &*stats : nullptr, &changed);
        capture_s += seconds_since(tc);
        prof_.moe_stage += seconds_since(tc);
        moe_done = true;
      }
      continue;
    }
    bool any = false;
    for (const auto l : g.linears) any |= selected(layer, l, bw);
    if (!any) continue;
    const auto tc = Clock::now();
    if (!load_stats_ && !bw.is_moe() && !attn_applied_ &&
        arch_.find(g.linears.front())->part == Part::kFfn) {
      // The attention is quantized: its output replaces the block's input (the drift reference
      // was taken), so the FFN groups' passes and the final one run the FFN alone.
      advance_hidden(bw, model::BlockPart::kAttn);
      attn_applied_ = true;
      prof_.advance += seconds_since(tc);
    }
    // attn_output's and ffn_down's inputs are their sub-blocks' outputs: kept, the sub-block
    // runs once more only for them.
    const bool keep = keeps_inputs(bw, g);
    kept_.clear();
    kept_linear_ = {};
    if (keep) {
      kept_linear_ = g.linears.front();
      kept_.reserve(static_cast<size_t>(calib_.n_samples * calib_.seq_len *
                                        block_linear(bw, kept_linear_).n_in()));
    }
    const auto tq = Clock::now();
    const h5::InputStats st = collect(bw, layer, g, keep ? &kept_ : nullptr);
    capture_s += seconds_since(tc);
    prof_.collect += seconds_since(tq);
    h5::AwqSearch awq_found;
    const auto ts = Clock::now();
    if (any) solve_group(bw, g, st, &res, &awq_found);
    prof_.solve += seconds_since(ts);
    if (stats) {
      h5::write_input_stats(*stats, st);
      if (const auto sc = scales_.find(g.name); sc != scales_.end()) {
        awq_found.alpha = sc->second.alpha;
        awq_found.scales.assign(sc->second.scales.begin(), sc->second.scales.end());
        h5::write_awq_search(*stats, layer, std::string(g.name), awq_found);
      }
    }
    if (first) maybe_kill("during", layer);
    first = false;
  }
  // Float tensors the folds changed and that were not quantized go out in place of the source's.
  for (const auto& name : changed) {
    if (std::any_of(res.linears.begin(), res.linears.end(),
                    [&](const LinearResult& l) { return l.name == name; }) ||
        std::any_of(res.replaced.begin(), res.replaced.end(),
                    [&](const auto& r) { return r.first == name; }))
      continue;
    int64_t l = 0;
    std::string short_name;
    parse_block_name(name, &l, &short_name);
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (const Tensor* t = bw.norm(short_name)) {
      res.replaced.emplace_back(name, t->clone());
    } else if (short_name == names::kFfnGateInp && bw.is_moe()) {  // a router AWQ scaled
      res.replaced.emplace_back(name, bw.moe->router.weight().clone());
    } else if (const model::Linear* lin = bw.linear(short_name)) {
      res.replaced.emplace_back(name, (bias ? lin->bias() : lin->weight()).clone());
    }
  }
  double drift = 0.0;
  if (!load_stats_) {  // the quantized block's outputs are the next block's inputs
    const auto tc = Clock::now();
    if (!hidden_done_)
      advance_hidden(bw, attn_applied_ ? model::BlockPart::kFfn : model::BlockPart::kAll);
    capture_s += seconds_since(tc);
    prof_.advance += seconds_since(tc);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < fp_out_.size(); ++i) {
      const double e = static_cast<double>(hidden_[i]) - fp_out_[i];
      num += e * e;
      den += static_cast<double>(fp_out_[i]) * fp_out_[i];
    }
    drift = den > 0 ? num / den : 0.0;
    fp_out_ = {};
  }
  // No drift without forward passes (--load-stats): null in the report.
  const json drift_j = load_stats_ ? json(nullptr) : json(drift);
  res.summary = {{"block_drift", drift_j}, {"forward_seconds", capture_s},
                 {"block_seconds", seconds_since(t0)}};
  if (awq()) res.summary["awq_scale_seconds"] = awq_s;  // its forward passes included
  prof_.awq_scale += awq_s;
  double err = 0, err_rtn = 0;
  for (auto& l : res.linears) {
    l.extra["block_drift"] = drift_j;
    err += l.extra["out_rel_err"].get<double>();
    err_rtn += l.extra["out_rel_err_rtn"].get<double>();
  }
  const double n = static_cast<double>(std::max<size_t>(res.linears.size(), 1));
  log_info(strprintf("block %lld: %zu linears, mean output rel. error %.3e (rtn %.3e), block "
                     "drift %s, %.1fs",
                     static_cast<long long>(layer), res.linears.size(), err / n, err_rtn / n,
                     load_stats_ ? "n/a" : strprintf("%.3e", drift).c_str(), seconds_since(t0)));
  // Commit (order matters for --resume, see pipeline_workdir.h).
  const auto tw = Clock::now();
  work_->save_block(res);
  if (stats) stats->commit();
  if (!load_stats_ && layer + 1 < cfg_.n_layers)
    work_->save_acts(layer + 1, hidden_, calib_.n_samples * calib_.seq_len, cfg_.d_model);
  work_->commit(layer + 1);
  prof_.save += seconds_since(tw);
  prof_.blocks += seconds_since(t0);
  ++prof_.n_blocks;
  current_ = std::move(res);
  if (bar_) bar_->set(layer + 1);
  maybe_kill("after", layer);
}

json CalibratedQuantizer::profile() const {
  if (prof_.n_blocks == 0) return nullptr;
  // collect and awq_scale include statistics; blocks includes every other stage but
  // calibration_data.
  return json{{"blocks", prof_.n_blocks},
              {"calibration_data_seconds", prof_.calibration_data},
              {"block_load_seconds", prof_.load},
              {"drift_reference_seconds", prof_.drift_reference},
              {"awq_scale_seconds", prof_.awq_scale},
              {"collect_seconds", prof_.collect},
              {"statistics_seconds", prof_.statistics},
              {"solve_seconds", prof_.solve},
              {"advance_seconds", prof_.advance},
              {"moe_stage_seconds", prof_.moe_stage},
              {"save_seconds", prof_.save},
              {"block_seconds", prof_.blocks}};
}

void CalibratedQuantizer::write_stats_file() {
  h5::Writer w(save_stats_);
  h5::StatsHeader h;
  h.n_layers = cfg_.n_layers;
  h.model = opts_.model_path;
  h.recipe = {{"quantize", quantize_recipe(opts_, src_.metadata.value("source_format", ""))},
              {"calib", calib_.recipe}};
  h5::write_stats_header(w, h);
  for (int64_t l = 0; l < cfg_.n_layers; ++l)
    w.copy_from(work_->stats_path(l), "blk." + std::to_string(l));
  if (!opts_.probe.empty()) {  // the probe's table travels with the statistics it came from
    h5::SensitivityTable t;
    t.method = opts_.method;
    for (const auto& c : opts_.probe) t.candidates.push_back(tensor_scheme_name(c));
    for (int64_t l = 0; l < cfg_.n_layers; ++l)
      for (const LinearResult& r : work_->load_block(l).linears) {
        const json& rec = r.extra.at("sensitivity");
        h5::SensitivityTable::Linear x;
        x.name = r.name;
        for (const auto& o : rec.at("options")) x.costs.push_back(o.at("cost").get<double>());
        x.rtn_scheme = rec.at("rtn").at("scheme").get<std::string>();
        x.rtn_cost = rec.at("rtn").at("cost").get<double>();
        t.linears.push_back(std::move(x));
      }
    h5::write_sensitivity(w, t);
  }
  w.commit();
}

void CalibratedQuantizer::begin_block(int64_t layer) {
  while (work_->completed() <= layer) process_block(work_->completed());
  if (layer + 1 == cfg_.n_layers && !save_stats_.empty() && work_->writer()) write_stats_file();
}

Tensor CalibratedQuantizer::quantize(const std::string& name, const Tensor&, TensorReport* rep) {
  int64_t layer = 0;
  std::string short_name;
  DSQ_ASSERT(parse_block_name(name, &layer, &short_name), "not a block linear: %s", name.c_str());
  begin_block(layer);
  if (!current_ || current_->layer != layer) current_ = work_->load_block(layer);
  for (const auto& l : current_->linears) {
    if (l.name != name) continue;
    rep->error = l.error;
    rep->extra = l.extra;
    return l.q;
  }
  throw ConfigError("'" + name + "' was not quantized by the pipeline (--skip changed since the "
                    "work directory was started?)");
}

std::optional<Tensor> CalibratedQuantizer::replace(const std::string& name) {
  int64_t layer = 0;
  if (!parse_block_name(name, &layer, nullptr)) return std::nullopt;
  begin_block(layer);
  if (!current_ || current_->layer != layer) current_ = work_->load_block(layer);
  for (const auto& [n, t] : current_->replaced)
    if (n == name) return t;
  return std::nullopt;
}

}  // namespace detail

std::unique_ptr<LinearQuantizer> make_calibrated_quantizer(const WeightStore& src,
                                                           const QuantizeOptions& opts) {
  return std::make_unique<detail::CalibratedQuantizer>(src, opts);
}

}  // namespace dsq::calibration
