#include "lib/compress/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <map>
#include <set>
#include <utility>

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

// Squared entries of index i along `axis` (0: a row, 1: a column).
double slice_sq(const Mat& m, int axis, int64_t i) { return axis == 0 ? row_sq(m, i) : col_sq(m, i); }

// Importance of input channel j of the consuming linear w (arch.consumer_of: Llama's ffn_down or
// attn_output).
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
  require_structured_support(src.config, "prune", "model");
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
    if (is_block_linear(c, n) && !dtype_is_float(src.entry(n).dtype))
      throw UsageError("'" + src.entry(n).source + "': tensor '" + n + "' is " +
                       std::string(dtype_name(src.entry(n).dtype)) +
                       ": prune the float model, then quantize");
}

// The linear rows of a layer with an axis of width `d`, with that axis (magnitude importance sums
// their squared slices).
std::vector<std::pair<const ArchTensor*, int>> axes_of(const ArchInfo& a, Dim d) {
  std::vector<std::pair<const ArchTensor*, int>> out;
  for (const ArchTensor* t : a.block_rows(TensorRole::kLinear))
    for (int ax = 0; ax < static_cast<int>(t->shape.size()); ++ax)
      if (t->shape[static_cast<size_t>(ax)] == d) out.emplace_back(t, ax);
  return out;
}

}  // namespace

void require_structured_support(const ModelConfig& c, std::string_view command,
                                const std::string& where) {
  const ArchInfo& a = arch_of(c);
  if (a.attn == AttnKind::kGqa && a.ffn == FfnKind::kDense) return;
  throw ConfigError(where + ": dsq " + std::string(command) + " supports llama, qwen2 and qwen3; " +
                    c.arch + " (latent attention, experts) is not supported yet");
}

PruneResult prune_weights(const WeightStore& src, const PruneOptions& o, const PruneStats* stats) {
  check_inputs(src, o, stats);
  const ModelConfig& c = src.config;
  const ArchInfo& arch = arch_of(c);
  const int64_t L = c.n_layers, hd = c.head_dim;
  const bool act = o.importance == Importance::kActivation, fluct = o.bias_compensation;
  // The linears reading the prunable channels (Llama: ffn_down for FFN channels, attn_output for
  // the heads' outputs): activation importance and bias compensation are defined on them.
  const ArchTensor* ffn_consumer = arch.consumer_of(Dim::kFfn);
  const ArchTensor* head_consumer = arch.consumer_of(Dim::kQ);
  if ((o.ffn_ratio > 0.0 && !ffn_consumer) || (o.head_ratio > 0.0 && !head_consumer))
    throw UsageError("the " + c.arch + " architecture has no prunable FFN channels or heads");
  auto name_of = [](int64_t l, const ArchTensor* t) { return expand_name(t->canonical, l); };

  // 1. Scores per layer from the unpruned weights (and statistics).
  Plan plan;
  plan.ffn.resize(static_cast<size_t>(L));
  plan.heads.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const LayerDims d = c.layer(l);
    const auto li = static_cast<size_t>(l);
    if (o.ffn_ratio > 0.0 && d.d_ff > 0) {
      std::vector<double>& sc = plan.ffn[li];
      sc.assign(static_cast<size_t>(d.d_ff), 0.0);
      if (act) {
        const Mat down = load_mat(src, name_of(l, ffn_consumer));
        for (int64_t ch = 0; ch < d.d_ff; ++ch)
          sc[static_cast<size_t>(ch)] = channel_score(down, ch, &stats->ffn_out[li], fluct);
      } else {  // every linear slice indexed by the channel (Llama: gate row + up row + down column)
        for (const auto& [t, ax] : axes_of(arch, Dim::kFfn)) {
          const Mat m = load_mat(src, name_of(l, t));
          for (int64_t ch = 0; ch < d.d_ff; ++ch) sc[static_cast<size_t>(ch)] += slice_sq(m, ax, ch);
        }
      }
    }
    if (o.head_ratio > 0.0 && d.n_heads > 0) {
      std::vector<double> head(static_cast<size_t>(d.n_heads), 0.0);
      if (act) {
        const Mat wo = load_mat(src, name_of(l, head_consumer));
        for (int64_t h = 0; h < d.n_heads; ++h)
          for (int64_t j = h * hd; j < (h + 1) * hd; ++j)
            head[static_cast<size_t>(h)] += channel_score(wo, j, &stats->attn_out[li], fluct);
      } else {  // Llama: q rows + o columns of the head
        for (const auto& [t, ax] : axes_of(arch, Dim::kQ)) {
          const Mat m = load_mat(src, name_of(l, t));
          for (int64_t h = 0; h < d.n_heads; ++h)
            for (int64_t j = h * hd; j < (h + 1) * hd; ++j)
              head[static_cast<size_t>(h)] += slice_sq(m, ax, j);
        }
      }
      const int64_t group = d.n_heads / d.n_kv_heads;
      if (o.head_mode == HeadMode::kKvGroups) {
        std::vector<double> kv(static_cast<size_t>(d.n_kv_heads), 0.0);
        for (int64_t g = 0; g < d.n_kv_heads; ++g)
          for (int64_t h = g * group; h < (g + 1) * group; ++h)
            kv[static_cast<size_t>(g)] += head[static_cast<size_t>(h)];
        if (!act)  // Llama: + the k and v rows of the kv head
          for (const auto& [t, ax] : axes_of(arch, Dim::kKv)) {
            const Mat m = load_mat(src, name_of(l, t));
            for (int64_t g = 0; g < d.n_kv_heads; ++g)
              for (int64_t r = g * hd; r < (g + 1) * hd; ++r)
                kv[static_cast<size_t>(g)] += slice_sq(m, ax, r);
          }
        plan.heads[li] = kv;
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

  // 3. Build the output store: every tensor of a kept layer, in source order, selected along its
  // prunable axes (the Dims of its table row), renamed to the layer's new index.
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
    // Kept indices per prunable Dim (absent: the axis is untouched).
    std::map<Dim, Index> keep;
    // Removed input channels of a consumer whose bias absorbs their mean (bias compensation).
    std::map<const ArchTensor*, std::pair<Index, const ChannelStats*>> compensate;
    if (const Index& rm = plan.ffn_removed[li]; !rm.empty()) {
      keep[Dim::kFfn] = complement(rm, d.d_ff);
      if (o.bias_compensation) compensate[ffn_consumer] = {rm, &stats->ffn_out[li]};
      nd.d_ff = d.d_ff - static_cast<int64_t>(rm.size());
      rep.ffn_removed = static_cast<int64_t>(rm.size());
    }
    if (const Index& units = plan.units_removed[li]; !units.empty()) {
      const int64_t group = d.n_heads / d.n_kv_heads;
      Index heads = units, kv;
      if (o.head_mode == HeadMode::kKvGroups) {
        kv = units;
        heads = expand(units, group);
      }
      keep[Dim::kQ] = complement(expand(heads, hd), d.n_heads * hd);
      if (!kv.empty()) keep[Dim::kKv] = complement(expand(kv, hd), d.n_kv_heads * hd);
      if (o.bias_compensation) compensate[head_consumer] = {expand(heads, hd), &stats->attn_out[li]};
      nd.n_heads = d.n_heads - static_cast<int64_t>(heads.size());
      nd.n_kv_heads = d.n_kv_heads - static_cast<int64_t>(kv.size());
      rep.removed_heads = heads;
      rep.removed_kv_heads = kv;
    }
    // b + W[:, removed] * mean(X[removed]) as the output bias of consumer w (FLAP eq. 6).
    auto compensated_bias = [&](const std::string& bname, const Mat& w, const Index& removed,
                                const ChannelStats& x) {
      Tensor b(DType::kF32, {w.rows});
      float* bp = b.mutable_data<float>();
      if (src.has(sp + bname)) std::copy_n(src.get_f32(sp + bname).data<float>(), w.rows, bp);
      for (int64_t r = 0; r < w.rows; ++r) {
        double s = 0.0;
        for (int64_t j : removed) s += static_cast<double>(w.at(r, j)) * x.mean(j);
        bp[r] += static_cast<float>(s);
      }
      rep.bias_added = true;
      return b;
    };
    std::set<std::string> written;  // destination names
    for (const auto& name : src.names()) {
      if (name.rfind(sp, 0) != 0 || written.count(dp + name.substr(sp.size()))) continue;
      const std::string rest = name.substr(sp.size()), to = dp + rest;
      int64_t row_layer = 0;
      const ArchTensor* row = find_tensor_row(c, name, &row_layer);
      DSQ_ASSERT(row != nullptr, "validated store holds unknown tensor %s", name.c_str());
      bool changed = false;
      for (const Dim dim : row->shape) changed |= keep.count(dim) != 0;
      const auto comp = compensate.find(row);
      if (!changed && comp == compensate.end()) {
        copy_entry(name, to);
        written.insert(to);
        continue;
      }
      const WeightStore::Entry& e = src.entry(name);
      Mat m = load_mat(src, name);
      Tensor t = m.t;
      for (size_t ax = 0; ax < row->shape.size(); ++ax)
        if (const auto k = keep.find(row->shape[ax]); k != keep.end()) {
          t = select(m, k->second, static_cast<int>(ax), DType::kF32, row->shape.size() == 1);
          m.t = t;
          m.rows = t.dim(0);
          m.cols = t.ndim() > 1 ? t.dim(1) : 1;
        }
      dst.add_tensor(to, e.dtype == DType::kF32 ? t : t.to(e.dtype), e.source);
      dst.entry(to).attrs = e.attrs;
      written.insert(to);
      if (comp != compensate.end()) {  // the consumer's bias follows its weight
        const std::string bname = std::string(row->short_name()) + ".bias";
        const Mat w = load_mat(src, name);
        dst.add_tensor(dp + bname, compensated_bias(bname, w, comp->second.first, *comp->second.second),
                       "<pruned>");
        written.insert(dp + bname);
      }
    }
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
