// A linear layer y = x W^T + b over any WeightStore weight, in its stored type (borrowed from the
// store's mapping, no copy): f32 runs through the GEMM in place, f16/bf16 are widened tile by
// tile inside the GEMM (linalg::gemm_decoded) or row by row in a fused single-token dot, and
// DType::kQInt runs through dsq::quant::qmatmul; no weight is ever held as a whole f32 copy, so an
// engine's memory is the model file plus activations. This is the one seam where weight formats
// meet the engine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/core/tensor.h"
#include "lib/core/weight_store.h"

namespace dsq::model {

class Linear {
 public:
  Linear() = default;
  // Loads `weight_name` ([n_out, n_in]) and, when `bias_name` is non-empty, the f32-convertible
  // bias [n_out]. Throws FormatError/ShapeError naming the source file and tensor.
  static Linear load(const WeightStore& ws, const std::string& weight_name,
                     const std::string& bias_name = "");
  // From tensors already in memory (weight f32/f16/bf16/kQInt [n_out, n_in], kept in that type;
  // bias empty or [n_out]). `source` names the file in error messages.
  static Linear from_tensors(std::string name, Tensor weight, Tensor bias = {},
                             const std::string& source = "<memory>");

  // y[m, n_out] = x[m, n_in] W^T + b (y overwritten). Deterministic for any thread count.
  // With an activation threshold t > 0, inputs with |x| <= t are zeroed first (TEAL-style
  // sparsity, sparse_gemv.h) and single-token calls (m == 1) on f32 weights skip the weight
  // columns of the zeroed entries.
  void forward(const float* x, int64_t m, float* y) const;

  // Activation threshold (0 = dense). Linear::load takes it from the weight entry's attrs
  // {"act_threshold": t} (written by `dsq sparsify`). Setting t > 0 on an f32 weight keeps a
  // transposed copy W^T [n_in, n_out] for the sparse single-token kernel.
  void set_act_threshold(float t);
  float act_threshold() const { return act_threshold_; }

  int64_t n_out() const { return n_out_; }
  int64_t n_in() const { return n_in_; }
  bool empty() const { return weight_.empty(); }
  bool quantized() const { return weight_.dtype() == DType::kQInt; }
  const Tensor& weight() const { return weight_; }  // f32, f16, bf16 or kQInt
  // Rows [r0, r1) of W as f32 into out[(r1 - r0), n_in], whatever the stored type.
  void rows_f32(int64_t r0, int64_t r1, float* out) const;
  const Tensor& bias() const { return bias_; }      // empty or f32 [n_out]
  const std::string& name() const { return name_; }

 private:
  std::string name_;  // canonical weight name, for messages
  Tensor weight_;
  Tensor bias_;
  float act_threshold_ = 0.0f;
  Tensor weight_t_;  // W^T [n_in, n_out] f32, only when act_threshold_ > 0 and W is not kQInt
  int64_t n_out_ = 0, n_in_ = 0;
};

}  // namespace dsq::model
