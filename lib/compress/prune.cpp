#include "lib/compress/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "lib/core/error.h"

namespace dsq::compress {

std::string_view importance_name(Importance i) {
  return i == Importance::kMagnitude ? "magnitude" : "activation";
}
std::string_view head_mode_name(HeadMode m) {
  return m == HeadMode::kKvGroups ? "kv-groups" : "per-group";
}
Importance parse_importance(std::string_view s) {
  if (s == "magnitude") return Importance::kMagnitude;
  if (s == "activation") return Importance::kActivation;
  throw UsageError("unknown importance '" + std::string(s) + "' (expected activation or magnitude)");
}
HeadMode parse_head_mode(std::string_view s) {
  if (s == "kv-groups") return HeadMode::kKvGroups;
  if (s == "per-group") return HeadMode::kPerGroup;
  throw UsageError("unknown head mode '" + std::string(s) + "' (expected kv-groups or per-group)");
}

bool PruneOptions::needs_stats() const {
  const bool widths = ffn_ratio > 0.0 || head_ratio > 0.0;
  return drop_layers > 0 || (widths && (importance == Importance::kActivation || bias_compensation));
}

void to_json(nlohmann::json& j, const LayerPruneReport& r) {
  auto dims = [](const LayerDims& d) {
    return nlohmann::json{{"n_heads", d.n_heads}, {"n_kv_heads", d.n_kv_heads}, {"d_ff", d.d_ff}};
  };
  j = {{"source_layer", r.source_layer}, {"layer", r.layer},
       {"dropped", r.layer < 0},         {"influence", r.influence},
       {"before", dims(r.before)},       {"after", dims(r.after)},
       {"removed_heads", r.removed_heads}, {"removed_kv_heads", r.removed_kv_heads},
       {"ffn_removed", r.ffn_removed},   {"bias_added", r.bias_added},
       {"params_before", r.params_before}, {"params_after", r.params_after}};
}

namespace {

using Index = std::vector<int64_t>;

// A row-major f32 matrix [rows, cols] (1-D tensors: cols = 1).
struct Mat {
  Tensor t;
  int64_t rows = 0, cols = 0;
  float at(int64_t r, int64_t c) const { return t.data<float>()[r * cols + c]; }
};

Mat load_mat(const WeightStore& ws, const std::string& name) {
  Mat m;
  m.t = ws.get_f32(name);
  m.rows = m.t.dim(0);
  m.cols = m.t.ndim() > 1 ? m.t.dim(1) : 1;
  return m;
}

// The kept rows (axis 0) or columns (axis 1) of a matrix, as a tensor of the source dtype.
Tensor select(const Mat& m, const Index& keep, int axis, DType dtype, bool one_d = false) {
  const int64_t k = static_cast<int64_t>(keep.size());
  Shape shape = one_d ? Shape{k} : axis == 0 ? Shape{k, m.cols} : Shape{m.rows, k};
  Tensor out(DType::kF32, shape);
  float* o = out.mutable_data<float>();
  const float* s = m.t.data<float>();
  if (axis == 0) {
    for (int64_t i = 0; i < k; ++i)
      std::copy_n(s + keep[static_cast<size_t>(i)] * m.cols, m.cols, o + i * m.cols);
  } else {
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t i = 0; i < k; ++i) o[r * k + i] = s[r * m.cols + keep[static_cast<size_t>(i)]];
  }
  return dtype == DType::kF32 ? out : out.to(dtype);
}

double row_sq(const Mat& m, int64_t r) {
  double s = 0.0;
  for (int64_t c = 0; c < m.cols; ++c) s += static_cast<double>(m.at(r, c)) * m.at(r, c);
  return s;
}
double col_sq(const Mat& m, int64_t c) {
  double s = 0.0;
  for (int64_t r = 0; r < m.rows; ++r) s += static_cast<double>(m.at(r, c)) * m.at(r, c);
  return s;
}
double col_abs(const Mat& m, int64_t c) {
  double s = 0.0;
  for (int64_t r = 0; r < m.rows; ++r) s += std::fabs(static_cast<double>(m.at(r, c)));
  return s;
}

// Importance of input channel j of the consuming linear w (ffn_down or attn_output).
double channel_score(const Mat& w, int64_t j, const ChannelStats* x, bool fluctuation) {
  if (fluctuation) return x->variance(j) * col_sq(w, j);  // FLAP eq. 4
  return x->l2(j) * col_abs(w, j);                       // Wanda
}

// Indices [0, n) sorted by ascending score, ties to the lower index.
Index ascending(const std::vector<double>& s) {
  Index idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    return s[static_cast<size_t>(a)] < s[static_cast<size_t>(b)];
  });
  return idx;
}

Index complement(const Index& removed, int64_t n) {
  std::vector<bool> gone(static_cast<size_t>(n), false);
  for (int64_t r : removed) gone[static_cast<size_t>(r)] = true;
  Index keep;
  for (int64_t i = 0; i < n; ++i)
    if (!gone[static_cast<size_t>(i)]) keep.push_back(i);
  return keep;
}

// Expands unit indices (heads) into the row/column indices they span.
Index expand(const Index& units, int64_t width) {
  Index out;
  for (int64_t u : units)
    for (int64_t i = 0; i < width; ++i) out.push_back(u * width + i);
  return out;
}

// Per-layer unit scores and the units each layer removes.
struct Plan {
  std::vector<std::vector<double>> ffn, heads;  // [layer][channel], [layer][unit]
  std::vector<Index> ffn_removed, units_removed;
};

// Removes round(ratio * n) lowest units per layer (uniform), or the round(ratio * total) lowest
// standardised scores across layers (global; every layer keeps at least one unit).
std::vector<Index> choose(const std::vector<std::vector<double>>& scores, double ratio,
                          bool uniform) {
  std::vector<Index> out(scores.size());
  if (ratio <= 0.0) return out;
  if (uniform) {
    for (size_t l = 0; l < scores.size(); ++l) {
      const auto n = static_cast<int64_t>(scores[l].size());
      const Index order = ascending(scores[l]);
      out[l].assign(order.begin(), order.begin() + std::llround(ratio * static_cast<double>(n)));
    }
  } else {
    std::vector<double> z;
    std::vector<std::pair<size_t, int64_t>> who;
    for (size_t l = 0; l < scores.size(); ++l) {
      const auto& s = scores[l];
      const double n = static_cast<double>(s.size());
      double m = 0.0, v = 0.0;
      for (double x : s) m += x / n;
      for (double x : s) v += (x - m) * (x - m) / n;
      const double sd = v > 0.0 ? std::sqrt(v) : 1.0;
      for (size_t i = 0; i < s.size(); ++i) {
        z.push_back((s[i] - m) / sd);
        who.emplace_back(l, static_cast<int64_t>(i));
      }
    }
    const int64_t k = std::llround(ratio * static_cast<double>(z.size()));
    int64_t taken = 0;
    for (int64_t g : ascending(z)) {
      if (taken == k) break;
      auto [l, i] = who[static_cast<size_t>(g)];
      if (out[l].size() + 1 >= scores[l].size()) continue;  // keep one unit per layer
      out[l].push_back(i);
      ++taken;
    }
  }
  for (auto& r : out) std::sort(r.begin(), r.end());
  return out;
}

void check_inputs(const WeightStore& src, const PruneOptions& o, const PruneStats* stats) {
  DSQ_ASSERT(src.has_config, "prune_weights without a config");
  const ModelConfig& c = src.config;
  if (o.ffn_ratio < 0.0 || o.ffn_ratio >= 1.0 || o.head_ratio < 0.0 || o.head_ratio >= 1.0)
    throw UsageError("pruning ratios must be in [0, 1)");
  if (o.drop_layers < 0 || o.drop_layers >= c.n_layers)
    throw UsageError(strprintf("--drop-layers must be in [0, %lld)", static_cast<long long>(c.n_layers)));
  if (!o.uniform && o.head_mode == HeadMode::kPerGroup && o.head_ratio > 0.0)
    throw UsageError("per-group head pruning removes the same count in every layer: use uniform widths");
  if (o.needs_stats()) {
    if (!stats || static_cast<int64_t>(stats->cos_rows.size()) != c.n_layers)
      throw UsageError("this pruning needs calibration statistics (--calib)");
  }
  for (const auto& n : src.names())
    if (is_block_linear(n) && !dtype_is_float(src.entry(n).dtype))
      throw UsageError("'" + src.entry(n).source + "': tensor '" + n + "' is " +
                       std::string(dtype_name(src.entry(n).dtype)) +
                       ": prune the float model, then quantize");
}

std::string tname(int64_t l, const char* s) { return "blk." + std::to_string(l) + "." + s; }

}  // namespace

PruneResult prune_weights(const WeightStore& src, const PruneOptions& o, const PruneStats* stats) {
  check_inputs(src, o, stats);
  const ModelConfig& c = src.config;
  const int64_t L = c.n_layers, hd = c.head_dim;
  const bool act = o.importance == Importance::kActivation, fluct = o.bias_compensation;

  // 1. Scores per layer from the unpruned weights (and statistics).
  Plan plan;
  plan.ffn.resize(static_cast<size_t>(L));
  plan.heads.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const LayerDims d = c.layer(l);
    const auto li = static_cast<size_t>(l);
    if (o.ffn_ratio > 0.0 && d.d_ff > 0) {
      const Mat down = load_mat(src, tname(l, "ffn_down.weight"));
      Mat gate, up;
      if (!act) gate = load_mat(src, tname(l, "ffn_gate.weight")), up = load_mat(src, tname(l, "ffn_up.weight"));
      for (int64_t ch = 0; ch < d.d_ff; ++ch)
        plan.ffn[li].push_back(act ? channel_score(down, ch, &stats->ffn_out[li], fluct)
                                   : row_sq(gate, ch) + row_sq(up, ch) + col_sq(down, ch));
    }
    if (o.head_ratio > 0.0 && d.n_heads > 0) {
      const Mat wo = load_mat(src, tname(l, "attn_output.weight"));
      Mat wq;
      if (!act) wq = load_mat(src, tname(l, "attn_q.weight"));
      std::vector<double> head(static_cast<size_t>(d.n_heads), 0.0);
      for (int64_t h = 0; h < d.n_heads; ++h)
        for (int64_t j = h * hd; j < (h + 1) * hd; ++j)
          head[static_cast<size_t>(h)] += act ? channel_score(wo, j, &stats->attn_out[li], fluct)
                                              : row_sq(wq, j) + col_sq(wo, j);
      const int64_t group = d.n_heads / d.n_kv_heads;
      if (o.head_mode == HeadMode::kKvGroups) {
        Mat wk, wv;
        if (!act) wk = load_mat(src, tname(l, "attn_k.weight")), wv = load_mat(src, tname(l, "attn_v.weight"));
        for (int64_t g = 0; g < d.n_kv_heads; ++g) {
          double s = 0.0;
          for (int64_t h = g * group; h < (g + 1) * group; ++h) s += head[static_cast<size_t>(h)];
          if (!act)
            for (int64_t r = g * hd; r < (g + 1) * hd; ++r) s += row_sq(wk, r) + row_sq(wv, r);
          plan.heads[li].push_back(s);
        }
      } else {
        plan.heads[li] = head;
      }
    }
  }
  plan.ffn_removed = choose(plan.ffn, o.ffn_ratio, o.uniform);
  if (o.head_mode == HeadMode::kKvGroups) {
    plan.units_removed = choose(plan.heads, o.head_ratio, o.uniform);
  } else {  // the same number of q heads from every kv group, lowest scores within each group
    plan.units_removed.resize(static_cast<size_t>(L));
    for (int64_t l = 0; l < L && o.head_ratio > 0.0; ++l) {
      const LayerDims d = c.layer(l);
      if (d.n_heads == 0) continue;
      const int64_t group = d.n_heads / d.n_kv_heads;
      const int64_t r = std::llround(o.head_ratio * static_cast<double>(group));
      for (int64_t g = 0; g < d.n_kv_heads; ++g) {
        const auto& all = plan.heads[static_cast<size_t>(l)];
        std::vector<double> s(all.begin() + g * group, all.begin() + (g + 1) * group);
        const Index order = ascending(s);
        for (int64_t i = 0; i < r; ++i)
          plan.units_removed[static_cast<size_t>(l)].push_back(g * group + order[static_cast<size_t>(i)]);
      }
      std::sort(plan.units_removed[static_cast<size_t>(l)].begin(),
                plan.units_removed[static_cast<size_t>(l)].end());
    }
  }

  // 2. Blocks to drop: lowest influence first, ties to the lower index.
  std::vector<bool> dropped(static_cast<size_t>(L), false);
  if (o.drop_layers > 0) {
    std::vector<double> infl;
    for (int64_t l = 0; l < L; ++l) infl.push_back(stats->influence(l));
    const Index order = ascending(infl);
    for (int64_t i = 0; i < o.drop_layers; ++i) dropped[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  }

  // 3. Build the output store.
  PruneResult res;
  WeightStore& dst = res.store;
  dst.metadata = src.metadata;
  dst.sources = src.sources;
  ModelConfig nc = c;
  nc.layers.clear();
  auto copy_entry = [&](const std::string& from, const std::string& to) {
    WeightStore::Entry e = src.entry(from);
    e.name = to;
    dst.add(std::move(e));
  };
  // Adds tensor `to` replacing source `from`, keeping the source's dtype and attrs.
  auto put = [&](const std::string& from, const std::string& to, Tensor t) {
    const WeightStore::Entry& e = src.entry(from);
    dst.add_tensor(to, std::move(t), e.source);
    dst.entry(to).attrs = e.attrs;
  };
  auto numel = [](const WeightStore& ws, const std::string& prefix) {
    int64_t n = 0;
    for (const auto& name : ws.names())
      if (name.rfind(prefix, 0) == 0) n += shape_numel(ws.entry(name).shape, name);
    return n;
  };

  for (const auto& name : src.names()) {
    int64_t l;
    if (!parse_block_name(name, &l, nullptr)) copy_entry(name, name);
  }
  int64_t out_l = 0;
  for (int64_t l = 0; l < L; ++l) {
    const auto li = static_cast<size_t>(l);
    const LayerDims d = c.layer(l);
    LayerPruneReport rep;
    rep.source_layer = l;
    rep.influence = stats && !stats->empty() ? stats->influence(l) : 0.0;
    rep.before = d;
    const std::string sp = "blk." + std::to_string(l) + ".";
    rep.params_before = numel(src, sp);
    if (dropped[li]) {
      res.layers.push_back(rep);
      continue;
    }
    const std::string dp = "blk." + std::to_string(out_l) + ".";
    LayerDims nd = d;
    std::set<std::string> done;
    auto put_layer = [&](const char* s, Tensor t) {
      put(sp + s, dp + s, std::move(t));
      done.insert(sp + s);
    };
    auto dtype_of = [&](const char* s) { return src.entry(sp + s).dtype; };
    // Adds b + W[:, removed] * mean(X[removed]) as the output bias `s` of the consuming linear.
    auto compensate = [&](const char* bias, const Mat& w, const Index& removed_cols,
                          const ChannelStats& x) {
      Tensor b(DType::kF32, {w.rows});
      float* bp = b.mutable_data<float>();
      if (src.has(sp + bias)) {
        const Tensor old = src.get_f32(sp + bias);
        std::copy_n(old.data<float>(), w.rows, bp);
        done.insert(sp + bias);
      }
      for (int64_t r = 0; r < w.rows; ++r) {
        double s = 0.0;
        for (int64_t j : removed_cols) s += static_cast<double>(w.at(r, j)) * x.mean(j);
        bp[r] += static_cast<float>(s);
      }
      dst.add_tensor(dp + bias, std::move(b), "<pruned>");
      rep.bias_added = true;
    };

    if (const Index& rm = plan.ffn_removed[li]; !rm.empty()) {
      const Index keep = complement(rm, d.d_ff);
      const Mat gate = load_mat(src, sp + "ffn_gate.weight"), up = load_mat(src, sp + "ffn_up.weight"),
                down = load_mat(src, sp + "ffn_down.weight");
      put_layer("ffn_gate.weight", select(gate, keep, 0, dtype_of("ffn_gate.weight")));
      put_layer("ffn_up.weight", select(up, keep, 0, dtype_of("ffn_up.weight")));
      put_layer("ffn_down.weight", select(down, keep, 1, dtype_of("ffn_down.weight")));
      if (o.bias_compensation) compensate("ffn_down.bias", down, rm, stats->ffn_out[li]);
      nd.d_ff = static_cast<int64_t>(keep.size());
      rep.ffn_removed = static_cast<int64_t>(rm.size());
    }
    if (const Index& units = plan.units_removed[li]; !units.empty()) {
      const int64_t group = d.n_heads / d.n_kv_heads;
      Index heads = units, kv;
      if (o.head_mode == HeadMode::kKvGroups) {
        kv = units;
        heads = expand(units, group);
      }
      const Index q_keep = complement(expand(heads, hd), d.n_heads * hd);
      const Mat wq = load_mat(src, sp + "attn_q.weight"), wo = load_mat(src, sp + "attn_output.weight");
      put_layer("attn_q.weight", select(wq, q_keep, 0, dtype_of("attn_q.weight")));
      put_layer("attn_output.weight", select(wo, q_keep, 1, dtype_of("attn_output.weight")));
      if (src.has(sp + "attn_q.bias"))
        put_layer("attn_q.bias", select(load_mat(src, sp + "attn_q.bias"), q_keep, 0, dtype_of("attn_q.bias"), true));
      if (!kv.empty()) {
        const Index kv_keep = complement(expand(kv, hd), d.n_kv_heads * hd);
        for (const char* s : {"attn_k.weight", "attn_v.weight", "attn_k.bias", "attn_v.bias"})
          if (src.has(sp + s))
            put_layer(s, select(load_mat(src, sp + s), kv_keep, 0, dtype_of(s),
                                src.entry(sp + s).shape.size() == 1));
      }
      if (o.bias_compensation) compensate("attn_output.bias", wo, expand(heads, hd), stats->attn_out[li]);
      nd.n_heads = d.n_heads - static_cast<int64_t>(heads.size());
      nd.n_kv_heads = d.n_kv_heads - static_cast<int64_t>(kv.size());
      rep.removed_heads = heads;
      rep.removed_kv_heads = kv;
    }
    for (const auto& name : src.names())  // everything else in the layer: renamed as is
      if (name.rfind(sp, 0) == 0 && !done.count(name)) copy_entry(name, dp + name.substr(sp.size()));
    rep.layer = out_l;
    rep.after = nd;
    rep.params_after = numel(dst, dp);
    nc.layers.push_back(nd);
    res.layers.push_back(rep);
    ++out_l;
  }
  nc.n_layers = out_l;
  // Uniform positive widths are stored as the global fields; otherwise per layer, with the global
  // fields set to the widest layer (what anything sizing buffers from them needs).
  const bool same = std::all_of(nc.layers.begin(), nc.layers.end(),
                                [&](const LayerDims& x) { return x == nc.layers.front(); });
  const LayerDims f = nc.layers.front();
  nc.n_heads = nc.n_kv_heads = nc.d_ff = 0;
  for (const auto& x : nc.layers) {
    nc.n_heads = std::max(nc.n_heads, x.n_heads);
    nc.n_kv_heads = std::max(nc.n_kv_heads, x.n_kv_heads);
    nc.d_ff = std::max(nc.d_ff, x.d_ff);
  }
  if (same && f.n_heads > 0 && f.n_kv_heads > 0 && f.d_ff > 0) nc.layers.clear();
  dst.config = nc;
  dst.has_config = true;
  validate_against_config(dst, "pruned model");
  res.params_before = src.parameter_count();
  res.params_after = dst.parameter_count();
  return res;
}

}  // namespace dsq::compress
