// The streaming quantization driver behind `dsq quantize`. It opens a model, decides per tensor
// whether it is quantized (transformer-block linears only: dsq::is_block_linear, minus --skip
// matches), hands each selected linear to the method's LinearQuantizer, and streams every tensor
// into a .dsq writer as soon as it is ready, so peak memory is one tensor (plus whatever the
// method keeps, e.g. one block for calibrated methods), independent of the model's size.
//
// Methods are rows of a table (quant_methods()): RTN is built in; calibrated methods (GPTQ, AWQ)
// add a row whose factory builds a LinearQuantizer from the source store and the options.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/quant_layout.h"
#include "lib/core/weight_store.h"
#include "lib/quant/rtn.h"

namespace dsq::calibration {

struct QuantizeOptions {
  std::string model_path;        // any format open_model() reads
  std::string out_path;          // .dsq, written via <out>.tmp + rename
  std::string method = "rtn";    // a quant_methods() row
  QuantDesc desc{4, 128, false};  // bits, group (0 = per output channel), sym
  bool mse_clip = false;         // per-group clipping search (rtn.h)
  std::string skip;              // ECMAScript regex; canonical names it matches (search) stay as is
  int zstd_level = 0;            // 0 = store tensors uncompressed
  // Method-specific settings (calibration file, damping, ...), recorded in the recipe verbatim.
  nlohmann::json method_options = nlohmann::json::object();
  // Method settings that never change the output bytes (--resume, statistics files, work dir):
  // passed to the method, not recorded, so a resumed run writes the same bytes.
  nlohmann::json method_runtime = nlohmann::json::object();
  bool progress = true;
};

// One row per tensor of the output, in file order.
struct TensorReport {
  std::string name;
  Shape shape;
  std::string dtype;           // stored dtype: "qint" or the source's ("f32", "f16", ...)
  std::string scheme;          // "int4_asym g128" for quantized tensors, else ""
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

struct QuantizeReport {
  std::vector<TensorReport> tensors;
  nlohmann::json recipe;                // as stored in the output header
  int64_t quantized_params = 0;         // logical weights of the quantized linears
  uint64_t quantized_bytes = 0;         // their stored bytes (64-byte section padding included)
  double quantized_bits = 0;            // their codes + scales + zeros in bits, padding excluded
  int64_t total_params = 0;             // every tensor
  uint64_t file_bytes = 0;              // the whole output file
  double seconds = 0;                   // wall time of the whole run
  double quantized_bpw() const;         // quantized_bits / quantized_params (as dsq eval reports)
  double file_bpw() const;              // 8 * file_bytes / total_params
  quant::QuantErrorStats error() const;  // summed over the quantized linears
};
void to_json(nlohmann::json& j, const TensorReport& r);
void to_json(nlohmann::json& j, const QuantizeReport& r);
// The report as an aligned text table plus a summary line (what `dsq quantize` prints).
std::string format_report(const QuantizeReport& r);

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
};

struct QuantMethod {
  std::string_view name;  // "rtn"
  std::string_view help;  // one line for the CLI
  std::function<std::unique_ptr<LinearQuantizer>(const WeightStore& src, const QuantizeOptions&)>
      make;
};
// The method table (RTN first). Names are stable: they are written into recipes.
const std::vector<QuantMethod>& quant_methods();
// Throws UsageError listing the methods when `name` is unknown.
const QuantMethod& find_quant_method(std::string_view name);
// "rtn, gptq": for help text.
std::string quant_method_names();

// Which tensors the driver quantizes: block linears of float dtype not matched by `skip`.
bool should_quantize(const std::string& canonical, DType dtype, const std::string& skip_regex);

// The recipe stored in the output header: method, bits, group, sym, mse_clip, skip, scheme name,
// method_options, dsq version, source path and format.
nlohmann::json quantize_recipe(const QuantizeOptions& opts, const std::string& source_format);

// Runs the whole job: validates options (UsageError for bad bits/group/regex/method), opens the
// model, streams every tensor to opts.out_path and returns the report.
QuantizeReport quantize_model(const QuantizeOptions& opts);

}  // namespace dsq::calibration
