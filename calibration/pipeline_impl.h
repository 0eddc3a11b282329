// Internal to calibration/pipeline*.cpp: the calibrated quantizer's class (pipeline.h documents
// the method; pipeline.cpp runs dense blocks, pipeline_moe.cpp the Mixture-of-Experts FFN stage).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "calibration/calib_data.h"
#include "calibration/methods.h"
#include "calibration/pipeline.h"
#include "calibration/pipeline_workdir.h"
#include "formats/hdf5/stats_file.h"
#include "lib/core/progress.h"
#include "lib/model/block.h"
#include "lib/quant/awq.h"
#include "lib/quant/solver.h"

namespace dsq::calibration::detail {

namespace h5 = formats::hdf5;

// Rows per forward chunk: bounds the engine's intermediate buffers (a few x rows x d_ff floats)
// and the f32 error of one gram_accumulate_f32 call.
inline constexpr int64_t kChunkRows = 4096;
// Calibration samples (windows of seq_len tokens) per forward chunk: every pass over the hidden
// states takes the same chunks, so a product has the same shapes in each (the kept inputs rely on
// it, CalibratedQuantizer::advance_hidden).
inline int64_t samples_per_chunk(int64_t seq_len) {
  return std::max<int64_t>(1, kChunkRows / seq_len);
}

// Calibration samples whose FP block outputs are the drift reference (the report's block_drift):
// the first kDriftSamples. A full FP pass of a MoE block over 128 x 512 tokens costs as much as
// the quantized pass (every expert over its routed rows) and its outputs 1.9 GB at V3's width;
// 16 x 512 tokens estimate the relative drift well enough.
inline constexpr int64_t kDriftSamples = 16;
// Kept sub-block outputs (CalibratedQuantizer::keeps_inputs) up to this size, the memory the
// pipeline may add to its hidden states: at 128 x 512 calibration tokens the attention's outputs up
// to d_model 8192 and ffn_down's inputs (2.7-5.3x the hidden states' size) of models up to ~1.5B
// parameters. Larger ones run the sub-block once more instead, as before.
inline constexpr int64_t kKeptInputsBytes = int64_t{2} << 30;

// The block's linear of a short name (from the architecture table's rows).
model::Linear& block_linear(model::BlockWeights& b, std::string_view short_name);

bool contains(const std::vector<std::string_view>& v, std::string_view x);

// Thrown by the capture observer once the wanted input was seen, to skip the rest of the block
// (the engine calls observers on the orchestrating thread, outside parallel regions, and owns
// its buffers through RAII, so unwinding through block_forward is safe).
struct StopForward {};

// Running input statistics of one group: sum x x^T (f64, via linalg::gram_accumulate_f32), sum
// |x_j|, max |x_j|, token count.
class StatsAccumulator {
 public:
  explicit StatsAccumulator(int64_t n);
  void add(const float* x, int64_t rows);
  int64_t tokens() const { return tokens_; }
  int64_t width() const { return n_; }
  // Means over the tokens seen. `linears` are the group's (instantiated) short names.
  h5::InputStats finish(int64_t layer, std::string group, std::vector<std::string> linears);

 private:
  int64_t n_;
  std::vector<double> hsum_, abs_sum_, abs_max_;
  int64_t tokens_ = 0;
};

// Accumulates one group's input statistics (the input of `linear`, shared by the group).
class CaptureObserver : public model::Observer {
 public:
  // With `keep`, the inputs seen are also appended to *keep (rows in the order of the pass).
  CaptureObserver(std::string_view linear, int64_t n, bool stop, std::vector<float>* keep = nullptr)
      : linear_(linear), stop_(stop), acc_(n), keep_(keep) {}
  void on_linear_input(int64_t, std::string_view name, model::ActView x) override;
  h5::InputStats finish(int64_t layer, const LinearGroup& g);
  double statistics_seconds() const { return statistics_seconds_; }

 private:
  std::string_view linear_;
  bool stop_;
  StatsAccumulator acc_;
  std::vector<float>* keep_;
  double statistics_seconds_ = 0.0;  // in acc_.add
};

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "after:3" / "during:3" from DSQ_PIPELINE_KILL (testing hook, see pipeline.h).
void maybe_kill(const char* when, int64_t layer);

// What AWQ decided for one group of the current block.
struct GroupScale {
  std::vector<float> scales;  // [n_in], the group reads x / s
  double alpha = 0.0;
  double search_rel = 0.0, search_rel_rtn = 0.0;  // the search objective at alpha and at 0
};

class CalibratedQuantizer : public LinearQuantizer {
 public:
  CalibratedQuantizer(const WeightStore& src, const QuantizeOptions& o);
  ~CalibratedQuantizer() override;
  void begin_block(int64_t layer) override;
  Tensor quantize(const std::string& name, const Tensor& w, TensorReport* rep) override;
  std::optional<Tensor> replace(const std::string& name) override;
  nlohmann::json profile() const override;

 private:
  bool awq() const { return method_.awq_scales; }
  bool selected(int64_t layer, std::string_view short_name, const model::BlockWeights& bw) const;
  // The same from the config alone (before any block is loaded; expert names instantiated).
  bool selected_in_config(int64_t layer, std::string_view short_name) const;
  // Is g a group of a MoE layer's FFN (shared or routed experts)? Those run in moe_stage.
  bool moe_group(const LinearGroup& g) const;
  // Reads every statistic the run will read (validation, in a child process: hdf5_file.h).
  void read_needed_stats(const h5::Reader& r, bool clips) const;
  void process_block(int64_t layer);
  // Runs the block (or `part` of a dense block) over the first n_samples calibration hidden
  // states, chunk by chunk: kInPlace updates them (all samples only), kCopy writes the outputs to
  // `out` (same layout), kDiscard drops them (only the observer matters; it may stop each chunk
  // early). A MoE layer runs its attention chunk by chunk and its FFN over all rows at once (each
  // expert is loaded once per pass).
  enum class Run { kInPlace, kCopy, kDiscard };
  void run_block(const model::BlockWeights& bw, Run mode, float* out, model::Observer* obs,
                 int64_t n_samples, model::BlockPart part = model::BlockPart::kAll);
  // Input statistics of g on the block as it is now (from the file with --load-stats): a pass
  // that stops each chunk once g's input was seen. With `keep`, g's inputs themselves too.
  h5::InputStats collect(const model::BlockWeights& bw, int64_t layer, const LinearGroup& g,
                         std::vector<float>* keep = nullptr);
  // Whether collecting g keeps its inputs (kept_): g is the one linear that writes a dense block's
  // residual stream from its sub-block (attn_output, ffn_down), and they take at most
  // kKeptInputsBytes.
  bool keeps_inputs(const model::BlockWeights& bw, const LinearGroup& g) const;
  // Runs `part` of the current dense block in place on hidden_, as run_block would: the sub-block's
  // last linear on its kept inputs when the kept ones are that linear's, the whole part otherwise.
  void advance_hidden(const model::BlockWeights& bw, model::BlockPart part);
  // AWQ step 2 for one group: search (or load) the scale and fold it. Returns false when the
  // group has nothing to scale or cannot be folded.
  bool scale_group(model::BlockWeights& bw, int64_t layer, const LinearGroup& g);
  void solve_group(model::BlockWeights& bw, const LinearGroup& g, const h5::InputStats& st,
                   BlockResult* res, h5::AwqSearch* awq_out);
  // Solves one linear: w (f32; AWQ: already scaled by gs) under the statistics st of its group
  // `group` (instantiated name); the report's extras, and AWQ clips into awq_out. `scratch` is
  // shared by the group's linears (same st), so per-H work (GPTQ's factor) is done once.
  LinearResult solve_linear(int64_t layer, std::string_view short_name, const Tensor& w,
                            const h5::InputStats& st, const std::vector<float>& h32, bool clip,
                            const GroupScale* gs, const std::string& group,
                            h5::AwqSearch* awq_out, quant::GroupScratch* scratch);
  // MPI: sends the result (and AWQ clip) of a linear solved by rank `owner` to every other rank,
  // which fill *r and *clip from it (lib/core/dist.h).
  void share_result(int owner, std::optional<LinearResult>* r, std::optional<h5::AwqClip>* clip);
  // The sensitivity probe (QuantizeOptions::probe): the output error tr(E H E^T) of the linear
  // `in` under each candidate (own: the solve under in.desc, reused), with the stored bits, as
  // [{"scheme", "bits", "cost"}] in candidate order (the report's extra["sensitivity"]["options"];
  // its "rtn" is the output error of RTN under in.desc of the unscaled weights).
  nlohmann::json probe(quant::SolveInput in, const quant::SolveResult& own,
                       const std::vector<float>& h32);
  // The FFN of a MoE layer, after its attention groups (pipeline_moe.cpp): the shared expert,
  // then each routed expert in turn, streamed from the source; updates hidden_ to the quantized
  // block's output (unless statistics come from a file).
  void moe_stage(model::BlockWeights& bw, int64_t layer, BlockResult* res, h5::Writer* stats,
                 std::vector<std::string>* changed);
  void write_stats_file();

  const WeightStore& src_;
  const ModelConfig& cfg_;
  const ArchInfo& arch_;
  QuantizeOptions opts_;
  const QuantMethod& method_;
  std::unique_ptr<quant::LinearSolver> solver_;
  CalibOptions calib_opts_;
  quant::AwqOptions awq_opts_;  // the scale search (rows with awq_scales)
  ExpertCalib expert_calib_;
  bool resume_ = false;
  std::string save_stats_, load_stats_path_;
  bool fresh_work_ = false;  // this run created the work directory
  std::optional<WorkDir> work_;
  std::optional<h5::Reader> load_stats_;
  bool load_clips_ = false;  // the loaded AWQ clips were searched for this bits/group/sym
  CalibData calib_;
  std::vector<float> hidden_;  // [rows, d_model]: inputs of block work_->completed()
  std::vector<float> fp_out_;  // FP outputs of the current block, first kDriftSamples samples
  bool hidden_done_ = false;   // the current block already wrote its outputs to hidden_
  // hidden_ holds the current dense block's input after its (quantized) attention: once every
  // attention group is solved, the FFN groups' passes need not repeat the attention.
  bool attn_applied_ = false;
  // The inputs ([rows, n_in]) of the linear kept_linear_ of the current dense block, from the
  // pass that collected them (keeps_inputs): adding that linear of them completes the sub-block
  // (attention or FFN) without running it again. Its capacity is kept from block to block.
  std::vector<float> kept_;
  std::string_view kept_linear_;
  std::map<std::string, GroupScale, std::less<>> scales_;  // current block: group -> AWQ scale
  // Where the time went (profile()): seconds per stage, summed over the blocks this run computed.
  struct Profile {
    double calibration_data = 0, load = 0, awq_scale = 0, drift_reference = 0, collect = 0,
           statistics = 0, solve = 0, advance = 0, moe_stage = 0, save = 0, blocks = 0;
    int64_t n_blocks = 0;
  } prof_;
  std::optional<BlockResult> current_;
  std::optional<Progress> bar_;
};

}  // namespace dsq::calibration::detail
