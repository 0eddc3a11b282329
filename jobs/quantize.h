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

namespace dsq::jobs {

using calibration::all_method_options;
using calibration::find_quant_method;
using calibration::option_default_text;
using calibration::OptionKind;
using calibration::OptionSpec;
using calibration::pipeline_runtime_options;
using calibration::quant_method_names;
using calibration::quant_methods;
using calibration::QuantizeOptions;
using calibration::QuantMethod;
using calibration::TensorReport;

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
  double quantized_bpw() const;         // quantized_bits / quantized_params (as dsq eval reports)
  double file_bpw() const;              // 8 * file_bytes / total_params
  quant::QuantErrorStats error() const;  // summed over the quantized linears
};
void to_json(nlohmann::json& j, const QuantizeReport& r);
// The report as an aligned text table plus a summary line (what `dsq quantize` prints).
std::string format_report(const QuantizeReport& r);

// Runs the whole job: validates options (UsageError for a bad regex, method or method option),
// opens the model, streams every tensor to opts.out_path, writes the JSON report to json_out when
// given (atomically) and returns the report.
QuantizeReport run_quantize(QuantizeOptions opts, const std::string& json_out = "");

}  // namespace dsq::jobs
