// What a quantization method is to the streaming driver (jobs/quantize.h): the options of a run,
// the per-tensor report row, and the LinearQuantizer a method's row builds (methods.h). The driver
// decides per tensor whether it is quantized (the architecture table's block linears, minus --skip
// matches), hands each selected linear to the method's LinearQuantizer and streams every tensor
// into the output as soon as it is ready.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/quant_scheme.h"
#include "lib/core/weight_store.h"
#include "lib/quant/rtn.h"

namespace dsq::calibration {

struct QuantizeOptions {
  std::string model_path;        // any format open_model() reads
  std::string out_path;          // written via <out>.tmp + rename (an output sink, formats/sinks.h)
  std::string method = "rtn";    // a quant_methods() row
  QuantDesc desc{QuantScheme::kInt4Asym, 128};  // scheme + group (0 = per output channel)
  bool mse_clip = false;         // per-group clipping search (rtn.h)
  std::string skip;              // ECMAScript regex; canonical names it matches (search) stay as is
  int zstd_level = 0;            // 0 = store tensors uncompressed
  // The method's options (its OptionSpec rows, methods.h), recorded in the recipe verbatim.
  nlohmann::json method_options = nlohmann::json::object();
  // Settings that never change the output bytes (--resume, statistics files, work dir): passed to
  // the method, not recorded, so a resumed run writes the same bytes.
  nlohmann::json method_runtime = nlohmann::json::object();
  bool progress = true;
  // Mixed precision (jobs/quantize.h, MixedOptions): per-linear schemes that replace `desc`, by
  // canonical name; nullopt keeps the linear in 16-bit float ("f16": f16, or bf16 when the source
  // is bf16). Recorded in the recipe as "tensor_schemes", so a resumed run must plan the same.
  std::map<std::string, std::optional<QuantDesc>> tensor_desc;
  // The sensitivity probe of a calibrated method (calibration/pipeline.h): when non-empty, every
  // linear is also solved under each of these candidates (nullopt: f16) and the output errors
  // land in its report's extra["sensitivity"] ({"options": [{"scheme", "bits", "cost"}], "rtn":
  // {"scheme", "cost"}}: RTN's error under desc_for(), the KLD calibration's reference); the
  // linear itself is quantized with desc_for().
  std::vector<std::optional<QuantDesc>> probe;

  // The scheme of a quantized linear: its tensor_desc entry, else desc.
  QuantDesc desc_for(const std::string& canonical) const;
  // A linear that tensor_desc keeps in float.
  bool kept_float(const std::string& canonical) const;
  // should_quantize() below, minus the linears kept in float.
  bool quantizes(const ModelConfig& c, const std::string& canonical, DType dtype,
                 const QuantDesc* quant = nullptr) const;
};

// A per-linear choice spelled as in recipes, reports and --tensor-type: a scheme name
// ("int4_sym_g64") or "f16" for a linear kept in float.
std::string tensor_scheme_name(const std::optional<QuantDesc>& d);
// The inverse; UsageError listing what is accepted for anything else.
std::optional<QuantDesc> parse_tensor_scheme(std::string_view s);
// The stored bits of a linear [rows, cols] under a choice (codes + scales + zeros, as dsq eval
// counts them; 16 per weight in f16).
int64_t tensor_scheme_bits(const std::optional<QuantDesc>& d, int64_t rows, int64_t cols);

// One row per tensor of the output, in file order.
struct TensorReport {
  std::string name;
  Shape shape;
  std::string dtype;           // stored dtype: "qint" or the source's ("f32", "f16", ...)
  std::string scheme;          // "int4_asym_g128" for quantized tensors, else ""
  bool quantized = false;
  int64_t params = 0;          // logical elements
  uint64_t bytes = 0;          // stored tensor bytes (before any file compression)
  double bits_per_weight = 0;  // codes + scales + zeros (or dtype bits), per logical element
  // ||W - Q||^2 and ||W||^2 (zero for unquantized tensors); error.rel() is the relative squared
  // error, error.sqnr_db() the SQNR.
  quant::QuantErrorStats error;
  double seconds = 0;          // time spent quantizing (0 for copied tensors)
  nlohmann::json extra = nlohmann::json::object();  // method-specific fields (e.g. GPTQ errors)
};
void to_json(nlohmann::json& j, const TensorReport& r);

// A method's per-run state. The driver calls begin_block(L) once per transformer block, in
// increasing L, before asking for that block's selected linears (so a calibrated method can run
// the block over its calibration activations there), then quantize() for each selected linear.
class LinearQuantizer {
 public:
  virtual ~LinearQuantizer() = default;
  virtual void begin_block(int64_t /*layer*/) {}
  // Quantize linear `name` (canonical; w is its source tensor, any float dtype, [out, in]) into a
  // kQInt tensor with opts.desc. Fill rep->error (||W - Q||^2, ||W||^2) and any rep->extra
  // fields; the driver fills the rest (name, shape, bytes, bpw, time).
  virtual Tensor quantize(const std::string& name, const Tensor& w, TensorReport* rep) = 0;
  // For a block tensor the driver does not quantize (norms, biases, skipped linears): the tensor
  // to write instead of the source's when the method changed it (AWQ folds scales into norms and
  // producer linears), else nullopt. Called after begin_block of its layer.
  virtual std::optional<Tensor> replace(const std::string& /*name*/) { return std::nullopt; }
  // Where a calibrated method's time went, for the report (seconds per stage); null without one.
  virtual nlohmann::json profile() const { return nullptr; }
};

// Which tensors the driver quantizes: block linears (arch table) of float dtype, or of a storage
// scheme (block FP8 with `quant`, dequantized as the source precision), not matched by `skip` (an
// ECMAScript regex, searched; UsageError when it does not compile).
bool should_quantize(const ModelConfig& c, const std::string& canonical, DType dtype,
                     const std::string& skip_regex, const QuantDesc* quant = nullptr);

// The recipe stored in the output header: method, bits, group, sym, scheme (canonical name),
// mse_clip, skip, method_options, dsq version, source path and format.
nlohmann::json quantize_recipe(const QuantizeOptions& opts, const std::string& source_format);

}  // namespace dsq::calibration
