#include "lib/train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lib/core/error.h"
#include "lib/core/quant_view.h"
#include "lib/model/rope.h"
#include "lib/train/ops.h"

namespace dsq::train {

namespace {

template <class T>
void zero(std::vector<T>& v, int64_t n) {
  v.assign(static_cast<size_t>(n), T(0));
}

template <class T>
void add_rows(T* h, const T* b, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i) h[r * d + i] += b[i];
}

template <class T>
void col_sums(const T* x, int64_t rows, int64_t d, T* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < d; ++i) out[i] += x[r * d + i];
}

}  // namespace

void check_trainable(const WeightStore& ws, const std::string& where) {
  DSQ_ASSERT(ws.has_config, "check_trainable without a config");
  check_trainable(ws.config, where);
  for (const auto& name : ws.names()) {
    const auto& e = ws.entry(name);
    if (e.dtype == DType::kQInt && e.quant.info().layout != SchemeLayout::kGroupedInt)
      throw UsageError("'" + e.source + "': tensor '" + name + "' is stored in " +
                       scheme_name(e.quant) +
                       ": only float and grouped-integer tensors are trainable (convert it with "
                       "--dtype bf16 first)");
  }
}

void check_trainable(const ModelConfig& c, const std::string& where) {
  const ArchInfo& arch = arch_of(c);
  if (arch.attn != AttnKind::kGqa || arch.ffn != FfnKind::kDense)
    throw UsageError(where + ": architecture '" + c.arch +
                     "' is not trainable yet: dsq trains dense Llama-family blocks (llama, qwen2, "
                     "qwen3); MLA and MoE blocks have no backward pass");
  if (c.rope_dims() != c.head_dim)
    throw UsageError(where + ": partial rotary embeddings (rope over " + std::to_string(c.rope_dims()) +
                     " of " + std::to_string(c.head_dim) + " head dims) are not trainable yet");
}

template <class T>
int TrainModel<T>::add_param(const WeightStore& ws, const std::string& name) {
  const auto& e = ws.entry(name);
  if (e.dtype == DType::kQInt) {  // grouped-integer (check_trainable): trained by its scales
    QuantTensor q;
    q.source = ws.get(name);
    const GroupedIntView v(q.source);
    q.rows = q.source.dim(0);
    q.cols = q.source.dim(1);
    q.group = v.L.group;
    q.n_groups = v.L.n_groups;
    q.max_code = static_cast<T>((1 << q.source.quant().bits()) - 1);
    q.codes.resize(static_cast<size_t>(q.rows * q.cols));
    q.zero0.resize(static_cast<size_t>(q.rows * q.n_groups));
    Param<T> s;
    s.name = name + ".scales";
    s.shape = {q.rows, q.n_groups};
    s.w.resize(static_cast<size_t>(q.rows * q.n_groups));
    for (int64_t r = 0; r < q.rows; ++r) {
      for (int64_t g = 0; g < q.n_groups; ++g) {
        s.w[static_cast<size_t>(r * q.n_groups + g)] = static_cast<T>(f16_to_f32(v.scale_bits(r, g)));
        q.zero0[static_cast<size_t>(r * q.n_groups + g)] = static_cast<T>(v.zero(r, g));
      }
      for (int64_t c = 0; c < q.cols; ++c)
        q.codes[static_cast<size_t>(r * q.cols + c)] = static_cast<T>(v.code(r, c));
    }
    s.g.assign(s.w.size(), T(0));
    Param<T> w;
    w.name = name;
    w.shape = q.source.shape();
    w.w.assign(q.codes.size(), T(0));
    w.g.assign(q.codes.size(), T(0));
    w.trainable = false;  // derived from the scales (and zeros)
    params_.push_back(std::move(w));
    q.weight = static_cast<int>(params_.size()) - 1;
    params_.push_back(std::move(s));
    q.scales = static_cast<int>(params_.size()) - 1;
    const QuantDesc& d = q.source.quant();
    if (tune_zeros_ && !d.sym() && !d.info().f16_min) {
      Param<T> z;
      z.name = name + ".zeros";
      z.shape = {q.rows, q.n_groups};
      z.w = q.zero0;
      z.g.assign(z.w.size(), T(0));
      z.lr_scale = kZeroLrScale;
      params_.push_back(std::move(z));
      q.zeros = static_cast<int>(params_.size()) - 1;
    }
    quant_.push_back(std::move(q));
    return quant_.back().weight;  // its values: sync_quant_weights (from_store, every forward)
  }
  const Tensor t = ws.get_f32(name);
  Param<T> p;
  p.name = name;
  p.shape = t.shape();
  p.decay = p.shape.size() >= 2;
  const float* src = t.data<float>();
  p.w.assign(src, src + t.numel());
  p.g.assign(p.w.size(), T(0));
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

template <class T>
T TrainModel<T>::zero_of(const QuantTensor& q, int64_t i) const {
  if (q.zeros < 0) return q.zero0[static_cast<size_t>(i)];
  const T z = params_[static_cast<size_t>(q.zeros)].w[static_cast<size_t>(i)];
  if (!round_scales_) return z;
  return std::clamp(std::nearbyint(z), T(0), q.max_code);  // the u8 the file will store
}

template <class T>
int64_t TrainModel<T>::zeros_moved() const {
  int64_t n = 0;
  for (const QuantTensor& q : quant_)
    if (q.zeros >= 0)
      for (int64_t i = 0; i < q.rows * q.n_groups; ++i) n += zero_of(q, i) != q.zero0[static_cast<size_t>(i)];
  return n;
}

template <class T>
void TrainModel<T>::sync_quant_weights() {
  for (const QuantTensor& q : quant_) {
    const T* s = params_[static_cast<size_t>(q.scales)].w.data();
    T* w = params_[static_cast<size_t>(q.weight)].w.data();
#pragma omp parallel for schedule(static) if (q.rows * q.cols > (1 << 16))
    for (int64_t r = 0; r < q.rows; ++r)
      for (int64_t g = 0; g < q.n_groups; ++g) {
        // The scale the file will store: f16.
        const T raw = s[r * q.n_groups + g];
        const T sc = round_scales_ ? static_cast<T>(f16_to_f32(f32_to_f16(static_cast<float>(raw)))) : raw;
        const T z = zero_of(q, r * q.n_groups + g);
        for (int64_t c = g * q.group; c < std::min(q.cols, (g + 1) * q.group); ++c)
          w[r * q.cols + c] = sc * (q.codes[static_cast<size_t>(r * q.cols + c)] - z);
      }
  }
}

template <class T>
void TrainModel<T>::reduce_quant_grads() {
  for (const QuantTensor& q : quant_) {
    const T* s = params_[static_cast<size_t>(q.scales)].w.data();
    T* gs = params_[static_cast<size_t>(q.scales)].g.data();
    T* gz = q.zeros >= 0 ? params_[static_cast<size_t>(q.zeros)].g.data() : nullptr;
    T* gw = params_[static_cast<size_t>(q.weight)].g.data();
#pragma omp parallel for schedule(static) if (q.rows * q.cols > (1 << 16))
    for (int64_t r = 0; r < q.rows; ++r)
      for (int64_t g = 0; g < q.n_groups; ++g) {
        const T z = zero_of(q, r * q.n_groups + g);
        double acc = 0.0, sum = 0.0;
        for (int64_t c = g * q.group; c < std::min(q.cols, (g + 1) * q.group); ++c) {
          const double gwc = static_cast<double>(gw[r * q.cols + c]);
          acc += gwc * static_cast<double>(q.codes[static_cast<size_t>(r * q.cols + c)] - z);
          sum += gwc;
          gw[r * q.cols + c] = T(0);
        }
        gs[r * q.n_groups + g] += static_cast<T>(acc);
        // dW/dz = -s (straight through the scale's and the zero's rounding).
        if (gz) gz[r * q.n_groups + g] -= static_cast<T>(sum * static_cast<double>(s[r * q.n_groups + g]));
      }
  }
}

template <class T>
TrainModel<T> TrainModel<T>::from_store(const WeightStore& ws, const std::string& where,
                                        bool tune_zeros) {
  DSQ_ASSERT(ws.has_config, "TrainModel without a config");
  const ModelConfig& c = ws.config;
  check_trainable(ws, where);
  TrainModel m;
  m.c_ = c;
  m.tune_zeros_ = tune_zeros;
  m.embd_ = m.add_param(ws, std::string(names::kTokenEmbd));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Layer L;
    const LayerDims dims = c.layer(l);
    L.n_heads = dims.n_heads;
    L.n_kv = dims.n_kv_heads;
    L.d_ff = dims.d_ff;
    auto lin = [&](std::string_view s, int* wi, int* bi) {
      *wi = m.add_param(ws, linear_name(l, s));
      if (bi && ws.has(bias_name(l, s))) *bi = m.add_param(ws, bias_name(l, s));
    };
    auto opt_norm = [&](std::string_view s) {
      const std::string n = linear_name(l, s);
      return ws.has(n) ? m.add_param(ws, n) : -1;
    };
    if (L.n_heads > 0) {
      L.attn_norm = m.add_param(ws, linear_name(l, names::kAttnNorm));
      lin(names::kAttnQ, &L.q, &L.bq);
      lin(names::kAttnK, &L.k, &L.bk);
      lin(names::kAttnV, &L.v, &L.bv);
      L.q_norm = opt_norm(names::kAttnQNorm);
      L.k_norm = opt_norm(names::kAttnKNorm);
      lin(names::kAttnOutput, &L.o, &L.bo);
    } else if (ws.has(bias_name(l, names::kAttnOutput))) {
      L.attn_bias_only = m.add_param(ws, bias_name(l, names::kAttnOutput));
    }
    if (L.d_ff > 0) {
      L.ffn_norm = m.add_param(ws, linear_name(l, names::kFfnNorm));
      lin(names::kFfnGate, &L.gate, &L.bgate);
      lin(names::kFfnUp, &L.up, &L.bup);
      lin(names::kFfnDown, &L.down, &L.bdown);
    } else if (ws.has(bias_name(l, names::kFfnDown))) {
      L.ffn_bias_only = m.add_param(ws, bias_name(l, names::kFfnDown));
    }
    m.layers_.push_back(std::move(L));
  }
  m.out_norm_ = m.add_param(ws, std::string(names::kOutputNorm));
  // Tied models may still carry a separate copy (GGUF does); the engine uses it when present.
  const bool own = ws.has(std::string(names::kOutput)) || !c.tied_embeddings;
  m.classifier_ = own ? m.add_param(ws, std::string(names::kOutput)) : m.embd_;
  m.sync_quant_weights();
  if (!m.quant_.empty())  // scale tuning: float matrices stay as they are
    for (auto& p : m.params_)
      if (p.decay) p.trainable = p.grad = false;
  for (const auto& p : m.params_) {  // shapes against the config, before any arithmetic
    if (quantized_part(p.name)) continue;
    if (const auto want = expected_shape(c, p.name); want && *want != p.shape)
      throw ShapeError(where + ": tensor '" + p.name + "' has shape " + shape_str(p.shape) +
                       ", the config implies " + shape_str(*want));
  }
  return m;
}

template <class T>
int64_t TrainModel<T>::n_params() const {
  int64_t n = 0;  // the model's weights (a quantized tensor's scales are not extra weights)
  for (const auto& p : params_)
    if (!quantized_part(p.name)) n += static_cast<int64_t>(p.w.size());
  return n;
}

template <class T>
int64_t TrainModel<T>::n_trainable() const {
  int64_t n = 0;
  for (const auto& p : params_)
    if (p.trainable) n += static_cast<int64_t>(p.w.size());
  return n;
}

template <class T>
void TrainModel<T>::zero_grad() {
  for (auto& p : params_) std::fill(p.g.begin(), p.g.end(), T(0));
}

template <class T>
void TrainModel<T>::head_norm_forward(const std::vector<T>& x, int norm, int64_t vectors,
                                      std::vector<T>& y, std::vector<T>& inv) const {
  if (norm < 0) {
    y = x;
    return;
  }
  zero(y, static_cast<int64_t>(x.size()));
  zero(inv, vectors);
  rmsnorm_forward(x.data(), w(norm), vectors, c_.head_dim, c_.rms_eps, y.data(), inv.data());
}

template <class T>
void TrainModel<T>::head_norm_backward(const std::vector<T>& x, int norm, int64_t vectors,
                                       const std::vector<T>& inv, std::vector<T>& dy) {
  if (norm < 0) return;
  std::vector<T> dx(dy.size(), T(0));
  rmsnorm_backward(x.data(), w(norm), inv.data(), dy.data(), vectors, c_.head_dim, dx.data(), gr(norm));
  dy.swap(dx);
}

template <class T>
void TrainModel<T>::forward_body(std::span<const int32_t> ids, int64_t B, int64_t seq) {
  const int64_t rows = B * seq, d = c_.d_model, hd = c_.head_dim, vocab = c_.vocab_size;
  DSQ_ASSERT(static_cast<int64_t>(ids.size()) == rows, "forward: %zu ids for %lld x %lld",
             ids.size(), static_cast<long long>(B), static_cast<long long>(seq));
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      throw ShapeError(strprintf("token id %d is outside the vocabulary [0, %lld)", id,
                                 static_cast<long long>(vocab)));
  ids_.assign(ids.begin(), ids.end());
  sync_quant_weights();  // the scales may have changed since the last forward
  B_ = B;
  T_ = seq;
  const model::RopeTable rt = model::make_rope_table(c_, 0, seq);
  cos_ = rt.cos;
  sin_ = rt.sin;
  std::vector<T> h(static_cast<size_t>(rows * d)), tmp(static_cast<size_t>(rows * d));
  embedding_forward(w(embd_), ids_.data(), rows, d, h.data());
  for (auto& L : layers_) {
    L.h_in = h;
    if (L.n_heads > 0) {
      const int64_t wq = L.n_heads * hd, wkv = L.n_kv * hd;
      zero(L.xn1, rows * d);
      zero(L.inv1, rows);
      rmsnorm_forward(h.data(), w(L.attn_norm), rows, d, c_.rms_eps, L.xn1.data(), L.inv1.data());
      zero(L.q0, rows * wq);
      zero(L.k0, rows * wkv);
      zero(L.v_, rows * wkv);
      linear_forward(L.xn1.data(), w(L.q), w(L.bq), rows, d, wq, L.q0.data());
      linear_forward(L.xn1.data(), w(L.k), w(L.bk), rows, d, wkv, L.k0.data());
      linear_forward(L.xn1.data(), w(L.v), w(L.bv), rows, d, wkv, L.v_.data());
      head_norm_forward(L.q0, L.q_norm, rows * L.n_heads, L.qr, L.qinv);
      head_norm_forward(L.k0, L.k_norm, rows * L.n_kv, L.kr, L.kinv);
      rope_rotate(L.qr.data(), rows, T_, wq, L.n_heads, hd, cos_.data(), sin_.data(),
                  c_.rope_interleave, false);
      rope_rotate(L.kr.data(), rows, T_, wkv, L.n_kv, hd, cos_.data(), sin_.data(),
                  c_.rope_interleave, false);
      zero(L.att, rows * wq);
      const AttnDims ad{B, T_, L.n_heads, L.n_kv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
      attention_forward(L.qr.data(), L.kr.data(), L.v_.data(), ad, L.att.data());
      linear_forward(L.att.data(), w(L.o), w(L.bo), rows, wq, d, tmp.data());
      for (int64_t i = 0; i < rows * d; ++i) h[static_cast<size_t>(i)] += tmp[static_cast<size_t>(i)];
    } else if (L.attn_bias_only >= 0) {
      add_rows(h.data(), w(L.attn_bias_only), rows, d);
    }
    L.h_mid = h;
    if (L.d_ff > 0) {
      const int64_t ff = L.d_ff;
      zero(L.xn2, rows * d);
      zero(L.inv2, rows);
      rmsnorm_forward(h.data(), w(L.ffn_norm), rows, d, c_.rms_eps, L.xn2.data(), L.inv2.data());
      zero(L.g, rows * ff);
      zero(L.u, rows * ff);
      zero(L.act, rows * ff);
      linear_forward(L.xn2.data(), w(L.gate), w(L.bgate), rows, d, ff, L.g.data());
      linear_forward(L.xn2.data(), w(L.up), w(L.bup), rows, d, ff, L.u.data());
      swiglu_forward(L.g.data(), L.u.data(), rows * ff, L.act.data());
      linear_forward(L.act.data(), w(L.down), w(L.bdown), rows, ff, d, tmp.data());
      for (int64_t i = 0; i < rows * d; ++i) h[static_cast<size_t>(i)] += tmp[static_cast<size_t>(i)];
    } else if (L.ffn_bias_only >= 0) {
      add_rows(h.data(), w(L.ffn_bias_only), rows, d);
    }
  }
  h_final_ = std::move(h);
  zero(xnf_, rows * d);
  zero(invf_, rows);
  rmsnorm_forward(h_final_.data(), w(out_norm_), rows, d, c_.rms_eps, xnf_.data(), invf_.data());
  zero(dxnf_, rows * d);
}

template <class T>
void TrainModel<T>::head_rows(int64_t row0, int64_t n, T* logits) const {
  const int64_t d = c_.d_model;
  linear_forward(xnf_.data() + row0 * d, w(classifier_), static_cast<const T*>(nullptr), n, d,
                 c_.vocab_size, logits);
}

template <class T>
void TrainModel<T>::head_backward_rows(int64_t row0, int64_t n, const T* dlogits) {
  const int64_t d = c_.d_model;
  linear_backward(xnf_.data() + row0 * d, w(classifier_), dlogits, n, d, c_.vocab_size,
                  dxnf_.data() + row0 * d, gr(classifier_), static_cast<T*>(nullptr));
}

template <class T>
int64_t TrainModel<T>::head_chunk() const {
  if (head_chunk_ > 0) return head_chunk_;
  return std::max<int64_t>(1, std::min<int64_t>(B_ * T_, (int64_t{1} << 24) / c_.vocab_size));
}

template <class T>
void TrainModel<T>::forward(std::span<const int32_t> ids, int64_t B, int64_t seq, T* logits) {
  forward_body(ids, B, seq);
  head_rows(0, B * seq, logits);
}

template <class T>
double TrainModel<T>::head_pass(const RowLoss& loss, bool backward) {
  const int64_t rows = B_ * T_, chunk = head_chunk();
  std::vector<T> logits(static_cast<size_t>(std::min(chunk, rows) * c_.vocab_size));
  std::vector<T> dl(backward ? logits.size() : 0);
  double total = 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    head_rows(r0, n, logits.data());
    total += loss(r0, n, logits.data(), backward ? dl.data() : nullptr);
    if (backward) head_backward_rows(r0, n, dl.data());
  }
  return total;
}

template <class T>
double TrainModel<T>::forward_backward(std::span<const int32_t> ids, int64_t B, int64_t seq,
                                       const RowLoss& loss) {
  forward_body(ids, B, seq);
  const double total = head_pass(loss, true);
  backward_body();
  return total;
}

template <class T>
double TrainModel<T>::forward_loss(std::span<const int32_t> ids, int64_t B, int64_t seq,
                                   const RowLoss& loss) {
  forward_body(ids, B, seq);
  return head_pass(loss, false);
}

template <class T>
void TrainModel<T>::backward(const T* dlogits) {
  DSQ_ASSERT(B_ * T_ > 0 && !h_final_.empty(), "backward before forward");
  head_backward_rows(0, B_ * T_, dlogits);
  backward_body();
}

template <class T>
void TrainModel<T>::backward_body() {
  const int64_t rows = B_ * T_, d = c_.d_model, hd = c_.head_dim;
  std::vector<T> dh(static_cast<size_t>(rows * d), T(0)), dx(static_cast<size_t>(rows * d));
  rmsnorm_backward(h_final_.data(), w(out_norm_), invf_.data(), dxnf_.data(), rows, d, dh.data(),
                   gr(out_norm_));
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    Layer& L = *it;
    if (L.d_ff > 0) {
      const int64_t ff = L.d_ff;
      std::vector<T> dact(static_cast<size_t>(rows * ff), T(0)), dg(dact.size(), T(0)),
          du(dact.size(), T(0));
      linear_backward(L.act.data(), w(L.down), dh.data(), rows, ff, d, dact.data(), gr(L.down),
                      gr(L.bdown));
      swiglu_backward(L.g.data(), L.u.data(), dact.data(), rows * ff, dg.data(), du.data());
      std::fill(dx.begin(), dx.end(), T(0));
      linear_backward(L.xn2.data(), w(L.gate), dg.data(), rows, d, ff, dx.data(), gr(L.gate),
                      gr(L.bgate));
      linear_backward(L.xn2.data(), w(L.up), du.data(), rows, d, ff, dx.data(), gr(L.up), gr(L.bup));
      rmsnorm_backward(L.h_mid.data(), w(L.ffn_norm), L.inv2.data(), dx.data(), rows, d, dh.data(),
                       gr(L.ffn_norm));
    } else if (L.ffn_bias_only >= 0) {
      col_sums(dh.data(), rows, d, gr(L.ffn_bias_only));
    }
    if (L.n_heads > 0) {
      const int64_t wq = L.n_heads * hd, wkv = L.n_kv * hd;
      std::vector<T> datt(static_cast<size_t>(rows * wq), T(0)), dq(datt.size(), T(0)),
          dk(static_cast<size_t>(rows * wkv), T(0)), dv(dk.size(), T(0));
      linear_backward(L.att.data(), w(L.o), dh.data(), rows, wq, d, datt.data(), gr(L.o), gr(L.bo));
      const AttnDims ad{B_, T_, L.n_heads, L.n_kv, hd, 1.0 / std::sqrt(static_cast<double>(hd))};
      attention_backward(L.qr.data(), L.kr.data(), L.v_.data(), datt.data(), ad, dq.data(),
                         dk.data(), dv.data());
      rope_rotate(dq.data(), rows, T_, wq, L.n_heads, hd, cos_.data(), sin_.data(),
                  c_.rope_interleave, true);
      rope_rotate(dk.data(), rows, T_, wkv, L.n_kv, hd, cos_.data(), sin_.data(),
                  c_.rope_interleave, true);
      head_norm_backward(L.q0, L.q_norm, rows * L.n_heads, L.qinv, dq);
      head_norm_backward(L.k0, L.k_norm, rows * L.n_kv, L.kinv, dk);
      std::fill(dx.begin(), dx.end(), T(0));
      linear_backward(L.xn1.data(), w(L.q), dq.data(), rows, d, wq, dx.data(), gr(L.q), gr(L.bq));
      linear_backward(L.xn1.data(), w(L.k), dk.data(), rows, d, wkv, dx.data(), gr(L.k), gr(L.bk));
      linear_backward(L.xn1.data(), w(L.v), dv.data(), rows, d, wkv, dx.data(), gr(L.v), gr(L.bv));
      rmsnorm_backward(L.h_in.data(), w(L.attn_norm), L.inv1.data(), dx.data(), rows, d, dh.data(),
                       gr(L.attn_norm));
    } else if (L.attn_bias_only >= 0) {
      col_sums(dh.data(), rows, d, gr(L.attn_bias_only));
    }
  }
  embedding_backward(ids_.data(), dh.data(), rows, d, gr(embd_));
  reduce_quant_grads();
}

template <class T>
void TrainModel<T>::store_into(WeightStore& ws) const {
  for (const QuantTensor& q : quant_) {
    Tensor t(DType::kQInt, q.source.shape(), &q.source.quant());
    std::memcpy(t.mutable_bytes(), q.source.bytes(), q.source.nbytes());
    const GroupedIntView v(t);
    uint16_t* sc = reinterpret_cast<uint16_t*>(t.mutable_bytes() + v.L.scales_offset);
    const auto& s = params_[static_cast<size_t>(q.scales)].w;
    for (size_t i = 0; i < s.size(); ++i) sc[i] = f32_to_f16(static_cast<float>(s[i]));
    if (q.zeros >= 0) {
      uint8_t* zp = reinterpret_cast<uint8_t*>(t.mutable_bytes() + v.L.zeros_offset);
      for (int64_t i = 0; i < q.rows * q.n_groups; ++i) zp[i] = static_cast<uint8_t>(zero_of(q, i));
    }
    ws.replace(params_[static_cast<size_t>(q.weight)].name, std::move(t));
  }
  for (const auto& p : params_) {
    if (!p.trainable || quantized_part(p.name)) continue;  // frozen, or written above
    Tensor t(DType::kF32, p.shape);
    float* dst = t.mutable_data<float>();
    for (size_t i = 0; i < p.w.size(); ++i) dst[i] = static_cast<float>(p.w[i]);
    if (ws.has(p.name))
      ws.replace(p.name, std::move(t));
    else
      ws.add_tensor(p.name, std::move(t));
  }
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace dsq::train
