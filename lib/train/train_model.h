// A trainable copy of a dense Llama-family model (AttnKind::kGqa + FfnKind::kDense: Llama, Qwen2,
// Qwen3, pruned ones with their per-layer widths included): every tensor as a parameter with its
// gradient, a forward that keeps what the backward needs (a tape), and the backward, op by op
// through lib/train/ops.h. It computes what lib/model's engine computes (same ops, same order), so
// the trained weights evaluate the same way in `dsq eval`.
//
// T is float for training (the parameters are the f32 master weights) and double for the
// whole-model gradient check in tests. Deterministic for any thread count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/weight_store.h"

namespace dsq::train {

template <class T>
struct Param {
  std::string name;  // canonical tensor name
  Shape shape;
  std::vector<T> w, g;
};

template <class T>
class TrainModel {
 public:
  // f32 (or f64) copies of every tensor of a dense GQA model. Throws UsageError for kinds the
  // trainer does not have (MLA, MoE), quantized tensors, or partial rotary; `where` names the file.
  static TrainModel from_store(const WeightStore& ws, const std::string& where);

  const ModelConfig& config() const { return c_; }
  std::vector<Param<T>>& params() { return params_; }
  const std::vector<Param<T>>& params() const { return params_; }
  int64_t n_params() const;

  // Logits [B*T, vocab] of B sequences of T ids (each from position 0); keeps the tape.
  void forward(std::span<const int32_t> ids, int64_t B, int64_t seq, T* logits);
  // Adds the gradient of the loss whose logit gradient is dlogits [B*T, vocab] (of the last
  // forward) into every parameter's g.
  void backward(const T* dlogits);
  void zero_grad();

  // Replaces (or adds) each parameter in ws as an f32 tensor under its canonical name.
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
  const T* w(int i) const { return i < 0 ? nullptr : params_[static_cast<size_t>(i)].w.data(); }
  T* gr(int i) { return i < 0 ? nullptr : params_[static_cast<size_t>(i)].g.data(); }

  ModelConfig c_;
  std::vector<Param<T>> params_;
  std::vector<Layer> layers_;
  int embd_ = -1, out_norm_ = -1, classifier_ = -1;
  // Tape of the head and the batch.
  std::vector<int32_t> ids_;
  int64_t B_ = 0, T_ = 0;
  std::vector<T> h_final_, xnf_, invf_;
  std::vector<float> cos_, sin_;
};

}  // namespace dsq::train
