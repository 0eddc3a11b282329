// Rotary position embeddings: the frequencies (plain, or YaRN as transformers computes them), a
// cos/sin table for a run of positions, and the rotation of the rope dims of every head in place,
// in either pairing layout.
//
//   plain   : inv_freq[i] = theta^(-2i/d), d = ModelConfig::rope_dims(), i < d/2
//   yarn    : inv_freq[i] = interp[i] * (1 - ext[i]) + extrap[i] * ext[i], extrap = theta^(-2i/d),
//             interp = extrap / factor, ext = 1 - clamp((i - low) / (high - low), 0, 1) with
//             low/high the correction dims of beta_fast/beta_slow (floored/ceiled when
//             truncate); cos and sin are multiplied by the attention factor (given, or
//             mscale(factor, mscale) / mscale(factor, mscale_all_dim), or mscale(factor)),
//             mscale(s, m) = s <= 1 ? 1 : 0.1 m ln(s) + 1 (transformers' _compute_yarn_parameters)
//   pairing : rotate_half rotates (x[i], x[i + d/2]); interleaved (DeepSeek) rotates
//             (x[2i], x[2i+1]) and writes the pair back in place. Interleaved-in-place gives the
//             same q.k as transformers' de-interleaving form (both q and k get it), so caches and
//             dot products agree.
#pragma once

#include <cstdint>
#include <vector>

#include "lib/core/arch.h"

namespace dsq::model {

// inv_freq[rope_dims/2] of config c (f64).
std::vector<double> rope_inv_freq(const ModelConfig& c);
// The factor YaRN multiplies cos and sin by (1 without scaling).
double rope_attention_factor(const ModelConfig& c);
// mscale(s, m) above.
double yarn_mscale(double s, double m);

// cos/sin of positions [pos0, pos0 + T) for every frequency: [T, half] each.
struct RopeTable {
  int64_t T = 0, half = 0;
  std::vector<float> cos, sin;
};
RopeTable make_rope_table(const ModelConfig& c, int64_t pos0, int64_t T);

// Rotates, in rows r of x (row stride ld; rows are B sequences of T tokens, row r at table
// position r % T), the 2*t.half dims starting at `offset` of each of n_heads heads spaced
// head_stride apart.
void apply_rope(float* x, int64_t rows, int64_t T, int64_t ld, int64_t n_heads,
                int64_t head_stride, int64_t offset, const RopeTable& t, bool interleave);

}  // namespace dsq::model
