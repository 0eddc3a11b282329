// Calibration statistics files (docs/STATS.md): per block and per group of linears that read the
// same input (ArchInfo::linear_groups), the input's second-moment matrix ("Hessian" H = mean over
// tokens of x x^T, f64 [n_in, n_in]) and per-channel norms (mean |x_j|, max |x_j|), plus token
// counts and the calibration recipe. Layout:
//
//   /                       attrs: dsq_stats_version (i64 = 1), kind ("sequential"),
//                                  n_layers (i64), recipe (JSON string), model (string)
//   /blk.{L}/{group}        attrs: linears ("attn_q,attn_k,attn_v"), n_in (i64), n_tokens (i64),
//                                  routed_tokens (i64, routed experts only)
// A routed expert's groups are named "{group}.{expert}" ("exp_in.17", "exp_out.17").
//   /blk.{L}/{group}/hessian      f64 [n_in, n_in]
//   /blk.{L}/{group}/abs_mean     f64 [n_in]
//   /blk.{L}/{group}/abs_max      f64 [n_in]
//
// AWQ runs add their search results to a group (read_awq_search):
//   /blk.{L}/{group}       attrs: awq_alpha (f64)
//   /blk.{L}/{group}/awq_scales           f64 [n_in]  input-channel scales folded into the model
//   /blk.{L}/{group}/awq_clip.{linear}    f32 [rows, n_groups] clip ratios (clipped linears only)
// Other datasets may be added to a group by later methods; readers ignore what they do not know.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/hdf5/hdf5_file.h"

namespace dsq::formats::hdf5 {

constexpr int64_t kStatsVersion = 1;

struct StatsHeader {
  std::string kind = "sequential";  // how the inputs were produced (docs/STATS.md)
  int64_t n_layers = 0;
  std::string model;                                  // source model path or name
  nlohmann::json recipe = nlohmann::json::object();   // calibration data + quantization recipe
};

// Statistics of the input shared by one group of linears in one block.
struct InputStats {
  int64_t layer = 0;
  std::string group;                 // "attn_in"
  std::vector<std::string> linears;  // short names: "attn_q", "attn_k", "attn_v"
  int64_t n_in = 0;                  // input channels
  int64_t n_tokens = 0;              // calibration tokens the means are over
  int64_t routed_tokens = -1;        // routed experts: the tokens routed to it (<= n_tokens: the
                                     // rest topped the statistics up); -1 otherwise
  std::vector<double> hessian;       // [n_in, n_in], mean of x x^T
  std::vector<double> abs_mean;      // [n_in], mean of |x_j|
  std::vector<double> abs_max;       // [n_in], max of |x_j|
};

// AWQ search results of one group: the scales s (the group reads x / s; the statistics above were
// collected on that scaled input) and, per clipped linear, its per-(row, group) clip ratios.
struct AwqClip {
  std::string linear;         // short name, "attn_v"
  int64_t rows = 0, n_groups = 0;
  std::vector<float> ratios;  // [rows, n_groups]
};
struct AwqSearch {
  double alpha = 0.0;
  std::vector<double> scales;  // [n_in]
  std::vector<AwqClip> clips;
};

// "blk.3/attn_in"
std::string stats_object(int64_t layer, const std::string& group);

void write_stats_header(Writer& w, const StatsHeader& h);
void write_input_stats(Writer& w, const InputStats& s);

// Throws FormatError when the file is not a dsq statistics file or has another version.
StatsHeader read_stats_header(const Reader& r);
// Throws FormatError when the group is missing, ShapeError when n_in differs from `n_in` (the
// model's width) or the datasets disagree with it.
InputStats read_input_stats(const Reader& r, int64_t layer, const std::string& group,
                            int64_t n_in);

// Adds AWQ results to the (already written) group object of blk.{layer}/{group}.
void write_awq_search(Writer& w, int64_t layer, const std::string& group, const AwqSearch& a);
// nullopt when the group has no AWQ results (statistics of another method). ShapeError when the
// scales are not [n_in] or not positive; clips are read for `clip_linears` only, each checked
// against [rows, n_groups] of clip_shapes (same order); a missing clip dataset is a FormatError.
std::optional<AwqSearch> read_awq_search(const Reader& r, int64_t layer, const std::string& group,
                                         int64_t n_in, const std::vector<AwqClip>& clip_shapes);

// Mixed precision's sensitivity probe (a calibrated quantize run with candidates): per linear, the
// output error tr(E H E^T) under each candidate scheme and RTN's under the run's own scheme (the
// KLD calibration's reference). Stored as a root attribute "sensitivity" {"candidates": [...],
// "method": "gptq"} and per block a dataset blk.L/sensitivity [n, candidates + 1] (the last
// column RTN's) with attributes "sensitivity_linears" and "sensitivity_rtn_schemes" (comma
// lists, row order); docs/STATS.md.
struct SensitivityTable {
  std::vector<std::string> candidates;  // scheme names, "f16" for float
  std::string method;
  struct Linear {
    std::string name;        // canonical
    std::vector<double> costs;  // per candidate
    std::string rtn_scheme;
    double rtn_cost = 0;
  };
  std::vector<Linear> linears;
};
// Linears are grouped by their block (parse_block_name); names outside blocks are refused.
void write_sensitivity(Writer& w, const SensitivityTable& t);
// nullopt when the file has none; FormatError for a malformed one.
std::optional<SensitivityTable> read_sensitivity(const Reader& r, int64_t n_layers);

}  // namespace dsq::formats::hdf5
