// AdamW (decoupled weight decay) over a TrainModel's f32 master weights, with a linear warmup
// and cosine decay of the learning rate, global gradient-norm clipping, and a checkpoint of the
// whole training state (weights, both moments, step, and the caller's JSON) that restores it
// bit for bit, so a resumed run writes the same bytes as an uninterrupted one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/train/train_model.h"

namespace dsq::train {

struct AdamWOptions {
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  // the cosine ends at lr * min_lr_ratio
  int64_t warmup = 0;         // steps of linear warmup from 0
  int64_t total = 1;          // steps of the whole schedule
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // applied to float matrices only (Param::decay)
  double clip = 1.0;          // global gradient-norm clip (0 = none)
};

// The learning rate of step `step` (0-based): warmup lr * (step + 1) / warmup, then cosine from
// lr to lr * min_lr_ratio over the remaining steps.
double lr_at(const AdamWOptions& o, int64_t step);

class AdamW {
 public:
  AdamW(const AdamWOptions& o, const std::vector<Param<float>>& params);
  // One update of the trainable parameters with their gradients (left as they are). Returns
  // the gradient norm before clipping.
  double step(std::vector<Param<float>>& params);
  int64_t steps_done() const { return t_; }
  const AdamWOptions& options() const { return o_; }

  // Writes weights, moments, the step and `extra` to path (through path.tmp + rename).
  void save(const std::string& path, const std::vector<Param<float>>& params,
            const nlohmann::json& extra) const;
  // Restores them (names and sizes must match); returns `extra`. Throws FormatError naming the
  // file when it is not a checkpoint of these parameters.
  nlohmann::json load(const std::string& path, std::vector<Param<float>>& params);

 private:
  AdamWOptions o_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

}  // namespace dsq::train
