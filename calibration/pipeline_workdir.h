// The pipeline's work directory (<out>.partial/): what makes --resume possible. Internal to
// calibration/pipeline*.cpp.
//
//   state.json     {"recipe": ..., "completed": K}: blocks [0, K) are committed
//   blk.L.dsq      block L's quantized linears and replaced float tensors; header "partial"
//                  holds the linears' reports and the replaced tensors' names
//   acts.L.dsq     f32 [rows, d_model]: the calibration hidden states entering block L
//   stats.L.h5     block L's input statistics (only with --save-stats)
// Commit order for block L: blk.L.dsq, stats.L.h5, acts.L+1.dsq, state.json (K = L+1), then
// acts.L.dsq is removed. Every file is written to .tmp and renamed, so a kill at any point leaves
// state.json describing a consistent prefix; files of uncommitted blocks are simply overwritten.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/quantizer.h"
#include "lib/core/tensor.h"

namespace dsq::calibration::detail {

struct LinearResult {
  std::string name;  // canonical, "blk.3.attn_q.weight"
  Tensor q;          // kQInt
  quant::QuantErrorStats error;  // weight-space ||W - Q||^2, ||W||^2
  nlohmann::json extra = nlohmann::json::object();  // output-space errors, damp, timings
};

struct BlockResult {
  int64_t layer = 0;
  std::vector<LinearResult> linears;
  // Float tensors of the block the method changed (AWQ's folded norms, producer rows and biases,
  // skipped linears), written in place of the source's: canonical name -> f32 tensor.
  std::vector<std::pair<std::string, Tensor>> replaced;
  nlohmann::json summary = nlohmann::json::object();  // drift, timings
};

class WorkDir {
 public:
  // Opens (resume) or creates the directory. Without resume an existing directory is an error
  // (it may hold hours of work); with resume a recipe mismatch is a ConfigError.
  // writer = false (MPI ranks other than 0, lib/core/dist.h): the directory is rank 0's; this
  // instance only reads its state when resuming (after rank 0 opened it), and save_*, commit
  // and remove keep the count in memory without touching files.
  WorkDir(std::string dir, const nlohmann::json& recipe, bool resume, bool writer = true);

  int64_t completed() const { return completed_; }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  std::string stats_path(int64_t layer) const;

  void save_block(const BlockResult& r) const;
  BlockResult load_block(int64_t layer) const;
  void save_acts(int64_t layer, const std::vector<float>& h, int64_t rows, int64_t d) const;
  std::vector<float> load_acts(int64_t layer, int64_t rows, int64_t d) const;
  // Marks blocks [0, completed) done (state.json) and drops the inputs of earlier blocks.
  void commit(int64_t completed);
  void remove();
  bool writer() const { return writer_; }

 private:
  std::string dir_;
  nlohmann::json recipe_;
  int64_t completed_ = 0;
  bool writer_ = true;
};

}  // namespace dsq::calibration::detail
