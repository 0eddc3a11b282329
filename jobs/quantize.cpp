#include "jobs/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>
#include <vector>

#include "calibration/methods.h"
#include "formats/format_table.h"
#include "formats/sinks.h"
#include "jobs/job_util.h"
#include "lib/core/arch.h"
#include "lib/core/dist.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/quant/quant_types.h"
#include "lib/quant/rtn.h"

namespace dsq::jobs {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Compiles --skip once up front so a bad regex is a usage error before any work.
void check_skip_regex(const std::string& skip) {
  if (skip.empty()) return;
  try {
    std::regex re(skip, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError("--skip: invalid regular expression '" + skip.substr(0, 80) + "': " + e.what());
  }
}

// A model whose block linears are all quantized already has nothing to quantize: refuse it instead
// of writing a copy under a new scheme's name.
void check_requantization(const WeightStore& ws, const std::string& path) {
  std::string scheme;
  for (const auto& name : ws.names()) {
    if (!is_block_linear(ws.config, name)) continue;
    const auto& e = ws.entry(name);
    if (dtype_is_float(e.dtype)) return;
    if (e.dtype == DType::kQInt && !e.quant.info().quantize_target()) return;  // FP8 source
    if (e.dtype == DType::kQInt && scheme.empty()) scheme = scheme_name(e.quant);
  }
  if (!scheme.empty())
    throw ConfigError("'" + path + "': its block linears are already quantized (" + scheme +
                      "): quantize the float model");
}

// Rejects NaN/Inf weights before they reach a quantizer (which cannot represent them), by their
// exponent bits in place: no f32 copy of the tensor.
void check_finite(const Tensor& w, const std::string& name, const std::string& source) {
  const int64_t i = first_nonfinite(w.dtype(), w.bytes(), static_cast<size_t>(w.numel()));
  if (i >= 0)
    throw FormatError(strprintf("'%s': tensor '%s': non-finite weight at element %lld",
                                source.c_str(), name.c_str(), static_cast<long long>(i)));
}

// The output of MPI ranks other than 0: tensors are dropped, nothing is written.
class DiscardSink : public formats::ModelSink {
 public:
  void add(const std::string&, const Tensor&, const nlohmann::json&) override {}
  formats::SinkReport finish() override { return {}; }
};

}  // namespace

double QuantizeReport::quantized_bpw() const {
  return quantized_params ? quantized_bits / static_cast<double>(quantized_params) : 0.0;
}
double QuantizeReport::block_bpw() const {
  return block_params ? block_bits / static_cast<double>(block_params) : 0.0;
}
double QuantizeReport::file_bpw() const {
  return total_params ? 8.0 * static_cast<double>(file_bytes) / total_params : 0.0;
}
quant::QuantErrorStats QuantizeReport::error() const {
  quant::QuantErrorStats s;
  for (const auto& t : tensors) {
    s.err_sq += t.error.err_sq;
    s.norm_sq += t.error.norm_sq;
  }
  return s;
}

void to_json(json& j, const QuantizeReport& r) {
  j = json{{"recipe", r.recipe},
           {"tensors", r.tensors},
           {"summary",
            {{"quantized_params", r.quantized_params},
             {"quantized_bytes", r.quantized_bytes},
             {"quantized_bits_per_weight", r.quantized_bpw()},
             {"total_params", r.total_params},
             {"file_bytes", r.file_bytes},
             {"file_bits_per_weight", r.file_bpw()},
             {"block_linear_bits_per_weight", r.block_bpw()},
             {"rel_err", r.error().rel()},
             {"sqnr_db", std::isfinite(r.error().sqnr_db()) ? json(r.error().sqnr_db()) : json(nullptr)},
             {"seconds", r.seconds}}},
           {"notes", r.notes}};
  if (!r.mixed.is_null()) j["mixed"] = r.mixed;
  if (!r.profile.is_null()) j["profile"] = r.profile;
}

std::string format_report(const QuantizeReport& r) {
  size_t w = 6;
  for (const auto& t : r.tensors) w = std::max(w, t.name.size());
  std::string out = strprintf("%-*s %-16s %-16s %7s %10s %8s %8s\n", static_cast<int>(w), "tensor",
                              "shape", "type", "bpw", "rel_err", "sqnr_db", "time_s");
  for (const auto& t : r.tensors) {
    const std::string type = t.quantized ? t.scheme : t.dtype;
    const std::string err = t.quantized ? strprintf("%10.3e", t.error.rel()) : "         -";
    const std::string sqnr = t.quantized ? strprintf("%8.2f", t.error.sqnr_db()) : "       -";
    out += strprintf("%-*s %-16s %-16s %7.3f %s %s %8.3f\n", static_cast<int>(w), t.name.c_str(),
                     shape_str(t.shape).c_str(), type.c_str(), t.bits_per_weight, err.c_str(),
                     sqnr.c_str(), t.seconds);
  }
  out += strprintf("quantized linears: %lld weights at %.3f bits/weight, rel_err %.3e; file: %.3f "
                   "bits/weight over %lld parameters (%llu bytes); %.2fs\n",
                   static_cast<long long>(r.quantized_params), r.quantized_bpw(), r.error().rel(),
                   r.file_bpw(), static_cast<long long>(r.total_params),
                   static_cast<unsigned long long>(r.file_bytes), r.seconds);
  return out;
}

QuantizeReport run_quantize(QuantizeOptions opts, const std::string& json_out,
                            const MixedOptions& mixed) {
  QuantizeReport report = mixed.active() ? detail::run_mixed(std::move(opts), json_out, mixed)
                                         : detail::quantize_once(std::move(opts), json_out);
  if (!json_out.empty() && dist::is_root()) write_json_file(json_out, json(report));
  return report;
}

namespace detail {

QuantizeReport quantize_once(QuantizeOptions opts, const std::string& json_out) {
  if (opts.model_path.empty()) throw UsageError("missing input model");
  if (opts.out_path.empty()) throw UsageError("missing output path (-o)");
  const auto t_start = Clock::now();
  make_quant_desc(opts.desc.bits(), opts.desc.group, opts.desc.sym());  // the CLI's rules
  // A GGUF output of asymmetric 4-bit groups: fit on int4_asymf's grid, whose scale x zero is an
  // exact f16, so the result is llama.cpp's Q4_1 with the same numbers (docs/EXPORT.md).
  std::string scheme_note;
  if (std::filesystem::path(opts.out_path).extension() == ".gguf")
    for (auto& [name, d] : opts.tensor_desc)
      if (d && d->scheme == QuantScheme::kInt4Asym) d->scheme = QuantScheme::kInt4AsymF;
  if (opts.desc.scheme == QuantScheme::kInt4Asym &&
      std::filesystem::path(opts.out_path).extension() == ".gguf") {
    opts.desc.scheme = QuantScheme::kInt4AsymF;
    scheme_note = "'" + opts.out_path + "': int4_asym became " + scheme_name(opts.desc) +
                  " (scales on a grid that keeps -scale x zero an f16) so that GGUF's Q4_1 holds "
                  "the result exactly";
    log_info(scheme_note);
  }
  const calibration::QuantMethod& method = calibration::find_quant_method(opts.method);
  opts.method_options = calibration::resolve_method_options(method, opts.method_options);
  check_skip_regex(opts.skip);
  const WeightStore ws = formats::open_model(opts.model_path);
  const std::string src_format = ws.metadata.value("source_format", std::string());
  {  // every input and destination, before any work
    IoPlan io;
    io.model_inputs(ws);
    const nlohmann::json rt = method.calibrated ? calibration::resolve_runtime_options(opts.method_runtime)
                                                : nlohmann::json::object();
    if (method.calibrated) {
      io.inputs(calibration::calib_options(opts.method_options).paths);
      io.input(rt["load_stats"].get<std::string>());
      io.output(rt["save_stats"].get<std::string>(), "--save-stats");
    }
    io.model_output(opts.out_path);
    io.output(json_out, "--json");
    io.check();
  }
  check_requantization(ws, opts.model_path);

  QuantizeReport report;
  report.recipe = calibration::quantize_recipe(opts, src_format);
  formats::SinkOptions so;
  so.recipe = report.recipe;
  so.zstd_level = opts.zstd_level;
  set_sink_tokenizer(so, ws);
  // The method validates its inputs (calibration data, statistics) before the output exists.
  std::unique_ptr<calibration::LinearQuantizer> quantizer = method.make(ws, opts);
  // Under MPI only rank 0 writes (lib/core/dist.h); the others run the same pipeline.
  const std::unique_ptr<formats::ModelSink> sink =
      dist::is_root() ? formats::open_sink(opts.out_path, ws, so) : std::make_unique<DiscardSink>();

  std::optional<Progress> bar;
  // Calibrated methods show their own per-block bar; a second one would only stall beside it.
  if (opts.progress && !method.calibrated)
    bar.emplace("quantizing", static_cast<int64_t>(ws.size()), "tensors");
  int64_t next_block = 0;  // blocks begun so far: begin_block(L) runs once, in increasing L
  for (const auto& name : ws.names()) {
    const auto& e = ws.entry(name);
    TensorReport rep;
    rep.name = name;
    rep.shape = e.shape;
    rep.params = shape_numel(e.shape, name);
    const Tensor src = e.load();
    Tensor t = src;
    int64_t layer = 0;
    const bool in_block = parse_block_name(name, &layer, nullptr);
    if (opts.quantizes(ws.config, name, t.dtype(), &e.quant)) {
      if (t.ndim() != 2)
        throw ShapeError(strprintf("'%s': tensor '%s': linear weight must be 2-D, got %s",
                                   e.source.c_str(), name.c_str(), shape_str(t.shape()).c_str()));
      if (t.dtype() == DType::kQInt) t = t.to(DType::kF32);  // an FP8 source, one tensor at a time
      check_finite(t, name, e.source);
      const auto t0 = Clock::now();
      for (; next_block <= layer; ++next_block) quantizer->begin_block(next_block);
      t = quantizer->quantize(name, t, &rep);
      rep.seconds = seconds_since(t0);
      DSQ_ASSERT(t.dtype() == DType::kQInt && t.quant() == opts.desc_for(name),
                 "method returned a bad tensor");
      rep.quantized = true;
      rep.scheme = scheme_name(t.quant());
      report.quantized_params += rep.params;
      report.quantized_bytes += t.nbytes();
    } else if (in_block) {
      for (; next_block <= layer; ++next_block) quantizer->begin_block(next_block);
      if (std::optional<Tensor> r = quantizer->replace(name)) {
        DSQ_ASSERT(r->shape() == t.shape(), "method replaced %s with another shape", name.c_str());
        t = std::move(*r);
        rep.extra["replaced"] = true;  // e.g. an AWQ-scaled norm
      }
    }
    if (opts.kept_float(name) && dtype_size(t.dtype()) != 2) {  // f32 or an FP8 source: f16
      if (t.dtype() == DType::kQInt) t = t.to(DType::kF32);
      t = t.to(DType::kF16);
      check_finite(t, name, e.source);  // a weight beyond f16's range
    }
    if (opts.kept_float(name)) rep.scheme = "f16";
    rep.dtype = std::string(dtype_name(t.dtype()));
    rep.bytes = t.nbytes();
    rep.bits_per_weight =
        t.dtype() == DType::kQInt ? quant_bits_per_weight(t.quant(), t.dim(0), t.dim(1))
                                  : 8.0 * static_cast<double>(dtype_size(t.dtype()));
    if (rep.quantized) report.quantized_bits += rep.bits_per_weight * static_cast<double>(rep.params);
    if (is_block_linear(ws.config, name)) {  // what dsq eval reports as bits/weight
      report.block_bits += rep.bits_per_weight * static_cast<double>(rep.params);
      report.block_params += rep.params;
    }
    sink->add(name, t, e.attrs);
    release_mapped_pages(src);
    report.total_params += rep.params;
    report.tensors.push_back(std::move(rep));
    if (bar) bar->add();
  }
  if (bar) bar->finish();
  if (report.quantized_params == 0)
    log_warn("no tensor was quantized (no block linears matched, or --skip matched all of them)");
  report.profile = quantizer->profile();
  const formats::SinkReport wr = sink->finish();
  report.file_bytes = wr.file_bytes;
  report.notes = wr.notes;
  if (!scheme_note.empty()) report.notes.insert(report.notes.begin(), scheme_note);
  report.seconds = seconds_since(t_start);
  return report;
}

}  // namespace detail

}  // namespace dsq::jobs
