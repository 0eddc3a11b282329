#include "lib/model/linear.h"

#include <cmath>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/linalg.h"
#include "lib/model/sparse_gemv.h"
#include "lib/quant/qmatmul.h"

namespace dsq::model {

Linear Linear::load(const WeightStore& ws, const std::string& weight_name,
                    const std::string& bias_name) {
  Tensor bias;
  if (!bias_name.empty()) bias = ws.get_f32(bias_name);
  const auto& e = ws.entry(weight_name);
  Linear L = from_tensors(weight_name, ws.get(weight_name), std::move(bias), e.source);
  if (auto it = e.attrs.find("act_threshold"); it != e.attrs.end()) {
    if (!it->is_number() || !(it->get<double>() >= 0.0) || !std::isfinite(it->get<double>()))
      throw FormatError("'" + e.source + "': tensor '" + weight_name +
                        "': attr act_threshold must be a finite number >= 0, got " + json_excerpt(*it));
    L.set_act_threshold(it->get<float>());
  }
  return L;
}

void Linear::set_act_threshold(float t) {
  DSQ_ASSERT(t >= 0.0f, "negative activation threshold");
  act_threshold_ = t;
  weight_t_ = t > 0.0f && !quantized() ? transpose_f32(weight_) : Tensor();
}

Linear Linear::from_tensors(std::string name, Tensor weight, Tensor bias,
                            const std::string& source) {
  const std::string where = "'" + source + "': tensor '" + name + "': ";
  Linear L;
  if (weight.ndim() != 2)
    throw ShapeError(where + "a linear weight must be 2-D, got " +
                     shape_str(weight.shape()));
  if (weight.dtype() != DType::kQInt) {
    if (!dtype_is_float(weight.dtype()))
      throw FormatError(where + "unsupported weight type " +
                        std::string(dtype_name(weight.dtype())));
    weight = weight.to(DType::kF32);  // no copy when already f32
  }
  L.n_out_ = weight.dim(0);
  L.n_in_ = weight.dim(1);
  if (!bias.empty()) {
    bias = bias.to(DType::kF32);
    if (bias.ndim() != 1 || bias.dim(0) != L.n_out_)
      throw ShapeError(where + "bias has shape " + shape_str(bias.shape()) +
                       ", expected [" + std::to_string(L.n_out_) + "]");
  }
  L.name_ = std::move(name);
  L.weight_ = std::move(weight);
  L.bias_ = std::move(bias);
  return L;
}

void Linear::forward(const float* x, int64_t m, float* y) const {
  DSQ_ASSERT(!empty(), "forward through an empty linear");
  if (m == 0 || n_out_ == 0) return;
  std::vector<float> xs;  // thresholded input
  if (act_threshold_ > 0.0f) {
    xs.resize(static_cast<size_t>(m * n_in_));
    threshold_activations(x, m * n_in_, act_threshold_, xs.data());
    x = xs.data();
  }
  if (m == 1 && !weight_t_.empty()) {
    sparse_gemv_t(weight_t_.data<float>(), n_in_, n_out_, x, y);
  } else if (quantized()) {
    quant::qmatmul(weight_, x, m, y);
  } else {
    // y[m, n_out] = x[m, n_in] * W[n_out, n_in]^T
    linalg::sgemm_tiled(false, true, m, n_out_, n_in_, 1.0f, x, n_in_, weight_.data<float>(),
                        n_in_, 0.0f, y, n_out_);
  }
  if (!bias_.empty()) {
    const float* b = bias_.data<float>();
#pragma omp parallel for schedule(static) if (m * n_out_ > (1 << 16))
    for (int64_t r = 0; r < m; ++r) {
      float* yr = y + r * n_out_;
      for (int64_t j = 0; j < n_out_; ++j) yr[j] += b[j];
    }
  }
}

}  // namespace dsq::model
