#include "lib/model/linear.h"

#include <cmath>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define DSQ_LINEAR_AVX2 1
#endif

#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/linalg.h"
#include "lib/model/sparse_gemv.h"
#include "lib/quant/qmatmul.h"

namespace dsq::model {
namespace {

// Below this many weights a parallel region costs more than it saves.
constexpr int64_t kParallelMinWeights = int64_t{1} << 16;

// sum_c w[c] * x[c] for one f16 or bf16 weight row, widened in registers: 16 lanes then a fixed
// tree, so the result does not depend on threads. The single-token (decode) path reads 2 bytes
// per weight where an f32 copy would read 4.
template <bool Bf16>
float dot_half(const uint16_t* w, const float* x, int64_t n) {
  int64_t c = 0;
  float s = 0.0f;
#ifdef DSQ_LINEAR_AVX2
  auto widen = [](const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (Bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  };
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (; c + 16 <= n; c += 16) {
    a0 = _mm256_fmadd_ps(widen(w + c), _mm256_loadu_ps(x + c), a0);
    a1 = _mm256_fmadd_ps(widen(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, _mm256_add_ps(a0, a1));
  s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
#endif
  for (; c < n; ++c) s += (Bf16 ? bf16_to_f32(w[c]) : f16_to_f32(w[c])) * x[c];
  return s;
}

}  // namespace

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
  weight_t_ = t > 0.0f && !quantized() ? transpose_f32(weight_.to(DType::kF32)) : Tensor();
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
    if (weight.dtype() == DType::kF64) weight = weight.to(DType::kF32);  // f32/f16/bf16 stay
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

void Linear::rows_f32(int64_t r0, int64_t r1, float* out) const {
  DSQ_ASSERT(0 <= r0 && r0 <= r1 && r1 <= n_out_, "rows_f32: bad range");
  if (quantized()) return quant::dequantize_rows(weight_, r0, r1, out);
  const size_t es = dtype_size(weight_.dtype());
  // Inside gemm_decoded's tiles (a parallel region) the conversion runs on the calling thread.
  convert_elements(weight_.dtype(), weight_.bytes() + static_cast<size_t>(r0 * n_in_) * es,
                   DType::kF32, out, static_cast<size_t>((r1 - r0) * n_in_));
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
  } else if (weight_.dtype() == DType::kF32) {
    // y[m, n_out] = x[m, n_in] * W[n_out, n_in]^T
    linalg::sgemm_tiled(false, true, m, n_out_, n_in_, 1.0f, x, n_in_, weight_.data<float>(),
                        n_in_, 0.0f, y, n_out_);
  } else if (m == 1) {
    const auto* w = reinterpret_cast<const uint16_t*>(weight_.bytes());
    const bool bf16 = weight_.dtype() == DType::kBF16;
#pragma omp parallel for schedule(static) if (n_out_ * n_in_ >= kParallelMinWeights)
    for (int64_t r = 0; r < n_out_; ++r)
      y[r] = bf16 ? dot_half<true>(w + r * n_in_, x, n_in_) : dot_half<false>(w + r * n_in_, x, n_in_);
  } else {
    linalg::gemm_decoded(m, n_out_, n_in_, x, y,
                         [this](int64_t r0, int64_t r1, float* out) { rows_f32(r0, r1, out); });
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
