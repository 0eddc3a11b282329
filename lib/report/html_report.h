// `dsq report`: turns eval, check and quantize JSON reports into one self-contained HTML page
// (inline CSS and inline SVG, no script, no network) comparing runs side by side.
//
// Report kinds are detected by their keys, so any mix of files works:
//   eval / check report (dsq eval --json, dsq check --json): perplexity, ref_perplexity,
//     ppl_ratio, kld_mean, kld_stderr, kld_p99, kld_max, top1_agreement, tokens_per_second,
//     bits_per_weight, file_bytes, layers [{layer, rel_l2, cosine}], and for check reports a
//     "check" object {passed, limits [{name, op, budget, measured, passed, message}]}.
//   quantize report (dsq quantize --json): a "tensors" (or "linears") array of
//     {name, quantized, scheme|type, bits_per_weight|bpw, rel_err|rel_error, sqnr_db, params}
//     (tensors with "quantized": false are left out), a "recipe" {method, bits, group} (or those
//     keys at top level) and a "summary" {quantized_bits_per_weight, file_bytes}; calibrated
//     methods add "extra" {out_rel_err, out_rel_err_rtn} per tensor. The quantized
//     linears' bits per weight is the run's x coordinate in the trade-off charts.
//   distill report (dsq distill --json): a "curve" array of {step, tokens, minutes, train_loss,
//     heldout_kl}, drawn as held-out KL against tokens and against minutes of training.
// Missing keys are tolerated: a chart or column without data is left out.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsq::report {

// Every number below is NaN until a report supplies it.
inline constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

struct TensorStat {
  std::string name;  // "blk.3.attn_q.weight"
  int layer = -1;    // 3; -1 outside the blocks
  std::string kind;  // "attn_q"; the full name outside the blocks
  std::string type;  // quant scheme name when reported ("int4_asym_g32")
  double bits_per_weight = kUnset, rel_error = kUnset, sqnr_db = kUnset;
  // Calibrated methods (GPTQ): ||WX - QX||^2 / ||WX||^2 on the calibration inputs, for this
  // method and for RTN on the same inputs ("extra": {out_rel_err, out_rel_err_rtn}); NaN if absent.
  double out_rel_err = kUnset, out_rel_err_rtn = kUnset;
  int64_t params = -1;  // number of weights, -1 when unknown
};

struct LayerDrift {
  std::string name;  // "blk.3"
  int index = -1;    // block index (x position), -1 when the name has none
  double rel_l2 = kUnset, cosine = kUnset;
};

struct CurvePoint {
  double step = kUnset, tokens = kUnset, minutes = kUnset, train_loss = kUnset, heldout_kl = kUnset;
};

struct CheckLimit {
  std::string name, op, message;
  double budget = kUnset, measured = kUnset;
  bool passed = false;
};

// One labelled run: everything the input files with the same label said about it.
struct Run {
  std::string label;
  std::vector<std::string> sources;  // input files
  std::string method;                // "rtn", "gptq", "awq" when known
  int bits = 0, group = 0;           // 0 when unknown
  double perplexity = kUnset, ref_perplexity = kUnset, ppl_ratio = kUnset;
  double kld_mean = kUnset, kld_stderr = kUnset, kld_p99 = kUnset, kld_max = kUnset;
  double top1_agreement = kUnset, tokens_per_second = kUnset, tokens_scored = kUnset;
  double bits_per_weight = kUnset;  // of the quantized linears when a quantize report says
  double file_bytes = kUnset;
  std::vector<LayerDrift> layers;
  std::vector<TensorStat> tensors;
  bool has_check = false, check_passed = false;
  std::vector<CheckLimit> check;
  std::vector<CurvePoint> curve;  // a distillation run's held-out curve
};

// An input file and an optional label (from a LABEL=FILE argument); empty label = automatic.
struct RunInput {
  std::string path;
  std::string label;
};

// Fills `run` from one report document (merging into what it holds). Throws FormatError naming
// `source` when the document is none of an eval/check, quantize or distill report.
void merge_report(Run& run, const nlohmann::json& j, const std::string& source);

// The automatic label of a document: "label", else "method" (with " w<bits>g<group>" when given),
// else the file name up to its first '.'.
std::string run_label(const nlohmann::json& j, const std::string& path);

// Reads every input and merges documents with equal labels, keeping first-seen order.
std::vector<Run> load_runs(const std::vector<RunInput>& inputs);

struct HtmlOptions {
  std::string title = "dsq report";
};

// The complete HTML document (UTF-8, well-formed XML, so it also parses as XHTML).
std::string render_report_html(const std::vector<Run>& runs, const HtmlOptions& opt);

// A command-line input: "FILE", or "LABEL=FILE" to name the run (a FILE that exists with '=' in
// its name is taken whole). UsageError for an empty label or file.
RunInput parse_run_argument(const std::string& arg);

struct ReportOptions {
  std::vector<RunInput> inputs;  // at least one
  std::string out_path;          // written via <out>.tmp + rename
  HtmlOptions html;
};

// `dsq report`: loads the inputs, renders the page and writes it. Returns the runs shown.
std::vector<Run> write_report(const ReportOptions& opt);

}  // namespace dsq::report
