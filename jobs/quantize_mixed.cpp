// Mixed precision for `dsq quantize` (docs/MIXED.md): --tensor-type / --keep pins, --target-bpw
// (a sensitivity probe, then a multiple-choice knapsack, lib/quant/allocate.h) and --budget (a
// search over the target with a real quantize + eval per step).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <span>

#include "calibration/calib_data.h"
#include "formats/format_table.h"
#include "formats/hdf5/stats_file.h"
#include "jobs/job_util.h"
#include "jobs/quantize.h"
#include "lib/core/arch.h"
#include "lib/core/dist.h"
#include "lib/core/error.h"
#include "lib/core/interrupt.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/model/metrics.h"
#include "lib/model/model.h"
#include "lib/quant/allocate.h"
#include "lib/quant/rtn.h"
#include "lib/report/budget.h"
#include "lib/report/report_io.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using calibration::parse_tensor_scheme;
using calibration::tensor_scheme_bits;
using calibration::tensor_scheme_name;
using Choice = std::optional<QuantDesc>;

// The measured output error of each linear under each candidate (the probe's report rows), and
// of RTN under the run's scheme (the KLD calibration's reference).
struct Sensitivity {
  std::map<std::string, std::map<std::string, double>> cost;  // linear -> scheme name -> cost
  std::map<std::string, std::pair<std::string, double>> rtn;  // linear -> (scheme, cost)
  std::string source;  // "probe", the statistics file or the table kept by an interrupted run
  double seconds = 0;
};

// One linear's probe record: {"options": [{"scheme", "bits", "cost"}], "rtn": {"scheme", "cost"}}.
void add_linear_costs(Sensitivity* s, const std::string& name, const json& rec) {
  auto& m = s->cost[name];
  for (const auto& o : rec.at("options"))
    m[o.at("scheme").get<std::string>()] = o.at("cost").get<double>();
  const json& r = rec.at("rtn");
  s->rtn[name] = {r.at("scheme").get<std::string>(), r.at("cost").get<double>()};
}

Sensitivity read_table(const json& linears, const std::string& source) {
  Sensitivity s;
  s.source = source;
  try {
    for (const auto& [name, rec] : linears.items()) add_linear_costs(&s, name, rec);
  } catch (const json::exception& e) {
    throw FormatError("'" + source + "': sensitivity table: " + e.what());
  }
  return s;
}

// The table a statistics file carries (the probe ran with --save-stats), when it was measured by
// the same method for every wanted candidate.
std::optional<Sensitivity> cached_in_stats(const std::string& path, const std::string& method,
                                           const std::vector<std::string>& wanted) {
  namespace h5 = formats::hdf5;
  std::optional<h5::SensitivityTable> t;
  h5::run_isolated(path, [&] {  // a corrupt file may crash libhdf5: see hdf5_file.h
    const h5::Reader r(path);
    (void)h5::read_sensitivity(r, h5::read_stats_header(r).n_layers);
  });
  const h5::Reader r(path);
  t = h5::read_sensitivity(r, h5::read_stats_header(r).n_layers);
  if (!t || t->method != method) return std::nullopt;
  for (const auto& w : wanted)
    if (std::find(t->candidates.begin(), t->candidates.end(), w) == t->candidates.end())
      return std::nullopt;
  Sensitivity s;
  s.source = path;
  for (const auto& l : t->linears) {
    auto& m = s.cost[l.name];
    for (size_t k = 0; k < t->candidates.size(); ++k) m[t->candidates[k]] = l.costs[k];
    s.rtn[l.name] = {l.rtn_scheme, l.rtn_cost};
  }
  return s;
}

// Runs the method over the model once with QuantizeOptions::probe set (the pipeline solves each
// linear under every candidate), to a scratch output that is removed afterwards. With --resume,
// a table kept beside the output by an interrupted run of the same probe is reused.
Sensitivity probe_sensitivity(const QuantizeOptions& opts, const std::vector<Choice>& candidates) {
  const auto t0 = Clock::now();
  QuantizeOptions p = opts;
  p.probe = candidates;
  p.out_path = opts.out_path + ".probe.dsq";  // any scheme (a .gguf output holds fewer)
  const std::string sidecar = opts.out_path + ".sensitivity.json";
  const json recipe = calibration::quantize_recipe(p, "");
  const bool resume = opts.method_runtime.value("resume", false);
  if (resume && std::filesystem::exists(sidecar)) {
    const json j = report::read_json_file(sidecar);
    if (j.is_object() && j.value("recipe", json()) == recipe) {
      Sensitivity s = read_table(j.value("linears", json()), sidecar);
      log_info("sensitivity: reusing '" + sidecar + "'");
      return s;
    }
  }
  log_info(strprintf("sensitivity probe: %zu candidates per linear (%s)", candidates.size(),
                     opts.method.c_str()));
  const QuantizeReport r = detail::quantize_once(p, "");
  std::filesystem::remove(p.out_path);
  Sensitivity s;
  s.source = "probe";
  json linears = json::object();
  for (const TensorReport& t : r.tensors) {
    if (!t.extra.contains("sensitivity")) continue;
    add_linear_costs(&s, t.name, t.extra["sensitivity"]);
    linears[t.name] = t.extra["sensitivity"];
  }
  write_json_file(sidecar, json{{"recipe", recipe}, {"linears", std::move(linears)}});
  s.seconds = seconds_since(t0);
  return s;
}

// Output errors are not comparable across linears: a query projection's outputs are large and
// pass through a softmax, an FFN down projection's are small and land in the residual stream. The
// calibration measures, per unit (a linear; all experts of one kind in a layer together), the KLD
// of the model's next-token distribution when only that unit is RTN-quantized under the run's
// scheme, on the first calibration windows, and scales the unit's predicted costs by KLD / RTN's
// predicted cost. Costs then add up to a predicted KLD. Returns the scale per unit.
json calibrate_by_kld(const WeightStore& ws, const QuantizeOptions& opts, int64_t max_tokens,
                      Sensitivity* sens) {
  const auto t0 = Clock::now();
  const calibration::CalibOptions co = calibration::calib_options(opts.method_options);
  if (co.paths.empty())
    throw UsageError("the KLD calibration of --target-bpw / --budget runs on calibration windows: "
                     "give --calib too (with --load-stats), or --kld-tokens 0");
  const std::unique_ptr<text::Tokenizer> tok = optional_tokenizer(ws);
  const calibration::CalibData cd = calibration::load_calib_data(
      co, ws.config.vocab_size, static_cast<int32_t>(ws.config.bos_id), tok.get());
  const int64_t T = cd.seq_len, V = ws.config.vocab_size;
  // Windows: enough for max_tokens, with the reference logits kept under 2^25 floats (128 MiB).
  const int64_t by_memory = std::max<int64_t>(1, (int64_t{1} << 25) / (T * V));
  const int64_t B = std::clamp<int64_t>((max_tokens + T - 1) / T, 1, std::min(cd.n_samples, by_memory));
  const std::span<const int32_t> tokens(cd.tokens.data(), static_cast<size_t>(B * T));
  model::Model m = model::Model::load(ws);
  const std::vector<float> ref = m.forward(tokens, B, T);
  // Units in file order.
  std::vector<std::pair<std::string, std::vector<std::string>>> units;
  std::map<std::string, size_t> unit_of;
  for (const auto& name : ws.names()) {
    if (!sens->rtn.count(name) || opts.tensor_desc.count(name)) continue;  // pinned: no choice
    int64_t layer = -1, expert = -1;
    const ArchTensor* row = find_tensor_row(ws.config, name, &layer, &expert);
    std::string kind = row ? std::string(row->short_name()) : name;
    if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, ".{E}") == 0) kind.resize(kind.size() - 4);
    const std::string key = row ? strprintf("blk.%lld.%s", static_cast<long long>(layer), kind.c_str())
                                : name;
    auto [it, fresh] = unit_of.emplace(key, units.size());
    if (fresh) units.push_back({key, {}});
    units[it->second].second.push_back(name);
  }
  std::optional<Progress> bar;
  if (opts.progress) bar.emplace("KLD calibration", static_cast<int64_t>(units.size()), "units");
  json scales = json::object();
  for (const auto& [key, names] : units) {
    std::vector<std::pair<model::Linear*, model::Linear>> saved;
    double rtn_cost = 0;
    for (const auto& name : names) {
      int64_t layer = 0;
      std::string short_name;
      parse_block_name(name, &layer, &short_name);
      model::Linear* lin = m.mutable_block(layer).linear(short_name);
      if (!lin || lin->empty()) continue;
      const auto& [rtn_scheme, rtn_err] = sens->rtn.at(name);
      const Tensor w = ws.entry(name).load().to(DType::kF32);
      Tensor q = quant::quantize_tensor_rtn(w, make_quant_desc(rtn_scheme), {});
      saved.emplace_back(lin, std::move(*lin));
      *lin = model::Linear::from_tensors(saved.back().second.name(), std::move(q),
                                         saved.back().second.bias());
      rtn_cost += rtn_err;
    }
    const std::vector<float> logits = m.forward(tokens, B, T);
    for (auto& [lin, old] : saved) *lin = std::move(old);
    double kld = 0;
    const auto scores = model::score_windows(logits.data(), ref.data(), tokens, B, T, V);
    for (const auto& sc : scores) kld += sc.kld;
    kld = std::max(0.0, kld / static_cast<double>(std::max<size_t>(scores.size(), 1)));
    const double scale = rtn_cost > 0 ? kld / rtn_cost : 0.0;
    scales[key] = {{"kld_rtn", kld}, {"predicted_rtn", rtn_cost}, {"scale", scale}};
    for (const auto& name : names)
      for (auto& [scheme, cost] : sens->cost[name]) cost *= scale;
    if (bar) bar->add();
  }
  if (bar) bar->finish();
  return json{{"tokens", B * T}, {"seconds", seconds_since(t0)}, {"units", std::move(scales)}};
}

// The allocation problem of one model: one item per free linear (or per tied group), and the bits
// of everything fixed (pinned, skipped, not quantizable).
class Planner {
 public:
  // sens null: every cost 0 (the bits alone, e.g. for the smallest reachable size).
  Planner(const WeightStore& ws, const QuantizeOptions& opts, const Sensitivity* sens,
          const std::vector<Choice>& candidates, bool tie_groups) {
    std::map<std::string, size_t> item_of;  // tie key -> item
    for (const auto& name : ws.names()) {
      if (!is_block_linear(ws.config, name)) continue;
      const auto& e = ws.entry(name);
      const int64_t rows = e.shape.at(0), cols = e.shape.at(1);
      params_ += rows * cols;
      const bool free = opts.quantizes(ws.config, name, e.dtype, &e.quant) &&
                        !opts.tensor_desc.count(name);
      if (!free) {
        if (opts.tensor_desc.count(name))  // pinned (a scheme or f16)
          fixed_bits_ += tensor_scheme_bits(opts.tensor_desc.at(name), rows, cols);
        else if (e.dtype == DType::kQInt)  // a storage scheme (FP8) kept as it is
          fixed_bits_ += tensor_scheme_bits(e.quant, rows, cols);
        else
          fixed_bits_ += 8 * static_cast<int64_t>(dtype_size(e.dtype)) * rows * cols;
        continue;
      }
      static const std::map<std::string, double> kNoCosts;
      const std::map<std::string, double>* costs = &kNoCosts;
      if (sens) {
        const auto it = sens->cost.find(name);
        if (it == sens->cost.end())
          throw ConfigError("'" + name + "': no sensitivity measured for this linear (" +
                            sens->source + ")");
        costs = &it->second;
      }
      const std::string key = tie_groups ? tie_key(ws.config, name) : name;
      auto [pos, fresh] = item_of.emplace(key, items_.size());
      if (fresh) items_.push_back({});
      Item& item = items_[pos->second];
      item.names.push_back(name);
      std::vector<std::pair<Choice, quant::AllocOption>> opts_here;
      for (const Choice& c : candidates) {
        const auto ci = costs->find(tensor_scheme_name(c));
        if (sens && ci == costs->end())
          throw ConfigError("'" + name + "': no sensitivity measured for " +
                            tensor_scheme_name(c) + " (" + sens->source + ")");
        opts_here.push_back({c, {tensor_scheme_bits(c, rows, cols), sens ? ci->second : 0.0}});
      }
      if (item.names.size() == 1) {
        for (auto& [c, o] : opts_here) {
          item.choices.push_back(c);
          item.alloc.options.push_back(o);
        }
      } else {  // a tied member: every candidate is in both (same list), sum them
        for (size_t k = 0; k < opts_here.size(); ++k) {
          item.alloc.options[k].bits += opts_here[k].second.bits;
          item.alloc.options[k].cost += opts_here[k].second.cost;
        }
      }
    }
  }

  int64_t params() const { return params_; }
  double min_bpw() const { return bpw(min_bits()); }
  double max_bpw() const { return bpw(max_bits()); }

  // The plan of at most `target` bits per weight; ConfigError naming the smallest reachable value
  // when none exists.
  std::pair<std::map<std::string, Choice>, quant::Allocation> plan(double target) const {
    const auto budget = static_cast<int64_t>(std::floor(target * static_cast<double>(params_))) -
                        fixed_bits_;
    const std::optional<quant::Allocation> a = allocate_bits(alloc_items(), budget);
    if (!a)
      throw ConfigError(strprintf("--target-bpw %g: no allocation reaches it; the smallest "
                                  "reachable is %.4f bits per weight (every free linear at its "
                                  "smallest candidate)",
                                  target, std::ceil(min_bpw() * 1e4) / 1e4));
    std::map<std::string, Choice> m;
    for (size_t i = 0; i < items_.size(); ++i)
      for (const auto& n : items_[i].names) m[n] = items_[i].choices[a->choice[i]];
    return {m, *a};
  }
  double bpw(int64_t free_bits) const {
    return params_ ? static_cast<double>(free_bits + fixed_bits_) / static_cast<double>(params_) : 0;
  }
  size_t n_items() const { return items_.size(); }

 private:
  struct Item {
    std::vector<std::string> names;
    std::vector<Choice> choices;
    quant::AllocItem alloc;
  };
  std::vector<quant::AllocItem> alloc_items() const {
    std::vector<quant::AllocItem> v;
    for (const auto& it : items_) v.push_back(it.alloc);
    return v;
  }
  int64_t min_bits() const { return quant::min_allocation_bits(alloc_items()); }
  int64_t max_bits() const { return quant::max_allocation_bits(alloc_items()); }

  // Linears of one group instance (same layer, group and expert) share a key.
  static std::string tie_key(const ModelConfig& c, const std::string& name) {
    int64_t layer = -1, expert = -1;
    const ArchTensor* row = find_tensor_row(c, name, &layer, &expert);
    if (!row) return name;
    for (const LinearGroup& g : arch_of(c).linear_groups)
      if (std::find(g.linears.begin(), g.linears.end(), row->short_name()) != g.linears.end())
        return strprintf("%lld/%s/%lld", static_cast<long long>(layer), std::string(g.name).c_str(),
                         static_cast<long long>(expert));
    return name;
  }

  std::vector<Item> items_;
  int64_t fixed_bits_ = 0, params_ = 0;
};

json choices_json(const std::map<std::string, Choice>& m) {
  json j = json::object();
  for (const auto& [n, c] : m) j[n] = tensor_scheme_name(c);
  return j;
}

std::string try_path(const std::string& out, int k) {
  return out + ".try" + std::to_string(k) + std::filesystem::path(out).extension().string();
}

}  // namespace

TensorTypeRule parse_tensor_type_rule(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw UsageError("--tensor-type '" + spec.substr(0, 80) + "': expected REGEX=SCHEME, e.g. "
                     "'ffn_down=int8_sym_g128' or 'attn_v=f16'");
  TensorTypeRule r;
  r.pattern = spec.substr(0, eq);
  try {
    std::regex re(r.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError("--tensor-type: invalid regular expression '" + r.pattern.substr(0, 80) +
                     "': " + e.what());
  }
  r.scheme = parse_tensor_scheme(spec.substr(eq + 1));
  return r;
}

std::vector<std::optional<QuantDesc>> default_mixed_candidates() {
  std::vector<std::optional<QuantDesc>> v;
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (bool sym : {true, false})
      for (uint32_t g : {32u, 64u, 128u, 256u, 0u}) v.push_back(QuantDesc(bits, g, sym));
  v.push_back(std::nullopt);
  return v;
}

namespace detail {

QuantizeReport run_mixed(QuantizeOptions opts, const std::string& json_out, const MixedOptions& m) {
  const auto t0 = Clock::now();
  if (m.target_bpw && !m.budget.empty())
    throw UsageError("--target-bpw and --budget exclude each other");
  if (dist::size() > 1)
    throw UsageError("mixed precision (--target-bpw, --budget, --tensor-type, --keep) does not run "
                     "under mpirun yet: run it as one process");
  if (m.target_bpw && !(std::isfinite(*m.target_bpw) && *m.target_bpw > 0))
    throw UsageError("--target-bpw must be a positive number");
  const WeightStore ws = formats::open_model(opts.model_path);
  std::optional<report::Budget> budget;
  {  // every input and destination, before the probe
    IoPlan io;
    io.model_inputs(ws);
    io.input(m.budget);
    io.input(m.eval.tokens_file);
    io.input(m.eval.text_file);
    io.model_output(opts.out_path);
    io.output(json_out, "--json");
    io.check();
    if (!m.budget.empty()) {
      if (m.eval.text_file.empty() == m.eval.tokens_file.empty())
        throw UsageError("--budget needs the evaluation data: --eval-tokens FILE.u32 or "
                         "--eval-text FILE");
      budget = report::load_budget(m.budget);
    }
  }
  json plan = json::object();
  // The pins, first matching rule per quantizable linear.
  for (const TensorTypeRule& rule : m.rules) {
    const std::regex re(rule.pattern, std::regex::ECMAScript);
    int64_t hits = 0;
    for (const auto& name : ws.names()) {
      const auto& e = ws.entry(name);
      if (!calibration::should_quantize(ws.config, name, e.dtype, opts.skip, &e.quant) ||
          !std::regex_search(name, re))
        continue;
      ++hits;
      opts.tensor_desc.try_emplace(name, rule.scheme);
    }
    if (hits == 0)
      throw UsageError("--tensor-type / --keep '" + rule.pattern.substr(0, 80) + "=" +
                       tensor_scheme_name(rule.scheme) + "' matches no quantizable block linear");
  }
  if (!m.rules.empty()) plan["pinned"] = choices_json({opts.tensor_desc.begin(), opts.tensor_desc.end()});
  if (!m.target_bpw && m.budget.empty()) {
    QuantizeReport r = quantize_once(opts, json_out);
    r.mixed = plan;
    return r;
  }
  const calibration::QuantMethod& method = calibration::find_quant_method(opts.method);
  if (!method.calibrated)
    throw UsageError("--target-bpw and --budget need a calibrated method (--method gptq, awq or "
                     "awq+gptq): the search weighs each linear's error by its calibration inputs");
  std::vector<Choice> candidates = m.candidates.empty() ? default_mixed_candidates() : m.candidates;
  if (m.candidates.empty() && std::filesystem::path(opts.out_path).extension() == ".gguf") {
    // What GGUF holds exactly (docs/EXPORT.md): int4_sym / int8_sym as Q4_0 / Q8_0, asymmetric
    // 4-bit as Q4_1 (fitted as int4_asymf), f16.
    std::erase_if(candidates, [](const Choice& c) {
      return c && !(c->bits() == 8 && c->sym()) && c->bits() != 4;
    });
  }
  std::vector<std::string> cand_names;
  for (const Choice& c : candidates) cand_names.push_back(tensor_scheme_name(c));

  {  // sizes need no measurement: an unreachable target fails before the probe
    const Planner sizes(ws, opts, nullptr, candidates, m.tie_groups);
    if (m.target_bpw) sizes.plan(*m.target_bpw);
    if (budget && budget->max_bits_per_weight && *budget->max_bits_per_weight < sizes.min_bpw())
      throw ConfigError(strprintf("'%s': max_bits_per_weight %g is below the smallest reachable "
                                  "%.4f bits per weight",
                                  m.budget.c_str(), *budget->max_bits_per_weight, sizes.min_bpw()));
  }
  // Sensitivity: from the statistics file when it carries a table, else a probe run (whose
  // statistics, with --save-stats, carry it for the next search).
  const json rt = calibration::resolve_runtime_options(opts.method_runtime);
  const std::string load_stats = rt["load_stats"].get<std::string>();
  std::optional<Sensitivity> sens;
  if (!load_stats.empty()) sens = cached_in_stats(load_stats, opts.method, cand_names);
  if (sens) {
    log_info("sensitivity: the table in '" + load_stats + "'");
  } else {
    sens = probe_sensitivity(opts, candidates);
  }
  opts.method_runtime.erase("save_stats");  // the probe saved them (with its table)
  if (m.kld_tokens > 0) plan["kld_calibration"] = calibrate_by_kld(ws, opts, m.kld_tokens, &*sens);
  const Planner planner(ws, opts, &*sens, candidates, m.tie_groups);
  plan["candidates"] = cand_names;
  plan["sensitivity_source"] = sens->source;
  plan["sensitivity_seconds"] = sens->seconds;
  plan["min_bpw"] = planner.min_bpw();
  plan["max_bpw"] = planner.max_bpw();
  plan["tie_groups"] = m.tie_groups;
  plan["sensitivity"] = sens->cost;  // linear -> candidate -> predicted cost
  const std::string sidecar = opts.out_path + ".sensitivity.json";

  if (m.target_bpw) {
    const auto [choices, alloc] = planner.plan(*m.target_bpw);
    QuantizeOptions q = opts;
    for (const auto& [n, c] : choices) q.tensor_desc[n] = c;
    plan["target_bpw"] = *m.target_bpw;
    plan["planned_bpw"] = planner.bpw(alloc.bits);
    plan["predicted_cost"] = alloc.cost;
    plan["choices"] = choices_json(choices);
    log_info(strprintf("mixed precision: %.4f bits per weight planned for a target of %g "
                       "(reachable %.4f .. %.4f)",
                       planner.bpw(alloc.bits), *m.target_bpw, planner.min_bpw(), planner.max_bpw()));
    QuantizeReport r = quantize_once(q, json_out);
    std::filesystem::remove(sidecar);
    r.mixed = plan;
    r.seconds = seconds_since(t0);
    return r;
  }

  // --budget: bisection over the target between the smallest reachable and the largest allowed
  // (at most every free linear at its largest quantized candidate: the search looks for a
  // quantized model).
  double lo = planner.min_bpw(), hi = planner.max_bpw();
  {
    std::vector<Choice> quantized;
    for (const Choice& c : candidates)
      if (c) quantized.push_back(c);
    if (!quantized.empty()) hi = Planner(ws, opts, nullptr, quantized, m.tie_groups).max_bpw();
  }
  if (budget->max_bits_per_weight) hi = std::min(hi, *budget->max_bits_per_weight);
  json steps = json::array();
  int k = 0;
  std::optional<std::pair<double, std::string>> best;  // (bpw, file) of the smallest passing try
  std::optional<QuantizeReport> best_report;
  std::vector<std::string> tries;
  std::vector<interrupt::RemoveOnSignal> try_guards;  // an interrupted search leaves no tries
  std::string last_failure;  // the first failed limit of the last failing try
  const auto attempt = [&](double target) {
    const auto [choices, alloc] = planner.plan(target);
    QuantizeOptions q = opts;
    for (const auto& [n, c] : choices) q.tensor_desc[n] = c;
    q.out_path = try_path(opts.out_path, k++);
    tries.push_back(q.out_path);
    const auto ts = Clock::now();
    QuantizeReport r = quantize_once(q, "");
    try_guards.emplace_back(q.out_path);
    EvalOptions e = m.eval;
    e.model = q.out_path;
    e.ref = m.ref.empty() ? opts.model_path : m.ref;
    e.json_out.clear();
    e.progress = false;
    const json ej = model::to_json(run_eval(e));
    const auto results = report::check_budget(*budget, ej, report::model_facts(q.out_path));
    const bool ok = report::all_passed(results);
    json failed = json::array();
    for (const auto& lr : results)
      if (!lr.passed) {
        if (failed.empty()) last_failure = lr.message;
        failed.push_back(lr.name);
      }
    json step = {{"target_bpw", target}, {"bpw", r.block_bpw()}, {"passed", ok},
                 {"failed", failed}, {"seconds", seconds_since(ts)}};
    for (const char* key : {"kld_mean", "top1_agreement", "ppl_ratio"})
      if (ej.contains(key)) step[key] = ej[key];
    steps.push_back(step);
    log_info(strprintf("budget search step %d: target %.4f -> %.4f bits per weight, %s", k, target,
                       r.block_bpw(), ok ? "passes" : "fails"));
    if (ok && (!best || r.block_bpw() < best->first)) {
      best = {r.block_bpw(), q.out_path};
      r.mixed = json{{"choices", choices_json(choices)}, {"predicted_cost", alloc.cost}};
      best_report = std::move(r);
    }
    return ok;
  };
  const auto cleanup = [&] {
    for (const auto& f : tries)
      if (!best || f != best->second) std::filesystem::remove(f);
  };
  try {
    if (!attempt(hi)) {
      cleanup();
      std::filesystem::remove(sidecar);  // nothing to resume
      throw ConfigError(strprintf("'%s': no plan up to %.4f bits per weight passes: %s",
                                  m.budget.c_str(), hi, last_failure.c_str()));
    }
    if (!attempt(lo)) {
      for (int s = 0; s < m.budget_steps; ++s) {
        const double mid = 0.5 * (lo + hi);
        if (attempt(mid)) hi = mid; else lo = mid;
      }
    }
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  std::filesystem::rename(best->second, opts.out_path);
  std::filesystem::remove(sidecar);
  QuantizeReport r = std::move(*best_report);
  plan.update(r.mixed);
  plan["budget"] = m.budget;
  plan["budget_search"] = steps;
  plan["quantize_eval_runs"] = k;
  r.mixed = plan;
  r.seconds = seconds_since(t0);
  log_info(strprintf("budget search: %d quantize + eval runs; the smallest passing model has %.4f "
                     "bits per weight", k, best->first));
  return r;
}

}  // namespace detail
}  // namespace dsq::jobs
