// The Mixture-of-Experts stage of the calibrated pipeline (pipeline_impl.h, docs/MOE.md): a MoE
// layer's FFN after its attention groups were quantized.
//
//   1. The FFN input: the calibration hidden states after the quantized attention, and
//      xn = ffn_norm(h); the router routes xn, so it sees the quantized attention.
//   2. AWQ rows: one scale for ffn_norm, which feeds the shared expert, every routed expert and
//      the router. Its search scores every alpha on the shared expert (all tokens) and on each
//      routed expert under that expert's own statistics, streaming the experts once; the scale is
//      folded into ffn_norm, the router's columns and the shared expert, and into each routed
//      expert when it is loaded.
//   3. Units in order: the shared expert, then each routed expert (streamed from the source, one
//      at a time). For a unit: the statistics of its tokens (the shared expert: every row; a routed
//      expert: exactly the rows routed to it, topped up to --expert-min-tokens with unrouted rows
//      spaced evenly over the calibration set, or every row with --expert-calib-all), [AWQ: the
//      down projection's scale, folded into up's rows], gate and up solved, the down projection's
//      statistics from the quantized gate/up on the same tokens (routed rows first), down
//      solved, and the unit's output on its routed rows, weighted, accumulated in the engine's
//      order.
//   4. The block's output (attention + shared + routed) becomes the next block's input.
// Under MPI (docs/MPI.md) the units are split among the ranks, cost-balanced: each rank does
// steps 2 and 3 for its own units, then every unit's results go out from its owner in unit
// order and every rank accumulates every unit's output, recomputing the down projection's
// inputs in the same row chunks, so the block's output is the same bytes on every rank and for
// any N.
// Memory: the FFN input and the output accumulator ([rows, d_model] each), one expert's weights and
// statistics, and its intermediate activations: independent of the number of experts.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <optional>

#include "calibration/pipeline_impl.h"
#include "lib/core/dist.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/model/fold.h"
#include "lib/model/moe.h"

namespace dsq::calibration::detail {
namespace {

using Buf = std::vector<float>;

// The MoE FFN's groups, found by their members in the architecture table.
struct MoeGroups {
  const LinearGroup* sh_in;
  const LinearGroup* sh_out;
  const LinearGroup* ex_in;
  const LinearGroup* ex_out;
};

MoeGroups moe_groups(const ArchInfo& a) {
  MoeGroups g{a.group_of(names::kFfnGateShexp), a.group_of(names::kFfnDownShexp),
              a.group_of(expert_name(names::kFfnGateExps, 0)),
              a.group_of(expert_name(names::kFfnDownExps, 0))};
  DSQ_ASSERT(g.sh_in && g.sh_out && g.ex_in && g.ex_out, "%s: MoE groups missing", a.name.data());
  return g;
}

// The rows whose statistics an expert gets: the routed ones, topped up to min_tokens with
// unrouted rows at evenly spaced positions (each probing forward to the next unrouted row), or
// every row; ascending.
std::vector<int64_t> statistics_rows(const int64_t* routed, int64_t n_routed, int64_t rows,
                                     const ExpertCalib& ec) {
  std::vector<int64_t> out;
  if (ec.all_tokens) {
    out.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) out[static_cast<size_t>(r)] = r;
    return out;
  }
  out.assign(routed, routed + n_routed);
  const int64_t need = std::min(ec.min_tokens, rows) - n_routed;
  if (need <= 0) return out;
  std::vector<char> taken(static_cast<size_t>(rows), 0);
  for (int64_t i = 0; i < n_routed; ++i) taken[static_cast<size_t>(routed[i])] = 1;
  for (int64_t k = 0; k < need; ++k) {
    int64_t p = static_cast<int64_t>((static_cast<double>(k) + 0.5) * static_cast<double>(rows) /
                                     static_cast<double>(need));
    while (taken[static_cast<size_t>(p % rows)]) ++p;
    taken[static_cast<size_t>(p % rows)] = 1;
    out.push_back(p % rows);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void gather(const float* x, int64_t d, const int64_t* rows, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (n * d > (1 << 18))
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * d, x + rows[i] * d, static_cast<size_t>(d) * 4);
}

// act = silu(gate(x)) * up(x) for n rows of x.
void swiglu_act(const model::Linear& gate, const model::Linear& up, const float* x, int64_t n,
                float* act) {
  const int64_t ff = gate.n_out();
  Buf u(static_cast<size_t>(n * ff));
  gate.forward(x, n, act);
  up.forward(x, n, u.data());
  const int64_t total = n * ff;
#pragma omp parallel for schedule(static) if (total > (1 << 18))
  for (int64_t i = 0; i < total; ++i) {
    const float g = act[i];
    act[i] = g / (1.0f + std::exp(-g)) * u[static_cast<size_t>(i)];
  }
}

// Divides the rows of a linear (its output channels) by s.
void scale_output_rows(model::Linear& l, std::span<const float> s) {
  Tensor w = l.weight().clone();
  float* p = w.mutable_data<float>();
  for (int64_t r = 0; r < l.n_out(); ++r)
    for (int64_t j = 0; j < l.n_in(); ++j) p[r * l.n_in() + j] /= s[static_cast<size_t>(r)];
  l = model::Linear::from_tensors(l.name(), std::move(w), l.bias());
}

std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// The rows of one unit (e < 0: the shared expert) in a routing of `rows` rows.
struct UnitRows {
  std::vector<int64_t> routed;  // ascending
  std::vector<float> weight;    // the routing weight of each routed row
  std::vector<int64_t> srows;   // its statistics rows, ascending (routed and topped-up)
  std::vector<int64_t> extra;   // srows that are not routed, ascending
};

UnitRows unit_rows(const model::Routing& route, int64_t e, int64_t rows, const ExpertCalib& ec) {
  UnitRows u;
  if (e < 0) {
    u.routed.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) u.routed[static_cast<size_t>(r)] = r;
    u.weight.assign(static_cast<size_t>(rows), 1.0f);
    u.srows = u.routed;
    return u;
  }
  const auto off = static_cast<size_t>(route.offsets[static_cast<size_t>(e)]);
  u.routed.assign(route.token.begin() + off, route.token.begin() + off + route.count(e));
  u.weight.assign(route.weight.begin() + off, route.weight.begin() + off + route.count(e));
  u.srows = statistics_rows(u.routed.data(), static_cast<int64_t>(u.routed.size()), rows, ec);
  std::set_difference(u.srows.begin(), u.srows.end(), u.routed.begin(), u.routed.end(),
                      std::back_inserter(u.extra));
  return u;
}

// The number of statistics rows of unit e (statistics_rows' size), without building them.
int64_t n_statistics_rows(const model::Routing& route, int64_t e, int64_t rows, const ExpertCalib& ec) {
  if (e < 0 || ec.all_tokens) return rows;
  return std::max(route.count(e), std::min(ec.min_tokens, rows));
}

// MPI (docs/MPI.md): the rank that solves each unit (index e + 1), cost-balanced by
// dist::assign over the unit's work: the statistics and forward passes over its statistics rows
// (n) and GPTQ's factorizations and updates of gate/up (d inputs) and down (ff inputs). Every rank
// computes the same routing, so every rank finds the same owners.
std::vector<int> unit_owners(const model::Routing* route, int64_t E, int64_t d, int64_t ff_shared,
                             int64_t ff, int64_t rows, const ExpertCalib& ec) {
  std::vector<double> cost;
  for (int64_t e = -1; e < E; ++e) {
    const auto n = static_cast<double>(route ? n_statistics_rows(*route, e, rows, ec) : 0);
    const auto D = static_cast<double>(d), F = static_cast<double>(e < 0 ? ff_shared : ff);
    cost.push_back(n * (D * D + F * F + 6.0 * D * F) + 2.0 * F * D * D + D * F * F +
                   (D * D * D + F * F * F) / 3.0);
  }
  return dist::assign(cost, dist::size());
}

// Broadcasts a vector of doubles whose length only `owner` knows.
void share_doubles(std::vector<double>* v, int owner) {
  std::string s;
  if (dist::rank() == owner) s.assign(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(double));
  dist::bcast(s, owner);
  if (dist::rank() == owner) return;
  v->resize(s.size() / sizeof(double));
  std::memcpy(v->data(), s.data(), s.size());
}

}  // namespace

void CalibratedQuantizer::moe_stage(model::BlockWeights& bw, int64_t layer, BlockResult* res,
                                    h5::Writer* stats, std::vector<std::string>* changed) {
  namespace n = names;
  const MoeGroups G = moe_groups(arch_);
  const int64_t d = cfg_.d_model, E = cfg_.moe.n_experts, T = calib_.seq_len;
  const bool data = !load_stats_;
  const int64_t rows = data ? calib_.n_samples * T : 0;
  auto sel = [&](const std::string& s) { return selected_in_config(layer, s); };
  auto names_of = [](int64_t e) {  // gate, up, down of a unit (e < 0: the shared expert)
    if (e < 0)
      return std::array<std::string, 3>{std::string(n::kFfnGateShexp), std::string(n::kFfnUpShexp),
                                        std::string(n::kFfnDownShexp)};
    return std::array<std::string, 3>{expert_name(n::kFfnGateExps, e), expert_name(n::kFfnUpExps, e),
                                      expert_name(n::kFfnDownExps, e)};
  };
  auto group_name = [](const LinearGroup& g, int64_t e) {
    return e < 0 ? std::string(g.name) : expert_name(g.name, e);
  };
  // Under MPI the units are split among the ranks (unit_owners), unless a statistics file is
  // written: rank 0 writes it and would need every unit's Hessians, so then every rank computes
  // every unit (the constructor said so).
  const bool split = dist::size() > 1 && save_stats_.empty();
  const int64_t ff_shared = bw.linear(n::kFfnGateShexp)->n_out(), ff_expert = cfg_.moe.d_expert;
  auto owners = [&](const model::Routing* route) {
    return split ? unit_owners(route, E, d, ff_shared, ff_expert, rows, expert_calib_)
                 : std::vector<int>(static_cast<size_t>(E + 1), dist::rank());
  };

  // 1. The FFN input after the quantized attention, in place: the block's input is not needed
  // again (the drift reference was taken before), and at V3's width and 128 x 512 tokens a copy
  // would be 1.9 GB.
  std::vector<float>& hm = hidden_;
  Buf xn;
  if (data) {
    const int64_t per = samples_per_chunk(T);
    for (int64_t s0 = 0; s0 < calib_.n_samples; s0 += per) {
      const int64_t nb = std::min(per, calib_.n_samples - s0);
      model::block_forward(bw, cfg_, hm.data() + s0 * T * d, nb, T, nullptr, nullptr, 0,
                           model::BlockPart::kAttn);
    }
    xn.resize(hm.size());
    model::rmsnorm(hm.data(), bw.norm(n::kFfnNorm)->data<float>(), rows, d, cfg_.rms_eps, xn.data());
  }

  // Runs fn over the rows `rs` of xn, gathered kChunkRows at a time.
  auto chunked = [&](const std::vector<int64_t>& rs, auto&& fn) {  // fn(i0, nc, x [nc, d])
    const auto total = static_cast<int64_t>(rs.size());
    Buf x(static_cast<size_t>(std::min(kChunkRows, std::max<int64_t>(total, 1)) * d));
    for (int64_t i0 = 0; i0 < total; i0 += kChunkRows) {
      const int64_t nc = std::min(kChunkRows, total - i0);
      gather(xn.data(), d, rs.data() + i0, nc, x.data());
      fn(i0, nc, x.data());
    }
  };

  // 2. AWQ: one scale for everything ffn_norm feeds.
  std::vector<float> s_in;
  const GroupScale* gs_in = nullptr;
  bool all_selected = true;
  for (int64_t e = -1; e < E; ++e) {
    const auto nm = names_of(e);
    all_selected = all_selected && sel(nm[0]) && sel(nm[1]);
  }
  if (awq() && !all_selected)
    log_debug(strprintf("block %lld: an expert linear is skipped: ffn_norm's AWQ scale is not "
                        "searched", static_cast<long long>(layer)));
  if (awq() && all_selected) {
    GroupScale gs;
    if (load_stats_) {
      const auto a = h5::read_awq_search(*load_stats_, layer, std::string(G.sh_in->name), d, {});
      if (!a)
        throw FormatError("'" + load_stats_->path() + "': no AWQ scales for '" +
                          h5::stats_object(layer, std::string(G.sh_in->name)) +
                          "' (statistics of a --method gptq run?)");
      gs.alpha = a->alpha;
      gs.scales.assign(a->scales.begin(), a->scales.end());
    } else {
      StatsAccumulator all(d);
      for (int64_t r0 = 0; r0 < rows; r0 += kChunkRows)
        all.add(xn.data() + r0 * d, std::min(kChunkRows, rows - r0));
      const h5::InputStats st = all.finish(layer, std::string(G.sh_in->name), {});
      const model::Routing route = model::moe_route(bw, cfg_, xn.data(), rows, nullptr);
      // Each unit's objective at every alpha, {norm, errs...}, searched by its owner and summed
      // in unit order (token-weighted) on every rank.
      const std::vector<int> owner = owners(&route);
      std::vector<std::vector<double>> found(static_cast<size_t>(E + 1));
      auto keep = [&](int64_t e, const quant::AwqScaleResult& r) {
        std::vector<double>& f = found[static_cast<size_t>(e + 1)];
        f.push_back(r.norm);
        f.insert(f.end(), r.errs.begin(), r.errs.end());
      };
      for (int64_t e = -1; e < E; ++e) {
        if (owner[static_cast<size_t>(e + 1)] != dist::rank()) continue;
        if (e < 0) {
          const model::Linear& g = *bw.linear(n::kFfnGateShexp);
          const model::Linear& u = *bw.linear(n::kFfnUpShexp);
          keep(e, quant::awq_search_scales({{g.weight().data<float>(), g.n_out()},
                                            {u.weight().data<float>(), u.n_out()}},
                                           d, st.hessian.data(), st.abs_mean.data(), opts_.desc,
                                           awq_opts_));
          continue;
        }
        const auto off = static_cast<size_t>(route.offsets[static_cast<size_t>(e)]);
        const std::vector<int64_t> srows =
            statistics_rows(route.token.data() + off, route.count(e), rows, expert_calib_);
        StatsAccumulator acc(d);
        chunked(srows, [&](int64_t, int64_t nc, const float* x) { acc.add(x, nc); });
        const h5::InputStats se = acc.finish(layer, "", {});
        const model::ExpertHandle ex = bw.expert(e);
        keep(e, quant::awq_search_scales({{ex->gate.weight().data<float>(), ex->gate.n_out()},
                                          {ex->up.weight().data<float>(), ex->up.n_out()}},
                                         d, se.hessian.data(), st.abs_mean.data(), opts_.desc,
                                         awq_opts_));
      }
      std::vector<double> total;
      double norm = 0.0;
      for (int64_t e = -1; e < E; ++e) {
        std::vector<double>& f = found[static_cast<size_t>(e + 1)];
        if (split) share_doubles(&f, owner[static_cast<size_t>(e + 1)]);
        const auto tokens = static_cast<double>(n_statistics_rows(route, e, rows, expert_calib_));
        if (total.empty()) total.assign(f.size() - 1, 0.0);
        for (size_t i = 0; i < total.size(); ++i) total[i] += f[i + 1] * tokens;
        norm += f[0] * tokens;
      }
      size_t best = 0;
      for (size_t i = 1; i < total.size(); ++i)
        if (total[i] < total[best]) best = i;
      gs.alpha = static_cast<double>(best) / awq_opts_.grid;
      gs.scales = quant::awq_scales(st.abs_mean.data(), d, gs.alpha);
      gs.search_rel = norm > 0 ? total[best] / norm : 0.0;
      gs.search_rel_rtn = norm > 0 ? total[0] / norm : 0.0;
    }
    const LinearGroup* both[] = {G.sh_in, G.ex_in};
    model::fold_input_scale(bw, cfg_, both, gs.scales);  // ffn_norm, router, shared expert
    s_in = gs.scales;
    scales_[std::string(G.sh_in->name)] = gs;
    gs_in = &scales_[std::string(G.sh_in->name)];
    changed->push_back(expand_name("blk.{L}.ffn_norm.weight", layer));
    changed->push_back(linear_name(layer, n::kFfnGateInp));
    if (data)
      model::rmsnorm(hm.data(), bw.norm(n::kFfnNorm)->data<float>(), rows, d, cfg_.rms_eps, xn.data());
    // The scale is written with each unit's statistics below (the group object must exist).
  }

  // 3. The units. A unit's weights in f32 as the solvers start from them (AWQ: the shared
  // ffn_norm scale folded into a routed expert's gate/up columns; the shared expert's were
  // folded above).
  auto f32_weights = [&](int64_t e) {
    const auto nm = names_of(e);
    if (e < 0) return model::ExpertWeights{*bw.linear(nm[0]), *bw.linear(nm[1]), *bw.linear(nm[2])};
    const model::ExpertHandle h = bw.expert(e);
    model::ExpertWeights w = *h;
    if (!s_in.empty()) {
      model::scale_input_columns(w.gate, s_in);
      model::scale_input_columns(w.up, s_in);
    }
    return w;
  };

  // A solved unit: its weights as the block holds them from now on, its linears' results in
  // order (gate, up, down, as selected) and, until the unit's output is accumulated, the down
  // projection's inputs on the routed rows.
  struct Solved {
    model::ExpertWeights w;
    std::vector<LinearResult> results;
    Buf act_routed;  // [n_routed, ff], routed order; empty: recomputed from the weights
  };
  // Statistics, AWQ scales and solves of unit e on this rank.
  auto solve_unit = [&](int64_t e, const UnitRows& ur) {
    const bool shared = e < 0;
    const LinearGroup& gin = shared ? *G.sh_in : *G.ex_in;
    const LinearGroup& gout = shared ? *G.sh_out : *G.ex_out;
    const auto nm = names_of(e);
    const std::string in_name = group_name(gin, e), out_name = group_name(gout, e);
    Solved u{f32_weights(e), {}, {}};
    model::ExpertWeights& w = u.w;
    const int64_t ff = w.gate.n_out();
    const int64_t n_stat = static_cast<int64_t>(ur.srows.size());
    const std::string fallback =
        shared ? "" : (expert_calib_.all_tokens ? "all-tokens"
                       : (n_stat > static_cast<int64_t>(ur.routed.size()) ? "top-up" : "none"));

    // Gate/up statistics.
    h5::InputStats st_in;
    if (load_stats_) {
      st_in = h5::read_input_stats(*load_stats_, layer, in_name, d);
    } else {
      StatsAccumulator acc(d);
      chunked(ur.srows, [&](int64_t, int64_t nc, const float* x) { acc.add(x, nc); });
      st_in = acc.finish(layer, in_name, {nm[0], nm[1]});
      if (!shared) st_in.routed_tokens = static_cast<int64_t>(ur.routed.size());
    }

    // AWQ: the down projection's scale, searched on the FP activations, folded into up's rows.
    const GroupScale* gs_out = nullptr;
    GroupScale gso;
    if (awq() && sel(nm[1]) && sel(nm[2])) {
      if (load_stats_) {
        const auto a = h5::read_awq_search(*load_stats_, layer, out_name, ff, {});
        if (!a)
          throw FormatError("'" + load_stats_->path() + "': no AWQ scales for '" +
                            h5::stats_object(layer, out_name) + "' (statistics of a --method gptq run?)");
        gso.alpha = a->alpha;
        gso.scales.assign(a->scales.begin(), a->scales.end());
      } else {
        StatsAccumulator acc(ff);
        Buf act(static_cast<size_t>(std::min(kChunkRows, std::max<int64_t>(n_stat, 1)) * ff));
        chunked(ur.srows, [&](int64_t, int64_t nc, const float* x) {
          swiglu_act(w.gate, w.up, x, nc, act.data());
          acc.add(act.data(), nc);
        });
        const h5::InputStats sa = acc.finish(layer, out_name, {});
        const quant::AwqScaleResult r = quant::awq_search_scales(
            {{w.down.weight().data<float>(), w.down.n_out()}}, ff, sa.hessian.data(),
            sa.abs_mean.data(), opts_.desc, awq_opts_);
        gso.alpha = r.alpha;
        gso.scales = r.scales;
        gso.search_rel = r.norm > 0 ? r.err / r.norm : 0.0;
        gso.search_rel_rtn = r.norm > 0 ? r.err_rtn / r.norm : 0.0;
      }
      scale_output_rows(w.up, gso.scales);
      model::scale_input_columns(w.down, gso.scales);
      gs_out = &gso;
    }

    // Gate and up.
    h5::AwqSearch awq_in;
    const std::vector<float> h32_in = to_f32(st_in.hessian);
    quant::GroupScratch scratch_in;  // gate and up share H and GPTQ's factor of it
    for (int i = 0; i < 2; ++i) {
      if (!sel(nm[static_cast<size_t>(i)])) continue;
      model::Linear& lin = i == 0 ? w.gate : w.up;
      const std::string row_short(arch_.find(nm[static_cast<size_t>(i)])->short_name());
      LinearResult r = solve_linear(layer, nm[static_cast<size_t>(i)], lin.weight(), st_in, h32_in,
                                    !contains(gin.no_clip, row_short), gs_in, in_name, &awq_in,
                                    &scratch_in);
      if (!fallback.empty()) r.extra["expert_fallback"] = fallback;
      lin = model::Linear::from_tensors(r.name, r.q, lin.bias());
      u.results.push_back(std::move(r));
    }

    // Down: statistics from the quantized gate/up, the routed rows first (their activations are
    // kept for the unit's output, in the chunks unit_output would recompute them in), then the
    // topped-up rows.
    h5::InputStats st_out;
    if (load_stats_) {
      st_out = h5::read_input_stats(*load_stats_, layer, out_name, ff);
    } else {
      StatsAccumulator acc(ff);
      u.act_routed.resize(ur.routed.size() * static_cast<size_t>(ff));
      chunked(ur.routed, [&](int64_t i0, int64_t nc, const float* x) {
        float* act = u.act_routed.data() + i0 * ff;
        swiglu_act(w.gate, w.up, x, nc, act);
        acc.add(act, nc);
      });
      Buf act(static_cast<size_t>(std::min(kChunkRows, std::max<int64_t>(static_cast<int64_t>(ur.extra.size()), 1)) * ff));
      chunked(ur.extra, [&](int64_t, int64_t nc, const float* x) {
        swiglu_act(w.gate, w.up, x, nc, act.data());
        acc.add(act.data(), nc);
      });
      st_out = acc.finish(layer, out_name, {nm[2]});
      if (!shared) st_out.routed_tokens = static_cast<int64_t>(ur.routed.size());
    }
    h5::AwqSearch awq_out;
    if (sel(nm[2])) {
      const std::vector<float> h32_out = to_f32(st_out.hessian);
      LinearResult r = solve_linear(layer, nm[2], w.down.weight(), st_out, h32_out,
                                    !contains(gout.no_clip, arch_.find(nm[2])->short_name()),
                                    gs_out, out_name, &awq_out, nullptr);
      if (!fallback.empty()) r.extra["expert_fallback"] = fallback;
      w.down = model::Linear::from_tensors(r.name, r.q, w.down.bias());
      u.results.push_back(std::move(r));
    }
    if (stats) {
      h5::write_input_stats(*stats, st_in);
      if (gs_in) {
        awq_in.alpha = gs_in->alpha;
        awq_in.scales.assign(gs_in->scales.begin(), gs_in->scales.end());
        h5::write_awq_search(*stats, layer, in_name, awq_in);
      }
      h5::write_input_stats(*stats, st_out);
      if (gs_out) {
        awq_out.alpha = gs_out->alpha;
        awq_out.scales.assign(gs_out->scales.begin(), gs_out->scales.end());
        h5::write_awq_search(*stats, layer, out_name, awq_out);
      }
    }
    return u;
  };

  // Unit e solved by rank `owner` (split): the owner sends its results and every other rank
  // builds the same weights from them (a routed expert is read from the source only when one of
  // its linears stays in float).
  auto receive_unit = [&](int64_t e, int owner, std::optional<Solved>* u) {
    const auto nm = names_of(e);
    const bool mine = owner == dist::rank();
    if (!mine) {
      u->emplace();
      if (e < 0 || !(sel(nm[0]) && sel(nm[1]) && sel(nm[2]))) (*u)->w = f32_weights(e);
    }
    size_t k = 0;
    for (int i = 0; i < 3; ++i) {
      if (!sel(nm[static_cast<size_t>(i)])) continue;
      std::optional<LinearResult> r;
      if (mine) r = std::move((*u)->results[k]);
      std::optional<h5::AwqClip> none;
      share_result(owner, &r, &none);
      model::Linear* lin[] = {&(*u)->w.gate, &(*u)->w.up, &(*u)->w.down};
      if (!mine) *lin[i] = model::Linear::from_tensors(r->name, r->q, lin[i]->bias());
      if (mine) (*u)->results[k] = std::move(*r);
      else (*u)->results.push_back(std::move(*r));
      ++k;
    }
  };

  // The unit's output on its routed rows, weighted, accumulated in the engine's order (shared,
  // then the experts ascending), in chunks of the routed rows: from the kept activations or
  // recomputed in the same chunks, so every rank adds the same values.
  Buf out(static_cast<size_t>(rows * d), 0.0f);
  auto unit_output = [&](const UnitRows& ur, const Solved& u) {
    const int64_t nr = static_cast<int64_t>(ur.routed.size());
    if (nr == 0) return;
    const int64_t ff = u.w.gate.n_out();
    const bool kept = !u.act_routed.empty();
    Buf x(kept ? 0 : static_cast<size_t>(std::min(kChunkRows, nr) * d));
    Buf act(kept ? 0 : static_cast<size_t>(std::min(kChunkRows, nr) * ff));
    Buf y(static_cast<size_t>(std::min(kChunkRows, nr) * d));
    for (int64_t i0 = 0; i0 < nr; i0 += kChunkRows) {
      const int64_t nc = std::min(kChunkRows, nr - i0);
      const float* a = kept ? u.act_routed.data() + i0 * ff : act.data();
      if (!kept) {
        gather(xn.data(), d, ur.routed.data() + i0, nc, x.data());
        swiglu_act(u.w.gate, u.w.up, x.data(), nc, act.data());
      }
      u.w.down.forward(a, nc, y.data());
#pragma omp parallel for schedule(static) if (nc * d > (1 << 18))
      for (int64_t i = 0; i < nc; ++i) {
        float* o = out.data() + ur.routed[static_cast<size_t>(i0 + i)] * d;
        const float wi = ur.weight[static_cast<size_t>(i0 + i)];
        for (int64_t j = 0; j < d; ++j) o[j] += wi * y[static_cast<size_t>(i * d + j)];
      }
    }
  };

  // The unit's output, its results into the report, and its weights into the block (the
  // quantized unit stays resident, small, for the rest of the block).
  auto finish_unit = [&](int64_t e, const UnitRows& ur, std::optional<Solved>* u) {
    unit_output(ur, **u);
    for (LinearResult& r : (*u)->results) res->linears.push_back(std::move(r));
    if (e < 0) {
      const auto nm = names_of(e);
      *bw.linear(nm[0]) = std::move((*u)->w.gate);
      *bw.linear(nm[1]) = std::move((*u)->w.up);
      *bw.linear(nm[2]) = std::move((*u)->w.down);
    } else {
      bw.set_expert(e, std::move((*u)->w));
    }
    u->reset();
    if (e == 0) maybe_kill("during-experts", layer);
  };

  model::Routing route;
  if (data) route = model::moe_route(bw, cfg_, xn.data(), rows, nullptr);
  auto rows_of = [&](int64_t e) { return data ? unit_rows(route, e, rows, expert_calib_) : UnitRows{}; };
  const std::vector<int> owner = owners(data ? &route : nullptr);
  const auto owner_of = [&](int64_t e) { return owner[static_cast<size_t>(e + 1)]; };

  // Solve this rank's units (all of them without a split); a split keeps only their weights
  // and results until the exchange below.
  std::vector<std::optional<Solved>> solved(static_cast<size_t>(E + 1));
  int64_t mine = 0;
  for (int64_t e = 0; e < E; ++e) mine += owner_of(e) == dist::rank();
  std::optional<Progress> bar;
  if (opts_.progress && mine >= 8) bar.emplace(strprintf("block %lld experts", static_cast<long long>(layer)), mine, "experts");
  int64_t done = 0, topped_up = 0, fewest = -1;  // experts whose statistics were topped up
  for (int64_t e = -1; e < E; ++e) {
    const UnitRows ur = rows_of(e);
    if (e >= 0 && !expert_calib_.all_tokens && ur.srows.size() > ur.routed.size()) {
      ++topped_up;
      const auto nr = static_cast<int64_t>(ur.routed.size());
      fewest = fewest < 0 ? nr : std::min(fewest, nr);
    }
    std::optional<Solved>& u = solved[static_cast<size_t>(e + 1)];
    if (owner_of(e) == dist::rank()) {
      u = solve_unit(e, ur);
      if (bar && e >= 0) bar->set(++done);
    }
    if (split) {
      if (u) u->act_routed = Buf();  // recomputed below as every other rank computes it
      continue;
    }
    finish_unit(e, ur, &u);
  }
  if (bar) bar->finish();
  // Split: every unit's results from its owner, in unit order, and its output on every rank.
  for (int64_t e = -1; split && e < E; ++e) {
    std::optional<Solved>& u = solved[static_cast<size_t>(e + 1)];
    receive_unit(e, owner_of(e), &u);
    finish_unit(e, rows_of(e), &u);
  }
  if (topped_up > 0)
    log_warn(strprintf("block %lld: %lld of %lld experts were routed fewer than %lld calibration "
                       "tokens (fewest %lld); their statistics were topped up with unrouted tokens "
                       "(docs/MOE.md): more calibration data, or --expert-calib-all when it is "
                       "small, may help",
                       static_cast<long long>(layer), static_cast<long long>(topped_up),
                       static_cast<long long>(E), static_cast<long long>(expert_calib_.min_tokens),
                       static_cast<long long>(fewest)));
  if (data) {
    for (size_t i = 0; i < hm.size(); ++i) hm[i] += out[i];  // hm is hidden_
    hidden_done_ = true;
  }
}

}  // namespace dsq::calibration::detail
