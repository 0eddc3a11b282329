#include "calibration/methods.h"

#include <cmath>
#include <regex>

#include "calibration/pipeline.h"
#include "lib/core/error.h"
#include "lib/core/quant_layout.h"

namespace dsq::calibration {
namespace {

using nlohmann::json;
using K = OptionKind;

constexpr std::string_view kCalibGroup = "Calibrated methods (gptq, awq, awq+gptq)";

// ---- Option rows ---------------------------------------------------------------------------
const OptionSpec kCalib{"calib", "--calib",
                        "Calibration data: token ids (.u32) or text (.txt, .jsonl with a 'text' "
                        "field); repeat to mix files (windows drawn in proportion to their length)",
                        K::kPaths, 0, 0, 0, false, kCalibGroup};
const OptionSpec kCalibSamples{"calib_samples", "--calib-samples", "Calibration windows", K::kInt,
                               128, 1, 1 << 20, false, kCalibGroup};
const OptionSpec kCalibLen{"calib_len", "--calib-len", "Tokens per calibration window (BOS included)",
                           K::kInt, 512, 2, 1 << 20, false, kCalibGroup};
const OptionSpec kSeed{"seed", "--seed", "Seed of the calibration window draw", K::kInt, 0, 0,
                       9007199254740991.0, false, kCalibGroup};
const OptionSpec kCalibBos{"calib_bos", "--calib-no-bos", "Do not start calibration windows with BOS",
                           K::kFlag, 1, 0, 0, true, kCalibGroup};
const OptionSpec kDamp{"damp", "--damp",
                       "GPTQ damping as a fraction of the Hessian's mean diagonal (raised x10 when "
                       "the Cholesky fails)",
                       K::kReal, 0.01, 0, 100, false, kCalibGroup};
const OptionSpec kBlock{"block", "--block", "GPTQ lazy-batch width (columns)", K::kInt, 128, 1,
                        1 << 20, false, kCalibGroup};
const OptionSpec kActOrder{"act_order", "--act-order",
                           "GPTQ: quantize columns by decreasing activation energy (static groups: "
                           "no reordering at load)",
                           K::kFlag, 0, 0, 0, false, kCalibGroup};
const OptionSpec kAwqGrid{"awq_grid", "--awq-grid",
                          "AWQ: number of alpha values tried for the scales s = mean|x|^alpha (0, "
                          "1/N, ..., (N-1)/N)",
                          K::kInt, 20, 1, 1000, false, kCalibGroup};
const OptionSpec kExpertMinTokens{
    "expert_min_tokens", "--expert-min-tokens",
    "MoE: an expert routed fewer calibration tokens gets its statistics topped up to this many with "
    "unrouted tokens, evenly spaced over the calibration set (docs/MOE.md)",
    K::kInt, 128, 1, 1 << 30, false, kCalibGroup};
const OptionSpec kExpertCalibAll{"expert_calib_all", "--expert-calib-all",
                                 "MoE: every calibration token reaches every expert's statistics "
                                 "(routing still decides the block's output)",
                                 K::kFlag, 0, 0, 0, false, kCalibGroup};
const OptionSpec kResume{"resume", "--resume",
                         "Continue an interrupted run from OUT.partial/ (same output bytes)",
                         K::kFlag, 0, 0, 0, false, kCalibGroup};
const OptionSpec kSaveStats{"save_stats", "--save-stats",
                            "Write the per-linear Hessians and input norms (and AWQ's scales and "
                            "clips) to this HDF5 file",
                            K::kPath, 0, 0, 0, false, kCalibGroup};
const OptionSpec kLoadStats{"load_stats", "--load-stats",
                            "Quantize from saved statistics instead of calibrating (docs/STATS.md)",
                            K::kPath, 0, 0, 0, false, kCalibGroup};

// ---- Method factories ----------------------------------------------------------------------

// Round-to-nearest: no calibration, each linear on its own.
class RtnQuantizer : public LinearQuantizer {
 public:
  explicit RtnQuantizer(const QuantizeOptions& o) : o_(o) { opts_.mse_clip = o.mse_clip; }
  Tensor quantize(const std::string& name, const Tensor& w, TensorReport* rep) override {
    return quant::quantize_tensor_rtn(w, o_.desc_for(name), opts_, &rep->error);
  }

 private:
  QuantizeOptions o_;  // desc_for(): the scheme of each linear
  quant::RtnOptions opts_;
};

std::unique_ptr<LinearQuantizer> make_rtn(const WeightStore&, const QuantizeOptions& o) {
  return std::make_unique<RtnQuantizer>(o);
}
std::unique_ptr<quant::LinearSolver> gptq_solver(const json& o, bool mse_clip) {
  return quant::make_gptq_solver(gptq_options(o, mse_clip));
}
std::unique_ptr<quant::LinearSolver> awq_clip_solver(const json& o, bool) {
  return quant::make_awq_clip_solver(awq_options(o));
}

std::string number_str(double v) {  // a range bound as a user writes it
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::string s = strprintf("%.6g", v);
  return s;
}

json spec_default(const OptionSpec& s) {
  switch (s.kind) {
    case K::kFlag: return s.def != 0.0;
    case K::kInt: return static_cast<int64_t>(s.def);
    case K::kReal: return s.def;
    case K::kPath: return std::string();
    case K::kPaths: return json::array();
  }
  return nullptr;
}

// Checks one given value against its spec and returns it in canonical JSON form.
json check_value(const OptionSpec& s, const json& v) {
  const std::string f(s.flag);
  auto range = [&] { return "[" + number_str(s.lo) + ", " + number_str(s.hi) + "]"; };
  switch (s.kind) {
    case K::kFlag:
      if (!v.is_boolean()) throw UsageError(f + ": expected true or false");
      return v;
    case K::kPath:
      if (!v.is_string()) throw UsageError(f + ": expected a path");
      return v;
    case K::kPaths: {
      if (v.is_string()) return json::array({v});  // recipes written before lists
      if (!v.is_array()) throw UsageError(f + ": expected a list of paths");
      for (const auto& p : v)
        if (!p.is_string()) throw UsageError(f + ": expected a list of paths");
      return v;
    }
    case K::kInt: {
      if (!v.is_number_integer() || v.get<double>() < s.lo || v.get<double>() > s.hi)
        throw UsageError(f + " must be an integer in " + range());
      return v.get<int64_t>();
    }
    case K::kReal: {
      if (!v.is_number() || !(v.get<double>() >= s.lo) || !(v.get<double>() <= s.hi))
        throw UsageError(f + " must be a number in " + range());
      return v.get<double>();
    }
  }
  return v;
}

json resolve(const std::vector<const OptionSpec*>& specs, const json& given,
             const std::string& owner) {
  if (!given.is_object()) throw UsageError("method options must be a JSON object");
  json out = json::object();
  for (const OptionSpec* s : specs) {
    const auto it = given.find(std::string(s->key));
    out[std::string(s->key)] = it == given.end() ? spec_default(*s) : check_value(*s, *it);
  }
  for (const auto& [key, v] : given.items()) {
    if (out.contains(key)) continue;
    std::string flag = key;
    for (const OptionSpec* s : all_method_options())
      if (s->key == key) flag = std::string(s->flag);
    throw UsageError(flag + " does not apply to " + owner);
  }
  return out;
}

}  // namespace

const std::vector<QuantMethod>& quant_methods() {
  static const std::vector<QuantMethod> kMethods = {
      {"rtn", "round-to-nearest with min/max (or --mse-clip fitted) group scales; no calibration",
       /*calibrated=*/false, /*awq_scales=*/false, {}, nullptr, make_rtn},
      {"gptq", "GPTQ (Frantar et al. 2022) on calibration data, block by block (--calib)",
       /*calibrated=*/true, /*awq_scales=*/false,
       {&kCalib, &kCalibSamples, &kCalibLen, &kSeed, &kCalibBos, &kDamp, &kBlock, &kActOrder,
        &kExpertMinTokens, &kExpertCalibAll},
       gptq_solver, make_calibrated_quantizer},
      {"awq",
       "AWQ (Lin et al. 2023): activation-aware scales and clipping on calibration data, then "
       "round-to-nearest (--calib)",
       /*calibrated=*/true, /*awq_scales=*/true,
       {&kCalib, &kCalibSamples, &kCalibLen, &kSeed, &kCalibBos, &kAwqGrid, &kExpertMinTokens,
        &kExpertCalibAll},
       awq_clip_solver, make_calibrated_quantizer},
      {"awq+gptq", "AWQ scales folded in, then GPTQ on the scaled weights (--calib)",
       /*calibrated=*/true, /*awq_scales=*/true,
       {&kCalib, &kCalibSamples, &kCalibLen, &kSeed, &kCalibBos, &kDamp, &kBlock, &kActOrder,
        &kAwqGrid, &kExpertMinTokens, &kExpertCalibAll},
       gptq_solver, make_calibrated_quantizer},
  };
  return kMethods;
}

const QuantMethod& find_quant_method(std::string_view name) {
  for (const auto& m : quant_methods())
    if (m.name == name) return m;
  throw UsageError("unknown quantization method '" + std::string(name.substr(0, 64)) +
                   "' (available: " + quant_method_names() + ")");
}

std::string quant_method_names() {
  std::string out;
  for (const auto& m : quant_methods()) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

const std::vector<const OptionSpec*>& pipeline_runtime_options() {
  static const std::vector<const OptionSpec*> kRuntime = {&kResume, &kSaveStats, &kLoadStats};
  return kRuntime;
}

std::vector<const OptionSpec*> all_method_options() {
  std::vector<const OptionSpec*> out;
  auto add = [&](const OptionSpec* s) {
    for (const OptionSpec* o : out)
      if (o == s) return;
    out.push_back(s);
  };
  for (const auto& m : quant_methods())
    for (const OptionSpec* s : m.options) add(s);
  for (const OptionSpec* s : pipeline_runtime_options()) add(s);
  return out;
}

json resolve_method_options(const QuantMethod& m, const json& given) {
  return resolve(m.options, given, "--method " + std::string(m.name));
}

json resolve_runtime_options(const json& given) {
  json r = resolve(pipeline_runtime_options(), given, "this run");
  if (!r["save_stats"].get<std::string>().empty() && !r["load_stats"].get<std::string>().empty())
    throw UsageError("--save-stats and --load-stats cannot be combined");
  return r;
}

std::string option_default_text(const OptionSpec& s) { return number_str(s.def); }

CalibOptions calib_options(const json& o) {
  CalibOptions c;
  if (const auto it = o.find("calib"); it != o.end())
    c.paths = check_value(kCalib, *it).get<std::vector<std::string>>();
  c.n_samples = o.value("calib_samples", c.n_samples);
  c.seq_len = o.value("calib_len", c.seq_len);
  c.seed = o.value("seed", c.seed);
  c.bos = o.value("calib_bos", c.bos);
  return c;
}

quant::GptqOptions gptq_options(const json& o, bool mse_clip) {
  quant::GptqOptions g;
  g.damp = o.value("damp", g.damp);
  g.block = o.value("block", g.block);
  g.act_order = o.value("act_order", g.act_order);
  g.mse_clip = mse_clip;
  return g;
}

ExpertCalib expert_calib_options(const json& o) {
  ExpertCalib e;
  e.min_tokens = o.value("expert_min_tokens", e.min_tokens);
  e.all_tokens = o.value("expert_calib_all", e.all_tokens);
  return e;
}

quant::AwqOptions awq_options(const json& o) {
  quant::AwqOptions a;
  a.grid = o.value("awq_grid", a.grid);
  return a;
}

// ---- Driver helpers (quantizer.h) ------------------------------------------------------------

void to_json(json& j, const TensorReport& r) {
  j = json{{"name", r.name},         {"shape", r.shape},     {"dtype", r.dtype},
           {"scheme", r.scheme},     {"quantized", r.quantized}, {"params", r.params},
           {"bytes", r.bytes},       {"bits_per_weight", r.bits_per_weight},
           {"seconds", r.seconds}};
  if (r.quantized) {
    j["err_sq"] = r.error.err_sq;
    j["norm_sq"] = r.error.norm_sq;
    j["rel_err"] = r.error.rel();
    // JSON has no infinity: an exact reconstruction reports null SQNR.
    j["sqnr_db"] = std::isfinite(r.error.sqnr_db()) ? json(r.error.sqnr_db()) : json(nullptr);
  }
  if (!r.extra.empty()) j["extra"] = r.extra;
}

bool should_quantize(const ModelConfig& c, const std::string& canonical, DType dtype,
                     const std::string& skip_regex, const QuantDesc* quant) {
  const bool storage = dtype == DType::kQInt && quant && !quant->info().quantize_target();
  if (!is_block_linear(c, canonical) || !(dtype_is_float(dtype) || storage)) return false;
  if (skip_regex.empty()) return true;
  try {
    return !std::regex_search(canonical, std::regex(skip_regex, std::regex::ECMAScript));
  } catch (const std::regex_error& e) {
    throw UsageError("--skip: invalid regular expression '" + skip_regex.substr(0, 80) +
                     "': " + e.what());
  }
}

QuantDesc QuantizeOptions::desc_for(const std::string& canonical) const {
  const auto it = tensor_desc.find(canonical);
  return it != tensor_desc.end() && it->second ? *it->second : desc;
}

bool QuantizeOptions::kept_float(const std::string& canonical) const {
  const auto it = tensor_desc.find(canonical);
  return it != tensor_desc.end() && !it->second;
}

bool QuantizeOptions::quantizes(const ModelConfig& c, const std::string& canonical, DType dtype,
                                const QuantDesc* quant) const {
  return should_quantize(c, canonical, dtype, skip, quant) && !kept_float(canonical);
}

std::string tensor_scheme_name(const std::optional<QuantDesc>& d) {
  return d ? scheme_name(*d) : std::string("f16");
}

std::optional<QuantDesc> parse_tensor_scheme(std::string_view s) {
  if (s == "f16") return std::nullopt;
  return make_quant_desc(s);  // UsageError naming the rows and groups
}

int64_t tensor_scheme_bits(const std::optional<QuantDesc>& d, int64_t rows, int64_t cols) {
  if (!d) return 16 * rows * cols;
  const QuantLayout L = quant_layout(*d, rows, cols);
  return 8 * static_cast<int64_t>(L.codes_bytes + L.scales_bytes + L.zeros_bytes);
}

json quantize_recipe(const QuantizeOptions& o, const std::string& source_format) {
  json r = json{{"method", o.method},
              {"bits", o.desc.bits()},
              {"group", o.desc.group},
              {"sym", o.desc.sym()},
              {"scheme", scheme_name(o.desc)},
              {"mse_clip", o.mse_clip},
              {"skip", o.skip},
              {"method_options", o.method_options},
              {"dsq_version", DSQ_VERSION},
              {"source", o.model_path},
              {"source_format", source_format}};
  if (!o.tensor_desc.empty()) {
    json t = json::object();
    for (const auto& [name, d] : o.tensor_desc) t[name] = tensor_scheme_name(d);
    r["tensor_schemes"] = std::move(t);
  }
  if (!o.probe.empty()) {
    json c = json::array();
    for (const auto& d : o.probe) c.push_back(tensor_scheme_name(d));
    r["probe"] = std::move(c);
  }
  return r;
}

}  // namespace dsq::calibration
