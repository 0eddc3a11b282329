#include "lib/model/block.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "lib/core/error.h"
#include "lib/core/linalg.h"
#include "lib/core/memory.h"
#include "lib/model/mla.h"
#include "lib/model/moe.h"
#include "lib/model/rope.h"
#include "lib/quant/qmatmul.h"

namespace dsq::model {

namespace {

using Buf = ScratchFloats;  // lib/core/memory.h: pooled per thread

Buf alloc(int64_t n) { return Buf(n); }

// Throws unless canonical tensor `name` exists with the shape the config implies.
void check_shape(const WeightStore& ws, const std::string& name) {
  const auto& e = ws.entry(name);
  const auto want = expected_shape(ws.config, name);
  if (want && *want != e.shape)
    throw ShapeError("'" + e.source + "': tensor '" + name + "' has shape " + shape_str(e.shape) +
                     ", the config implies " + shape_str(*want));
}

// The bias left of a sub-block that pruning removed entirely (0 heads or 0 d_ff): a constant
// added to the residual stream. Empty when absent.
Tensor load_orphan_bias(const WeightStore& ws, int64_t layer, std::string_view short_name) {
  const std::string name = bias_name(layer, short_name);
  if (!ws.has(name)) return {};
  check_shape(ws, name);
  return ws.get_f32(name);
}

void add_row_bias(float* h, const Tensor& bias, int64_t rows) {
  const int64_t d = bias.numel();
  const float* b = bias.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i) h[r * d + i] += b[i];
}


// exp(x) for x <= 0 (softmax after max subtraction), written so the compiler vectorizes it:
// x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial (relative error < 2e-8,
// below f32 rounding), times 2^n assembled in the exponent bits. Underflows to 0 below -87.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

#if defined(__AVX2__)
// exp_nonpositive of 8 floats: the same operations in the same order as the scalar function, so
// the compiler treats both alike (a product and a sum contracted into one FMA in both or in
// neither) and every lane has the scalar function's bits (Engine.CausalSoftmaxLanesMatch...).
inline __m256 exp_nonpositive8(__m256 x) {
  const auto c = [](float v) { return _mm256_set1_ps(v); };
  x = _mm256_max_ps(c(-87.0f), x);  // std::max(x, -87): a NaN x stays NaN
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, c(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, c(0.693145751953125f))),
                                 _mm256_mul_ps(n, c(1.42860682030941723e-6f)));
  __m256 p = c(1.0f / 5040.0f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f / 720.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f / 120.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f / 24.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f / 6.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(0.5f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), c(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}
#endif

}  // namespace

void run_linear(const Linear& lin, const float* x, int64_t rows, float* y, Observer* obs,
                int64_t layer, std::string_view name) {
  if (obs) obs->on_linear_input(layer, name, ActView{x, rows, lin.n_in()});
  lin.forward(x, rows, y);
  if (obs) obs->on_linear_output(layer, name, ActView{y, rows, lin.n_out()});
}

void add_inplace(float* h, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
  for (int64_t i = 0; i < n; ++i) h[i] += x[i];
}

void add_residual_linear(const BlockWeights& w, const ModelConfig& c, std::string_view name,
                         const float* x, float* h, int64_t rows, Observer* obs) {
  Buf o = alloc(rows * c.d_model);
  run_linear(w.lin(name), x, rows, o.data(), obs, w.layer, name);
  add_inplace(h, o.data(), rows * c.d_model);
}

void swiglu(const Linear& gate, const Linear& up, const Linear& down, const float* x, int64_t rows,
            float* out, Observer* obs, int64_t layer, std::string_view gate_name,
            std::string_view up_name, std::string_view down_name) {
  const int64_t ff = gate.n_out();
  Buf g = alloc(rows * ff), u = alloc(rows * ff);
  run_linear(gate, x, rows, g.data(), obs, layer, gate_name);
  run_linear(up, x, rows, u.data(), obs, layer, up_name);
  const int64_t total = rows * ff;
#pragma omp parallel for schedule(static) if (total > (1 << 18))
  for (int64_t i = 0; i < total; ++i) {
    const float gi = g[static_cast<size_t>(i)];
    g[static_cast<size_t>(i)] = gi / (1.0f + std::exp(-gi)) * u[static_cast<size_t>(i)];
  }
  run_linear(down, g.data(), rows, out, obs, layer, down_name);
}

Linear* BlockWeights::linear(std::string_view short_name) {
  return const_cast<Linear*>(static_cast<const BlockWeights*>(this)->linear(short_name));
}

const Linear* BlockWeights::linear(std::string_view short_name) const {
  for (const auto& [name, l] : linears)
    if (name == short_name) return &l;
  if (moe && short_name == names::kFfnGateInp) return &moe->router;
  if (moe) {  // "ffn_gate_exps.3": a resident expert's linear
    const auto dot = short_name.rfind('.');
    if (dot == std::string_view::npos) return nullptr;
    const std::string_view kind = short_name.substr(0, dot), idx = short_name.substr(dot + 1);
    int64_t e = 0;
    for (char ch : idx) {
      if (ch < '0' || ch > '9' || e > (int64_t{1} << 40)) return nullptr;
      e = e * 10 + (ch - '0');
    }
    if (idx.empty() || e >= static_cast<int64_t>(moe->experts.size()) ||
        !moe->experts[static_cast<size_t>(e)])
      return nullptr;
    const ExpertWeights& x = *moe->experts[static_cast<size_t>(e)];
    if (kind == names::kFfnGateExps) return &x.gate;
    if (kind == names::kFfnUpExps) return &x.up;
    if (kind == names::kFfnDownExps) return &x.down;
  }
  return nullptr;
}

Tensor* BlockWeights::norm(std::string_view short_name) {
  return const_cast<Tensor*>(static_cast<const BlockWeights*>(this)->norm(short_name));
}

const Tensor* BlockWeights::norm(std::string_view short_name) const {
  for (const auto& [name, t] : norms)
    if (name == short_name) return &t;
  return nullptr;
}

const Linear& BlockWeights::lin(std::string_view short_name) const {
  const Linear* l = linear(short_name);
  DSQ_ASSERT(l != nullptr && !l->empty(), "block %lld has no linear '%.*s'",
             static_cast<long long>(layer), static_cast<int>(short_name.size()), short_name.data());
  return *l;
}

namespace {

Linear load_linear(const WeightStore& ws, const std::string& name, const std::string& bname,
                   const BlockLoad& how) {
  Linear lin = Linear::load(ws, name, bname);
  if (how.f32 && lin.quantized()) {  // FP8 (or other stored schemes) as the solvers' f32 source
    Tensor w(DType::kF32, lin.weight().shape());
    quant::dequantize_rows(lin.weight(), 0, lin.n_out(), w.mutable_data<float>());
    release_mapped_pages(lin.weight());  // the mapped codes are not read again
    const float thr = lin.act_threshold();
    lin = Linear::from_tensors(name, std::move(w), lin.bias(), ws.entry(name).source);
    if (thr > 0.0f) lin.set_act_threshold(thr);
  } else if (how.f32 && lin.weight().dtype() != DType::kF32) {  // f16/bf16 as f32 for the solvers
    const float thr = lin.act_threshold();
    Tensor w = lin.weight().to(DType::kF32);
    release_mapped_pages(lin.weight());  // the mapping is not read again
    lin = Linear::from_tensors(name, std::move(w), lin.bias(), ws.entry(name).source);
    if (thr > 0.0f) lin.set_act_threshold(thr);
  }
  return lin;
}

std::unique_ptr<ExpertWeights> load_expert(const WeightStore& ws, const ModelConfig& c,
                                           int64_t layer, int64_t e, bool f32) {
  auto x = std::make_unique<ExpertWeights>();
  const BlockLoad how{f32, false};
  Linear* dst[] = {&x->gate, &x->up, &x->down};
  const std::string_view kinds[] = {names::kFfnGateExps, names::kFfnUpExps, names::kFfnDownExps};
  for (int i = 0; i < 3; ++i) {
    const std::string name = linear_name(layer, expert_name(kinds[i], e));
    check_shape(ws, name);
    *dst[i] = load_linear(ws, name, "", how);
  }
  (void)c;
  return x;
}

}  // namespace

ExpertHandle::~ExpertHandle() {
  if (!owned_) return;
  for (const Linear* l : {&owned_->gate, &owned_->up, &owned_->down}) release_mapped_pages(l->weight());
}

ExpertHandle BlockWeights::expert(int64_t e) const {
  DSQ_ASSERT(moe && e >= 0 && e < static_cast<int64_t>(moe->experts.size()),
             "block %lld has no expert %lld", static_cast<long long>(layer), static_cast<long long>(e));
  if (const auto& x = moe->experts[static_cast<size_t>(e)]) return ExpertHandle(&*x);
  DSQ_ASSERT(moe->store != nullptr, "expert %lld of block %lld is not loaded",
             static_cast<long long>(e), static_cast<long long>(layer));
  return ExpertHandle(load_expert(*moe->store, moe->store->config, layer, e, moe->f32));
}

void BlockWeights::set_expert(int64_t e, ExpertWeights w) {
  DSQ_ASSERT(moe && e >= 0 && e < static_cast<int64_t>(moe->experts.size()), "no expert %lld",
             static_cast<long long>(e));
  moe->experts[static_cast<size_t>(e)] = std::move(w);
}

BlockWeights BlockWeights::load(const WeightStore& ws, int64_t layer, const BlockLoad& how) {
  DSQ_ASSERT(ws.has_config, "BlockWeights::load without a config");
  const ModelConfig& c = ws.config;
  DSQ_ASSERT(layer >= 0 && layer < c.n_layers, "layer %lld out of range",
             static_cast<long long>(layer));
  BlockWeights w;
  w.layer = layer;
  w.dims = c.layer(layer);
  w.arch = &arch_of(c);
  if (c.is_moe_layer(layer) && w.has_ffn()) {
    w.moe.emplace();
    w.moe->experts.resize(static_cast<size_t>(c.moe.n_experts));
    w.moe->f32 = how.f32;
    if (how.stream_experts) w.moe->store = &ws;
  }
  for (const ArchTensor& row : w.arch->tensors) {
    if (!row.per_layer() || !row_in_layer(row, c, layer)) continue;
    const bool live = row.part == Part::kAttn ? w.has_attn() : w.has_ffn();
    const std::string_view s = row.short_name();
    if (!live) {
      // The output bias of a removed sub-block (the linear that writes the residual stream).
      if (row.role == TensorRole::kBias && row.shape == std::vector<Dim>{Dim::kModel})
        (row.part == Part::kAttn ? w.attn_bias_only : w.ffn_bias_only) =
            load_orphan_bias(ws, layer, s);
      continue;
    }
    if (row.per_expert()) continue;  // experts: below
    const std::string name = expand_name(row.canonical, layer);
    if (row.role == TensorRole::kNorm) {
      check_shape(ws, name);
      w.norms.emplace_back(s, ws.get_f32(name));
    } else if (row.role == TensorRole::kRouter) {
      check_shape(ws, name);
      w.moe->router = load_linear(ws, name, "", BlockLoad{true, false});  // routers run in f32
    } else if (row.role == TensorRole::kRouterBias) {
      check_shape(ws, name);
      w.moe->score_bias = ws.get_f32(name);
    } else if (row.role == TensorRole::kLinear) {
      check_shape(ws, name);
      std::string bname;
      if (const ArchTensor* b = w.arch->bias_of(s); b && (!b->optional || ws.has(bias_name(layer, s)))) {
        bname = bias_name(layer, s);
        check_shape(ws, bname);
      }
      w.linears.emplace_back(s, load_linear(ws, name, bname, how));
    }
  }
  if (w.moe && !how.stream_experts)
    for (int64_t e = 0; e < c.moe.n_experts; ++e)
      w.moe->experts[static_cast<size_t>(e)] = std::move(*load_expert(ws, c, layer, e, how.f32));
  return w;
}

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t d, double eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * d > (1 << 18))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    float* yr = y + r * d;
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

void head_rmsnorm(float* x, const float* w, int64_t rows, int64_t n_heads, int64_t head_dim,
                  double eps) {
  rmsnorm(x, w, rows * n_heads, head_dim, eps, x);
}

void causal_attention(const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                      const AttnShape& a, float* out) {
  // Query rows are processed in chunks so that QK^T only covers the keys the chunk can see.
  // Heads run in parallel, each with single-threaded BLAS and its own scratch, so the result does
  // not depend on the thread count.
  constexpr int64_t kChunk = 128;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t scratch = std::min(kChunk, T) * (pos0 + T);
  std::vector<Buf> s(static_cast<size_t>(std::min<int64_t>(omp_get_max_threads(), a.n_heads)));
  for (auto& b : s) b = alloc(scratch);
  linalg::SerialBlasScope serial;
  const bool par = a.n_heads * T * (pos0 + T) * (a.d_qk + a.d_v) >= (int64_t{1} << 25);
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(s.size())) if (par)
  for (int64_t h = 0; h < a.n_heads; ++h) {
    float* sc = s[static_cast<size_t>(omp_get_thread_num())].data();
    const float* kh = k + (h / group) * a.d_qk;
    const float* vh = v + (h / group) * a.d_v;
    for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
      const int64_t tc = std::min(kChunk, T - t0), nk = pos0 + t0 + tc;
      // S[tc, nk] = scale * Q[t0:t0+tc] K[0:nk]^T
      linalg::sgemm(false, true, tc, nk, a.d_qk, a.scale, q + t0 * a.ldq + h * a.d_qk, a.ldq, kh,
                    a.ldk, 0.0f, sc, nk);
      softmax_causal_rows(sc, tc, nk, pos0 + t0);
      // O[t0:t0+tc, head h] = P[tc, nk] V[0:nk]
      linalg::sgemm(false, false, tc, a.d_v, nk, 1.0f, sc, nk, vh, a.ldv, 0.0f,
                    out + t0 * a.ldo + h * a.d_v, a.ldo);
    }
  }
}

void softmax_causal_rows(float* sc, int64_t rows, int64_t nk, int64_t first_seen) {
  // The max and the sum run in kLanes independent lanes (combined in a fixed order), so the
  // compiler vectorizes them: a single running max or double sum is a serial dependency chain,
  // and was half of a calibration run's time on small models (bench/RESULTS.md, issue 19).
  constexpr int64_t kLanes = 16;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = sc + i * nk;
    const int64_t seen = first_seen + i + 1;  // keys 0..first_seen+i are visible
    const int64_t body = seen - seen % kLanes;
    alignas(32) float lane_max[kLanes];
    alignas(32) double lane_sum[kLanes] = {};
#if defined(__AVX2__)
    // The loops below in AVX2 (GCC keeps the max scalar): lane l of the vectors is lane l of the
    // arrays, so the result has the same bits.
    __m256 m0 = _mm256_set1_ps(row[0]), m1 = m0;
    for (int64_t j = 0; j < body; j += kLanes) {  // max_ps(r, m) = r > m ? r : m = std::max(m, r)
      m0 = _mm256_max_ps(_mm256_loadu_ps(row + j), m0);
      m1 = _mm256_max_ps(_mm256_loadu_ps(row + j + 8), m1);
    }
    _mm256_store_ps(lane_max, m0);
    _mm256_store_ps(lane_max + 8, m1);
#else
    for (int64_t l = 0; l < kLanes; ++l) lane_max[l] = row[0];
    for (int64_t j = 0; j < body; j += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lane_max[l] = std::max(lane_max[l], row[j + l]);
#endif
    float mx = row[0];
    for (int64_t l = 0; l < kLanes; ++l) mx = std::max(mx, lane_max[l]);
    for (int64_t j = body; j < seen; ++j) mx = std::max(mx, row[j]);
#if defined(__AVX2__)
    __m256d s[4];
    for (auto& v : s) v = _mm256_setzero_pd();
    const __m256 vmx = _mm256_set1_ps(mx);
    for (int64_t j = 0; j < body; j += kLanes)
      for (int64_t h = 0; h < 2; ++h) {
        const __m256 e = exp_nonpositive8(_mm256_sub_ps(_mm256_loadu_ps(row + j + 8 * h), vmx));
        _mm256_storeu_ps(row + j + 8 * h, e);
        s[2 * h] = _mm256_add_pd(s[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s[2 * h + 1] = _mm256_add_pd(s[2 * h + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
      }
    for (int64_t q = 0; q < 4; ++q) _mm256_store_pd(lane_sum + 4 * q, s[q]);
#else
    for (int64_t j = 0; j < body; j += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) {
        const float e = exp_nonpositive(row[j + l] - mx);
        row[j + l] = e;
        lane_sum[l] += e;
      }
#endif
    for (int64_t j = body; j < seen; ++j) {
      row[j] = exp_nonpositive(row[j] - mx);
      lane_sum[j - body] += row[j];
    }
    for (int64_t w = kLanes / 2; w >= 1; w /= 2)  // pairwise, in a fixed order
      for (int64_t l = 0; l < w; ++l) lane_sum[l] += lane_sum[l + w];
    const double sum = lane_sum[0];
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < seen; ++j) row[j] *= inv;
    for (int64_t j = seen; j < nk; ++j) row[j] = 0.0f;
  }
}

namespace {

// Attention of kind kGqa on xn = attn_norm(h), added into h.
void attention_gqa(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h,
                   int64_t B, int64_t T, Observer* obs, LayerKV* kv, int64_t pos0) {
  namespace n = names;
  const int64_t rows = B * T, hd = c.head_dim, l = w.layer;
  const int64_t nh = w.dims.n_heads, nkv = w.dims.n_kv_heads, wq = nh * hd, wkv = nkv * hd;
  Buf q = alloc(rows * wq), k = alloc(rows * wkv), v = alloc(rows * wkv), att = alloc(rows * wq);
  run_linear(w.lin(n::kAttnQ), xn, rows, q.data(), obs, l, n::kAttnQ);
  run_linear(w.lin(n::kAttnK), xn, rows, k.data(), obs, l, n::kAttnK);
  run_linear(w.lin(n::kAttnV), xn, rows, v.data(), obs, l, n::kAttnV);
  if (const Tensor* qn = w.norm(n::kAttnQNorm))
    head_rmsnorm(q.data(), qn->data<float>(), rows, nh, hd, c.rms_eps);
  if (const Tensor* kn = w.norm(n::kAttnKNorm))
    head_rmsnorm(k.data(), kn->data<float>(), rows, nkv, hd, c.rms_eps);
  const RopeTable rt = make_rope_table(c, pos0, T);
  apply_rope(q.data(), rows, T, wq, nh, hd, 0, rt, c.rope_interleave);
  apply_rope(k.data(), rows, T, wkv, nkv, hd, 0, rt, c.rope_interleave);
  AttnShape as{nh, nkv, hd, hd, wq, wkv, wkv, wq,
               static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))};
  if (kv) {
    DSQ_ASSERT(static_cast<int64_t>(kv->k.size()) >= (pos0 + T) * wkv, "KV cache too small");
    std::copy(k.begin(), k.end(), kv->k.begin() + pos0 * wkv);
    std::copy(v.begin(), v.end(), kv->v.begin() + pos0 * wkv);
    causal_attention(q.data(), kv->k.data(), kv->v.data(), T, pos0, as, att.data());
  } else {
    for (int64_t b = 0; b < B; ++b)
      causal_attention(q.data() + b * T * wq, k.data() + b * T * wkv, v.data() + b * T * wkv, T,
                       0, as, att.data() + b * T * wq);
  }
  add_residual_linear(w, c, names::kAttnOutput, att.data(), h, rows, obs);
}

// FFN of kind kDense on xn = ffn_norm(h), added into h.
void ffn_dense(const BlockWeights& w, const ModelConfig& c, const float* xn, float* h,
               int64_t rows, Observer* obs) {
  namespace n = names;
  Buf o = alloc(rows * c.d_model);
  swiglu(w.lin(n::kFfnGate), w.lin(n::kFfnUp), w.lin(n::kFfnDown), xn, rows, o.data(), obs,
         w.layer, n::kFfnGate, n::kFfnUp, n::kFfnDown);
  add_inplace(h, o.data(), rows * c.d_model);
}

}  // namespace

void block_forward(const BlockWeights& w, const ModelConfig& c, float* h, int64_t B, int64_t T,
                   Observer* obs, LayerKV* kv, int64_t pos0, BlockPart part) {
  const int64_t rows = B * T, d = c.d_model, l = w.layer;
  DSQ_ASSERT(kv == nullptr || B == 1, "the KV-cache path takes one sequence");
  DSQ_ASSERT(w.arch != nullptr, "block %lld was not loaded", static_cast<long long>(l));
  if (obs && part != BlockPart::kFfn) obs->on_block_input(l, ActView{h, rows, d});
  Buf xn = alloc(rows * d);
  if (part == BlockPart::kFfn) {
  } else if (w.has_attn()) {
    rmsnorm(h, w.norm(names::kAttnNorm)->data<float>(), rows, d, c.rms_eps, xn.data());
    switch (w.arch->attn) {
      case AttnKind::kGqa: attention_gqa(w, c, xn.data(), h, B, T, obs, kv, pos0); break;
      case AttnKind::kMla: attention_mla(w, c, xn.data(), h, B, T, obs, kv, pos0); break;
    }
  } else if (!w.attn_bias_only.empty()) {
    add_row_bias(h, w.attn_bias_only, rows);
  }
  if (part == BlockPart::kAttn) return;
  if (w.has_ffn()) {
    rmsnorm(h, w.norm(names::kFfnNorm)->data<float>(), rows, d, c.rms_eps, xn.data());
    if (w.is_moe())
      ffn_moe(w, c, xn.data(), h, rows, obs);
    else
      ffn_dense(w, c, xn.data(), h, rows, obs);
  } else if (!w.ffn_bias_only.empty()) {
    add_row_bias(h, w.ffn_bias_only, rows);
  }
  if (obs) obs->on_block_output(l, ActView{h, rows, d});
}

}  // namespace dsq::model
