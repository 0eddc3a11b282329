// `dsq quantize` flags of the calibrated methods (GPTQ, AWQ, AWQ+GPTQ on one pipeline): bound here
// so cmd_quantize.cpp stays thin. Output-changing settings go to QuantizeOptions::method_options
// (recorded in the recipe), the others to method_runtime (not recorded).
#pragma once

#include <CLI/CLI.hpp>

#include "calibration/quantize.h"

namespace dsq::tools {

void add_calib_quantize_flags(CLI::App& sub);
// Call from run() after parsing: fills q.method_options / q.method_runtime for calibrated methods
// (nothing for rtn).
void apply_calib_quantize_flags(calibration::QuantizeOptions& q);

}  // namespace dsq::tools
