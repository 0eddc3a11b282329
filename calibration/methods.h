// The quantization method table: one row per method (rtn, gptq, awq, awq+gptq). A row gives the
// method's name and help, what it needs (calibration data), how the layer-by-layer pipeline runs
// it (AWQ scale search first or not, and the solver of each linear), its options and the factory
// of its LinearQuantizer. Options are OptionSpec rows: the CLI binds its flags from them
// (tools/quantize_flags.cpp), the recipe stores them under their keys and resolve_method_options()
// is their one validation. Nothing outside this table compares method names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calib_data.h"
#include "calibration/quantizer.h"
#include "lib/core/weight_store.h"
#include "lib/quant/solver.h"

namespace dsq::calibration {

// kPaths: a repeatable flag, a JSON array of strings (a plain string is read as one path).
enum class OptionKind : uint8_t { kFlag, kInt, kReal, kPath, kPaths };

// One option: its JSON key in recipes, its CLI flag, help text, kind, default and range.
struct OptionSpec {
  std::string_view key;   // "damp"
  std::string_view flag;  // "--damp"
  std::string_view help;
  OptionKind kind;
  double def = 0.0;            // kInt / kReal default; kFlag: 1 = true
  double lo = 0.0, hi = 0.0;   // kInt / kReal: accepted range (inclusive)
  bool inverted = false;       // kFlag whose CLI flag sets the key to false ("--calib-no-bos")
  std::string_view group = {}; // CLI help group
};

struct QuantMethod {
  std::string_view name;  // "gptq": stable, written into recipes
  std::string_view help;  // one line for the CLI
  // Runs the layer-by-layer calibration pipeline (pipeline.h): needs --calib or --load-stats.
  bool calibrated;
  // Searches AWQ's per-channel scales on the FP block and folds them before solving.
  bool awq_scales;
  std::vector<const OptionSpec*> options;  // recorded in the recipe under their keys
  // The solver of each linear (calibrated methods), from the resolved options.
  std::unique_ptr<quant::LinearSolver> (*solver)(const nlohmann::json& opts, bool mse_clip);
  std::unique_ptr<LinearQuantizer> (*make)(const WeightStore& src, const QuantizeOptions& o);
};

const std::vector<QuantMethod>& quant_methods();
// Throws UsageError listing the methods when `name` is unknown.
const QuantMethod& find_quant_method(std::string_view name);
std::string quant_method_names();  // "rtn, gptq, awq, awq+gptq"

// Options of the calibrated pipeline that never change the output (not recorded): --resume,
// --save-stats, --load-stats.
const std::vector<const OptionSpec*>& pipeline_runtime_options();
// Every option any method or the pipeline declares, once each (what the CLI binds).
std::vector<const OptionSpec*> all_method_options();

// The method's options with defaults filled in and every value checked against its spec
// (UsageError naming the flag and the accepted range as written). A key the method does not
// declare is a UsageError naming its flag ("--damp does not apply to --method awq").
nlohmann::json resolve_method_options(const QuantMethod& m, const nlohmann::json& given);
nlohmann::json resolve_runtime_options(const nlohmann::json& given);

// The default as the CLI shows it ("0.01", "128").
std::string option_default_text(const OptionSpec& s);

// Typed views of resolved options.
CalibOptions calib_options(const nlohmann::json& opts);
quant::GptqOptions gptq_options(const nlohmann::json& opts, bool mse_clip);
quant::AwqOptions awq_options(const nlohmann::json& opts);
// How a MoE layer's experts get their statistics (options expert_min_tokens, expert_calib_all;
// docs/MOE.md).
struct ExpertCalib {
  int64_t min_tokens = 128;  // fewer routed tokens are topped up with unrouted ones
  bool all_tokens = false;   // every calibration token reaches every expert's statistics
};
ExpertCalib expert_calib_options(const nlohmann::json& opts);

}  // namespace dsq::calibration
