// `dsq report`: turns eval, check and quantize JSON reports into one self-contained HTML page
// (inline CSS and inline SVG, no script, no network) comparing runs side by side.
//
// Report kinds are detected by their keys, so any mix of files works:
//   eval / check report (dsq eval --json, dsq check --json): perplexity, ref_perplexity,
//     ppl_ratio, kld_mean, kld_stderr, kld_p99, kld_max, top1_agreement, tokens_per_second,
//     bits_per_weight, file_bytes, layers [{layer, rel_l2, cosine}], and for check reports a
//     "check" object {passed, limits [{name, op, budget, measured, passed, message}]}.
//   quantize report (dsq quantize --json): a "tensors" (or "linears") array of
//     {name, bits_per_weight|bpw, rel_error|rel_sq_error, sqnr_db, type, method}, plus top-level
//     method, bits, group, bits_per_weight, file_bytes.
// Missing keys are tolerated: a chart or column without data is left out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsq::report {

struct TensorStat {
  std::string name;  // "blk.3.attn_q.weight"
  int layer = -1;    // 3; -1 outside the blocks
  std::string kind;  // "attn_q"; the full name outside the blocks
  std::string type;  // quant scheme name when reported ("q4_g32")
  double bits_per_weight = 0, rel_error = 0, sqnr_db = 0;  // NaN when not reported
  int64_t params = -1;  // number of weights, -1 when unknown
};

struct LayerDrift {
  std::string name;  // "blk.3"
  int index = -1;    // block index (x position), -1 when the name has none
  double rel_l2 = 0, cosine = 0;  // NaN when not reported
};

struct CheckLimit {
  std::string name, op, message;
  double budget = 0, measured = 0;  // measured NaN when missing
  bool passed = false;
};

// One labelled run: everything the input files with the same label said about it.
struct Run {
  std::string label;
  std::vector<std::string> sources;  // input files
  std::string method;                // "rtn", "gptq", "awq" when known
  int bits = 0, group = 0;           // 0 when unknown
  // Scalars, NaN when unknown.
  double perplexity, ref_perplexity, ppl_ratio, kld_mean, kld_stderr, kld_p99, kld_max,
      top1_agreement, tokens_per_second, bits_per_weight, file_bytes, tokens_scored;
  std::vector<LayerDrift> layers;
  std::vector<TensorStat> tensors;
  bool has_check = false, check_passed = false;
  std::vector<CheckLimit> check;
  Run();
};

// An input file and an optional label (from a LABEL=FILE argument); empty label = automatic.
struct RunInput {
  std::string path;
  std::string label;
};

// Fills `run` from one report document (merging into what it holds). Throws FormatError naming
// `source` when the document is neither an eval/check nor a quantize report.
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

}  // namespace dsq::report
