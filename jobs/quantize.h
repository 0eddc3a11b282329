// `dsq quantize`: the streaming driver. Opens a model, resolves the method's options (method
// table, calibration/methods.h), decides per tensor whether it is quantized (block linears of the
// architecture table minus --skip matches), hands each selected linear to the method's
// LinearQuantizer and streams every tensor into the output sink (formats/sinks.h) as soon as it is
// ready, so peak memory is one tensor (plus whatever the method keeps, e.g. one block for the
// calibrated methods), independent of the model's size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/methods.h"
#include "calibration/quantizer.h"
#include "jobs/eval.h"

namespace dsq::jobs {

using calibration::all_method_options;
using calibration::find_quant_method;
using calibration::option_default_text;
using calibration::OptionKind;
using calibration::OptionSpec;
using calibration::parse_tensor_scheme;
using calibration::pipeline_runtime_options;
using calibration::quant_method_names;
using calibration::quant_methods;
using calibration::QuantizeOptions;
using calibration::QuantMethod;
using calibration::TensorReport;

// Mixed precision (docs/MIXED.md): per-linear schemes by hand, by a bits-per-weight target, or by
// an error budget.
struct TensorTypeRule {
  std::string pattern;                // ECMAScript regex, searched in canonical names
  std::optional<QuantDesc> scheme;    // nullopt: keep in f16
};
// "REGEX=SCHEME" (--tensor-type) -> a rule; UsageError for a bad regex, scheme or spelling.
TensorTypeRule parse_tensor_type_rule(const std::string& spec);

struct MixedOptions {
  // --tensor-type / --keep, in order: the first rule matching a quantizable linear pins it (the
  // search leaves it alone). A rule that matches no linear is an error.
  std::vector<TensorTypeRule> rules;
  // --target-bpw: the block linears' bits per weight (dsq eval's figure: every block linear,
  // codes + scales + zeros, float ones at their dtype) stay at or below this.
  std::optional<double> target_bpw;
  // Candidate choices of the search (empty: kDefaultCandidates).
  std::vector<std::optional<QuantDesc>> candidates;
  // The linears of one group (same input, e.g. q/k/v, gate/up) take one scheme, as runtimes that
  // fuse them (vLLM's qkv_proj and gate_up_proj) need.
  bool tie_groups = false;
  // The KLD calibration of the predicted costs (quantize_mixed.cpp): tokens of the calibration
  // windows it runs the model on, once per linear (per layer and kind for experts); 0 = off
  // (costs stay output errors, which are not comparable across linears).
  int64_t kld_tokens = 4096;
  // --budget FILE: the smallest model that passes the budget, by a search over the target with a
  // real quantize + eval (eval: the stream settings; model and ref are filled in) per step.
  std::string budget;
  EvalOptions eval;
  std::string ref;     // the budget's reference model (default: the input model)
  int budget_steps = 6;  // bisection steps after the end points

  bool active() const { return !rules.empty() || target_bpw || !budget.empty(); }
};
// int{2,3,4,8}_{sym,asym} at groups 32, 64, 128, 256 and per channel, and f16.
std::vector<std::optional<QuantDesc>> default_mixed_candidates();

struct QuantizeReport {
  std::vector<TensorReport> tensors;
  nlohmann::json recipe;                // as stored in the output header
  int64_t quantized_params = 0;         // logical weights of the quantized linears
  uint64_t quantized_bytes = 0;         // their stored bytes (64-byte section padding included)
  double quantized_bits = 0;            // their codes + scales + zeros in bits, padding excluded
  int64_t total_params = 0;             // every tensor
  uint64_t file_bytes = 0;              // the whole output file
  std::vector<std::string> notes;       // the output sink's (formats::SinkReport::notes)
  double seconds = 0;                   // wall time of the whole run
  double block_bits = 0;                // every block linear (float ones at their dtype's bits)
  int64_t block_params = 0;
  // Mixed precision: the plan (target, candidates, predicted cost, choices, the budget search's
  // steps); empty for a uniform run.
  nlohmann::json mixed;
  // A calibrated method's time per stage (LinearQuantizer::profile); null otherwise.
  nlohmann::json profile;
  double quantized_bpw() const;
  double block_bpw() const;             // block_bits / block_params: what dsq eval reports         // quantized_bits / quantized_params (as dsq eval reports)
  double file_bpw() const;              // 8 * file_bytes / total_params
  quant::QuantErrorStats error() const;  // summed over the quantized linears
};
void to_json(nlohmann::json& j, const QuantizeReport& r);
// The report as an aligned text table plus a summary line (what `dsq quantize` prints).
std::string format_report(const QuantizeReport& r);

// Runs the whole job: validates options (UsageError for a bad regex, method or method option),
// opens the model, streams every tensor to opts.out_path, writes the JSON report to json_out when
// given (atomically) and returns the report.
// With `mixed` active, plans the per-linear schemes first (jobs/quantize_mixed.cpp): a sensitivity
// probe of the method (cached in --save-stats files and reused from --load-stats ones), an
// allocation under --target-bpw, or a search under --budget.
QuantizeReport run_quantize(QuantizeOptions opts, const std::string& json_out = "",
                            const MixedOptions& mixed = {});

namespace detail {
// One quantization pass with opts.tensor_desc as given (no planning); json_out is only checked
// as a destination.
QuantizeReport quantize_once(QuantizeOptions opts, const std::string& json_out);
// The mixed-precision planning and search of run_quantize.
QuantizeReport run_mixed(QuantizeOptions opts, const std::string& json_out, const MixedOptions& m);
}  // namespace detail

}  // namespace dsq::jobs
