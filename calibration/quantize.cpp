#include "calibration/quantize.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <regex>
#include <vector>

#include "calibration/pipeline.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/progress.h"
#include "lib/quant/quant_types.h"
#include "lib/quant/rtn.h"

namespace dsq::calibration {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Round-to-nearest: no calibration, each linear on its own.
class RtnQuantizer : public LinearQuantizer {
 public:
  explicit RtnQuantizer(const QuantizeOptions& o) : desc_(o.desc) { opts_.mse_clip = o.mse_clip; }
  Tensor quantize(const std::string&, const Tensor& w, TensorReport* rep) override {
    return quant::quantize_tensor_rtn(w, desc_, opts_, &rep->error);
  }

 private:
  QuantDesc desc_;
  quant::RtnOptions opts_;
};

std::optional<std::regex> compile_skip(const std::string& skip) {
  if (skip.empty()) return std::nullopt;
  try {
    return std::regex(skip, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError("--skip: invalid regular expression '" + skip + "': " + e.what());
  }
}

bool selected(const std::string& name, DType dtype, const std::optional<std::regex>& skip) {
  return is_block_linear(name) && dtype_is_float(dtype) && !(skip && std::regex_search(name, *skip));
}

void validate(const QuantizeOptions& o) {
  if (o.model_path.empty()) throw UsageError("missing input model");
  if (o.out_path.empty()) throw UsageError("missing output path (-o)");
  find_quant_method(o.method);
  if (!quant::desc_supported(o.desc))
    throw UsageError(strprintf("unsupported scheme: %d bits, group %u (bits: %s; groups: 32, 64, "
                               "128, 256 or 0 for per output channel)",
                               o.desc.bits, o.desc.group, quant::supported_bits_list().c_str()));
}

// Rejects NaN/Inf weights before they reach a quantizer (which cannot represent them). Converts
// in chunks: no full f32 copy of the tensor.
void check_finite(const Tensor& w, const std::string& name, const std::string& source) {
  constexpr int64_t kChunk = int64_t{1} << 16;
  std::vector<float> buf(static_cast<size_t>(std::min(kChunk, w.numel())));
  const size_t es = dtype_size(w.dtype());
  for (int64_t i0 = 0; i0 < w.numel(); i0 += kChunk) {
    const int64_t n = std::min(kChunk, w.numel() - i0);
    convert_elements(w.dtype(), w.bytes() + static_cast<size_t>(i0) * es, DType::kF32, buf.data(),
                     static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(buf[static_cast<size_t>(i)]))
        throw FormatError(strprintf("'%s': tensor '%s': non-finite weight at element %lld",
                                    source.c_str(), name.c_str(), static_cast<long long>(i0 + i)));
  }
}

// Drops the process's mapping of a borrowed (mmap-backed) source tensor once it has been written:
// the pages stay in the page cache but leave this process's RSS, so peak RSS does not grow with
// the number of tensors read. Owned tensors are freed by their destructor instead.
void release_source_pages(const Tensor& t) {
  if (t.owned() || t.nbytes() == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.bytes());
  const uintptr_t first = (begin + page - 1) / page * page;  // whole pages inside the tensor only
  const uintptr_t last = (begin + t.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

const std::vector<QuantMethod>& quant_methods() {
  static const std::vector<QuantMethod> kMethods = {
      {"rtn", "round-to-nearest with min/max (or --mse-clip fitted) group scales; no calibration",
       [](const WeightStore&, const QuantizeOptions& o) -> std::unique_ptr<LinearQuantizer> {
         return std::make_unique<RtnQuantizer>(o);
       }},
      {"gptq", "GPTQ (Frantar et al. 2022) on calibration data, block by block (--calib)",
       make_calibrated_quantizer},
      {"awq", "AWQ (Lin et al. 2023): activation-aware scales and clipping on calibration data, "
              "then round-to-nearest (--calib)",
       make_calibrated_quantizer},
      {"awq+gptq", "AWQ scales folded in, then GPTQ on the scaled weights (--calib)",
       make_calibrated_quantizer},
  };
  return kMethods;
}

const QuantMethod& find_quant_method(std::string_view name) {
  for (const auto& m : quant_methods())
    if (m.name == name) return m;
  throw UsageError("unknown quantization method '" + std::string(name) +
                   "' (available: " + quant_method_names() + ")");
}

std::string quant_method_names() {
  std::string out;
  for (const auto& m : quant_methods()) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

bool should_quantize(const std::string& canonical, DType dtype, const std::string& skip_regex) {
  return selected(canonical, dtype, compile_skip(skip_regex));
}

json quantize_recipe(const QuantizeOptions& o, const std::string& source_format) {
  return json{{"method", o.method},
              {"bits", o.desc.bits},
              {"group", o.desc.group},
              {"sym", o.desc.sym},
              {"scheme", std::string(quant::quant_traits(o.desc).name)},
              {"mse_clip", o.mse_clip},
              {"skip", o.skip},
              {"method_options", o.method_options},
              {"dsq_version", DSQ_VERSION},
              {"source", o.model_path},
              {"source_format", source_format}};
}

double QuantizeReport::quantized_bpw() const {
  return quantized_params ? quantized_bits / static_cast<double>(quantized_params) : 0.0;
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
             {"rel_err", r.error().rel()},
             {"sqnr_db", std::isfinite(r.error().sqnr_db()) ? json(r.error().sqnr_db()) : json(nullptr)},
             {"seconds", r.seconds}}}};
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

QuantizeReport quantize_model(const QuantizeOptions& opts) {
  validate(opts);
  const auto t_start = Clock::now();
  const auto skip = compile_skip(opts.skip);
  const QuantMethod& method = find_quant_method(opts.method);
  const WeightStore ws = formats::open_model(opts.model_path);
  const std::string src_format = ws.metadata.value("source_format", std::string());

  QuantizeReport report;
  report.recipe = quantize_recipe(opts, src_format);
  formats::DsqWriteOptions wo;
  wo.recipe = report.recipe;
  wo.zstd_level = opts.zstd_level;
  formats::DsqWriter writer(opts.out_path, formats::dsq_header_for(ws, wo), opts.zstd_level);
  std::unique_ptr<LinearQuantizer> quantizer = method.make(ws, opts);

  std::optional<Progress> bar;
  if (opts.progress) bar.emplace("quantizing", static_cast<int64_t>(ws.size()), "tensors");
  int64_t next_block = 0;  // blocks begun so far: begin_block(L) runs once, in increasing L
  const std::string scheme = quant::desc_str(opts.desc);
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
    if (selected(name, t.dtype(), skip)) {
      if (t.ndim() != 2)
        throw ShapeError(strprintf("'%s': tensor '%s': linear weight must be 2-D, got %s",
                                   e.source.c_str(), name.c_str(), shape_str(t.shape()).c_str()));
      check_finite(t, name, e.source);
      const auto t0 = Clock::now();
      for (; next_block <= layer; ++next_block) quantizer->begin_block(next_block);
      t = quantizer->quantize(name, t, &rep);
      rep.seconds = seconds_since(t0);
      DSQ_ASSERT(t.dtype() == DType::kQInt && t.quant() == opts.desc, "method returned a bad tensor");
      rep.quantized = true;
      rep.scheme = scheme;
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
    rep.dtype = std::string(dtype_name(t.dtype()));
    rep.bytes = t.nbytes();
    rep.bits_per_weight =
        rep.quantized ? quant_bits_per_weight(opts.desc, t.dim(0), t.dim(1))
                      : 8.0 * static_cast<double>(dtype_size(t.dtype()));
    if (rep.quantized) report.quantized_bits += rep.bits_per_weight * static_cast<double>(rep.params);
    writer.add(name, t, e.attrs);
    release_source_pages(src);
    report.total_params += rep.params;
    report.tensors.push_back(std::move(rep));
    if (bar) bar->add();
  }
  if (bar) bar->finish();
  if (report.quantized_params == 0)
    log_warn("no tensor was quantized (no block linears matched, or --skip matched all of them)");
  const formats::DsqWriteReport wr = writer.finish();
  report.file_bytes = wr.file_bytes;
  report.seconds = seconds_since(t_start);
  return report;
}

}  // namespace dsq::calibration
