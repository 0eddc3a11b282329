// A trainable copy of a dense Llama-family model (AttnKind::kGqa + FfnKind::kDense: Llama, Qwen2,
// Qwen3, pruned ones with their per-layer widths included): every tensor as a parameter with its
// gradient, a forward that keeps what the backward needs (a tape), and the backward, op by op
// through lib/train/ops.h. It computes what lib/model's engine computes (same ops, same order), so
// the trained weights evaluate the same way in `dsq eval`.
//
// T is float for training (the parameters are the f32 master weights) and double for the
// whole-model gradient check in tests. Deterministic for any thread count.
//
// A student with quantized (grouped-integer) tensors is trained by its scales: each such tensor's
// codes stay frozen, its weight is W = s * (code - zero) with s the f32 master scale rounded to f16
// (what the file stores; the gradient passes straight through the rounding), and the trainable
// parameters are those scales plus the norms and biases; float matrices stay as they are. With
// tune_zeros, an asymmetric tensor's zero points train too: an f32 master zero per group, rounded
// to an integer code in [0, 2^bits) in the forward (straight-through again), with kZeroLrScale
// times the learning rate (a zero must move by half a code to change; a scale by a few percent).
// Rows whose zeros must stay exact for an export (int4_asymf, GGUF Q4_1's f16 min) keep them. The
// result is again an exact quantized model with the same codes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/weight_store.h"

namespace dsq::train {

// Throws UsageError (naming `where` and the tensor) unless the trainer can train ws: blocks of
// attention kind kGqa with full rotary and FFN kind kDense; tensors in float or in a
// grouped-integer scheme (other quantized layouts, e.g. FP8 blocks, are refused).
void check_trainable(const WeightStore& ws, const std::string& where);
// The architecture part alone (the config's row and rotary layout).
void check_trainable(const ModelConfig& c, const std::string& where);

// The learning-rate multiplier of trained zero points (Param::lr_scale).
inline constexpr float kZeroLrScale = 10.0f;

template <class T>
struct Param {
  // Canonical tensor name; a quantized weight's scales and zero points are "<weight>.scales" and
  // "<weight>.zeros" (quantized_part).
  std::string name;
  Shape shape;
  std::vector<T> w, g;
  bool trainable = true;  // the optimizer updates it
  bool grad = true;       // its gradient is computed (a quantized weight's feeds its scales)
  bool decay = false;     // weight decay applies (float matrices)
  float lr_scale = 1.0f;  // the optimizer's learning rate times this
};

// Whether a parameter is a quantized weight's scales or zero points (not a tensor of the model).
inline bool quantized_part(const std::string& name) {
  return name.ends_with(".scales") || name.ends_with(".zeros");
}

template <class T>
class TrainModel {
 public:
  // f32 (or f64) copies of every tensor of a dense GQA model. Throws UsageError for kinds the
  // trainer does not have (MLA, MoE), quantized tensors, or partial rotary; `where` names the file.
  // tune_zeros: asymmetric quantized tensors train their zero points too (see above).
  static TrainModel from_store(const WeightStore& ws, const std::string& where,
                               bool tune_zeros = false);

  const ModelConfig& config() const { return c_; }
  std::vector<Param<T>>& params() { return params_; }
  const std::vector<Param<T>>& params() const { return params_; }
  int64_t n_params() const;
  int64_t n_trainable() const;
  bool scale_tuning() const { return !quant_.empty(); }
  bool zero_tuning() const {
    for (const auto& q : quant_)
      if (q.zeros >= 0) return true;
    return false;
  }
  // Zero points that now differ from the stored ones (zero tuning).
  int64_t zeros_moved() const;

  // Logits [B*T, vocab] of B sequences of T ids (each from position 0); keeps the tape.
  void forward(std::span<const int32_t> ids, int64_t B, int64_t seq, T* logits);
  // Adds the gradient of the loss whose logit gradient is dlogits [B*T, vocab] (of the last
  // forward) into every parameter's g.
  void backward(const T* dlogits);

  // The loss of rows [row0, row0 + n): given their logits, returns the summed loss and, when
  // dlogits is non-null, writes its gradient there.
  using RowLoss = std::function<double(int64_t row0, int64_t n, const T* logits, T* dlogits)>;
  // Forward, then the classifier in chunks of rows (so [B*T, vocab] is never held whole: a
  // 152k vocabulary at 4k tokens would be 2.5 GB), each chunk's loss and its backward, then the
  // backward through the blocks: adds the gradient of the summed loss into every g. Returns the
  // summed loss.
  double forward_backward(std::span<const int32_t> ids, int64_t B, int64_t seq, const RowLoss& loss);
  // The summed loss without gradients (held-out evaluation).
  double forward_loss(std::span<const int32_t> ids, int64_t B, int64_t seq, const RowLoss& loss);
  void zero_grad();
  // Whether quantized weights use the f16-rounded scales and integer zeros (default; off only for
  // the f64 gradient check, where rounding would hide a finite difference).
  void set_round_scales(bool on) { round_scales_ = on; }
  // Rows per classifier chunk (0: as many as keep a chunk's logits at 64 MB).
  void set_head_chunk(int64_t rows) { head_chunk_ = rows; }

  // Writes the trained tensors into ws: float parameters as f32 under their canonical names, a
  // quantized tensor as its source with the new f16 scales (and zeros, when they train; the codes
  // byte-identical).
  // Frozen float tensors are left as they are.
  void store_into(WeightStore& ws) const;

 private:
  struct Layer {
    int64_t n_heads = 0, n_kv = 0, d_ff = 0;
    // Parameter indices, -1 when absent.
    int attn_norm = -1, q = -1, k = -1, v = -1, o = -1, bq = -1, bk = -1, bv = -1, bo = -1;
    int q_norm = -1, k_norm = -1, ffn_norm = -1, gate = -1, up = -1, down = -1, bgate = -1,
        bup = -1, bdown = -1;
    int attn_bias_only = -1, ffn_bias_only = -1;
    // Tape.
    std::vector<T> h_in, xn1, inv1, q0, qinv, qr, k0, kinv, kr, v_, att, h_mid, xn2, inv2, g, u, act;
  };
  int add_param(const WeightStore& ws, const std::string& name);
  // A quantized tensor's derived weight: W from the current scales and zeros (before every
  // forward), and the weight's gradient reduced onto them (after every backward).
  struct QuantTensor {
    int weight = -1, scales = -1, zeros = -1;  // zeros: -1 when they stay as stored
    Tensor source;             // the kQInt tensor (codes, zeros, layout)
    std::vector<T> codes;      // [rows, cols]
    std::vector<T> zero0;      // the stored zero points [rows, n_groups]
    int64_t rows = 0, cols = 0, group = 0, n_groups = 0;
    T max_code = 0;
  };
  // The zero point of group i of q as the forward uses it.
  T zero_of(const QuantTensor& q, int64_t i) const;
  bool tune_zeros_ = false;
  void sync_quant_weights();
  void reduce_quant_grads();
  void forward_body(std::span<const int32_t> ids, int64_t B, int64_t seq);  // up to xnf_
  void head_rows(int64_t row0, int64_t n, T* logits) const;
  void head_backward_rows(int64_t row0, int64_t n, const T* dlogits);  // into dxnf_, classifier g
  void backward_body();  // from dxnf_
  // The classifier and `loss` over all rows in chunks; with `backward`, each chunk's gradient
  // into dxnf_ and the classifier's g.
  double head_pass(const RowLoss& loss, bool backward);
  // Qwen3's per-head norm of `vectors` head vectors (a copy without one), and its backward in
  // place on the gradient.
  void head_norm_forward(const std::vector<T>& x, int norm, int64_t vectors, std::vector<T>& y,
                         std::vector<T>& inv) const;
  void head_norm_backward(const std::vector<T>& x, int norm, int64_t vectors,
                          const std::vector<T>& inv, std::vector<T>& dy);
  int64_t head_chunk() const;
  const T* w(int i) const { return i < 0 ? nullptr : params_[static_cast<size_t>(i)].w.data(); }
  T* gr(int i) {
    return i < 0 || !params_[static_cast<size_t>(i)].grad ? nullptr : params_[static_cast<size_t>(i)].g.data();
  }

  ModelConfig c_;
  std::vector<Param<T>> params_;
  std::vector<Layer> layers_;
  std::vector<QuantTensor> quant_;
  int embd_ = -1, out_norm_ = -1, classifier_ = -1;
  // Tape of the head and the batch.
  std::vector<int32_t> ids_;
  int64_t B_ = 0, T_ = 0, head_chunk_ = 0;
  bool round_scales_ = true;
  std::vector<T> h_final_, xnf_, invf_, dxnf_;
  std::vector<float> cos_, sin_;
};

}  // namespace dsq::train
