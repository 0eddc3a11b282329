// The layer-by-layer calibration pipeline behind the calibrated rows of the method table
// (methods.h: gptq, awq, awq+gptq). It plugs into the streaming driver (jobs/quantize.h) as a
// LinearQuantizer: when the driver begins block
// L, the pipeline
//   1. loads only block L's weights (model::BlockWeights; f32 sources stay memory-mapped);
//   2. (rows with awq_scales) searches the AWQ scale of each group of ArchInfo::linear_groups on the FP
//      block (lib/quant/awq.h: the group's input statistics from a forward pass, then a grid over
//      alpha) and folds it into the block (lib/model/fold.h), which leaves the FP block's function
//      unchanged; the first of these passes keeps the FP block output for the drift;
//   3. quantizes the groups in true-sequential order: before each group its input statistics
//      (H = mean x x^T in f64 via linalg::gram_accumulate_f32, mean/max |x_j|) are collected by
//      running the calibration hidden states [N*T, d_model] through the block with the earlier
//      groups already quantized (the run stops right after the group's input was seen; once a
//      dense block's attention groups are solved, its attention is applied to the hidden states
//      in place once and the FFN groups' runs start there), then each
//      linear of the group is solved by the row's solver (lib/quant/solver.h) and swapped into
//      the block as a kQInt linear: GPTQ (gptq, awq+gptq) with that H, or AWQ's clip search under
//      that H (skipping LinearGroup::no_clip) then RTN with the chosen ranges (awq);
//   4. re-runs the fully quantized block (its FFN, after step 3's in-place attention) to produce
//      the next block's inputs and measures the
//      block's output drift ||Y_q - Y_fp||^2 / ||Y_fp||^2 on the same inputs;
//   5. commits the block to the work directory <out>.partial/ (its kQInt tensors, the float
//      tensors AWQ changed and the report in blk.L.dsq, the next block's inputs in acts.L+1.dsq,
//      then state.json), frees it.
// Peak memory: one block's weights + 2 x the calibration hidden states + one group's statistics
// and the solver's copies of one linear, independent of the number of blocks.
//
// Resume: state.json names the completed block count and the recipe. A run killed at any point
// (kill -9) and restarted with --resume continues after the last committed block; every step is
// deterministic (fixed chunking, thread-count-independent kernels), so the output is byte-identical
// to an uninterrupted run. The work directory is removed when the output has been written.
//
// Statistics (--save-stats FILE.h5, docs/STATS.md): the statistics each group was solved with,
// i.e. true-sequential ones (inputs produced by the model quantized so far with this recipe), and
// for AWQ the scales and clip ratios. --load-stats FILE.h5 skips calibration entirely (no forward
// passes): each group is solved with the stored H, AWQ folds the stored scales and applies the
// stored clips (re-searched under the stored H when bits/group/sym differ). With the same recipe
// the quantized tensors are bit-identical to the run that saved the file; with other options it is
// an approximation (the stored inputs came from a differently quantized prefix) and a warning says
// so.
#pragma once

#include <memory>

#include "calibration/quantizer.h"

namespace dsq::calibration {

// The factory of the calibrated rows of the method table (methods.h): the method's row decides
// whether AWQ scales are searched and which solver each linear gets. opts.method_options must be
// resolved (resolve_method_options), opts.method_runtime holds the pipeline runtime options.
// Throws UsageError for missing/contradictory options, IoError/FormatError for unreadable
// calibration or statistics files.
std::unique_ptr<LinearQuantizer> make_calibrated_quantizer(const WeightStore& src,
                                                           const QuantizeOptions& opts);

// Testing hook: when the environment variable DSQ_PIPELINE_KILL is "after:L" the process kills
// itself with SIGKILL right after block L was committed; "during:L" kills it while block L is
// half done (after its first group was solved); "during-experts:L" inside MoE block L, after its
// first routed expert was solved. ":TERM" or ":INT" after the block ("during:1:TERM") sends that
// signal instead (an interrupt: temporary outputs are removed, lib/core/interrupt.h). A suffix
// "@R" (e.g. "during:1@1") limits it to MPI rank R.
inline constexpr const char* kPipelineKillEnv = "DSQ_PIPELINE_KILL";

}  // namespace dsq::calibration
