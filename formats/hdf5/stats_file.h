// Calibration statistics files (docs/STATS.md): per block and per group of linears that read the
// same input (ArchInfo::linear_groups), the input's second-moment matrix ("Hessian" H = mean over
// tokens of x x^T, f64 [n_in, n_in]) and per-channel norms (mean |x_j|, max |x_j|), plus token
// counts and the calibration recipe. Layout:
//
//   /                       attrs: dsq_stats_version (i64 = 1), kind ("sequential"),
//                                  n_layers (i64), recipe (JSON string), model (string)
//   /blk.{L}/{group}        attrs: linears ("attn_q,attn_k,attn_v"), n_in (i64), n_tokens (i64)
//   /blk.{L}/{group}/hessian      f64 [n_in, n_in]
//   /blk.{L}/{group}/abs_mean     f64 [n_in]
//   /blk.{L}/{group}/abs_max      f64 [n_in]
//
// Other datasets may be added to a group by later methods (AWQ scales); readers ignore them.
#pragma once

#include <cstdint>
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
  std::vector<double> hessian;       // [n_in, n_in], mean of x x^T
  std::vector<double> abs_mean;      // [n_in], mean of |x_j|
  std::vector<double> abs_max;       // [n_in], max of |x_j|
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

}  // namespace dsq::formats::hdf5
