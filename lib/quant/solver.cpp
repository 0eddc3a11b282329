#include "lib/quant/solver.h"

#include "lib/quant/qmatmul.h"

namespace dsq::quant {
namespace {

class GptqSolver : public LinearSolver {
 public:
  explicit GptqSolver(const GptqOptions& o) : o_(o) {}
  SolveResult solve(const SolveInput& in) override {
    GptqOptions go = o_;
    go.name = in.name;
    go.report_rtn = false;  // the pipeline measures RTN itself, on the unscaled weights
    GptqStats st;
    SolveResult r;
    const GptqFactor* f = nullptr;
    if (in.scratch) {
      if (!in.scratch->gptq) in.scratch->gptq = gptq_factor(in.hessian, in.cols, go);
      f = &*in.scratch->gptq;
    }
    r.q = gptq_quantize(in.w, in.rows, in.cols, in.hessian, in.desc, go, &st, f, in.hessian_f32);
    const Tensor w = Tensor::borrow(DType::kF32, {in.rows, in.cols}, in.w,
                                    static_cast<size_t>(in.rows * in.cols) * 4, nullptr);
    r.error = quant_error(w, r.q);
    r.out_norm = st.norm;  // measured by the solver under the same (undamped) H
    r.out_err = st.err_gptq;
    r.extra = {{"damp", st.damp_used}, {"dead_cols", st.dead_cols}};
    return r;
  }

 private:
  GptqOptions o_;
};

class AwqClipSolver : public LinearSolver {
 public:
  explicit AwqClipSolver(const AwqOptions& o) : o_(o) {}
  bool clips() const override { return true; }
  SolveResult solve(const SolveInput& in) override {
    SolveResult r;
    if (in.clip) {
      r.clip_ratios = in.saved_clip ? *in.saved_clip
                                    : awq_search_clip(in.w, in.rows, in.cols, in.hessian, in.desc, o_);
      double mean = 0.0;
      for (const float v : r.clip_ratios) mean += v;
      r.extra["clip_mean"] =
          r.clip_ratios.empty() ? 1.0 : mean / static_cast<double>(r.clip_ratios.size());
    }
    r.q = quantize_clipped(in.w, in.rows, in.cols, in.desc,
                           r.clip_ratios.empty() ? nullptr : r.clip_ratios.data(), &r.error);
    std::vector<float> e(static_cast<size_t>(in.rows * in.cols));
    dequantize_rows(r.q, 0, in.rows, e.data());
    for (size_t i = 0; i < e.size(); ++i) e[i] = in.w[i] - e[i];
    r.out_norm = hessian_quadratic(in.w, in.rows, in.cols, in.hessian_f32, kOutputErrorRows);
    r.out_err = hessian_quadratic(e.data(), in.rows, in.cols, in.hessian_f32, kOutputErrorRows);
    return r;
  }

 private:
  AwqOptions o_;
};

}  // namespace

std::unique_ptr<LinearSolver> make_gptq_solver(const GptqOptions& o) {
  return std::make_unique<GptqSolver>(o);
}

std::unique_ptr<LinearSolver> make_awq_clip_solver(const AwqOptions& o) {
  return std::make_unique<AwqClipSolver>(o);
}

}  // namespace dsq::quant
