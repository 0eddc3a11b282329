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
//      statistics from the quantized gate/up on the same tokens, down solved, and the unit's
//      output on its routed rows, weighted, accumulated in the engine's order.
//   4. The block's output (attention + shared + routed) becomes the next block's input.
// Memory: the FFN input and the output accumulator ([rows, d_model] each), one expert's weights and
// statistics, and its intermediate activations: independent of the number of experts.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "calibration/pipeline_impl.h"
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

  // 1. The FFN input after the quantized attention, in place: the block's input is not needed
  // again (the drift reference was taken before), and at V3's width and 128 x 512 tokens a copy
  // would be 1.9 GB.
  std::vector<float>& hm = hidden_;
  Buf xn;
  if (data) {
    const int64_t per = std::max<int64_t>(1, kChunkRows / T);
    for (int64_t s0 = 0; s0 < calib_.n_samples; s0 += per) {
      const int64_t nb = std::min(per, calib_.n_samples - s0);
      model::block_forward(bw, cfg_, hm.data() + s0 * T * d, nb, T, nullptr, nullptr, 0,
                           model::BlockPart::kAttn);
    }
    xn.resize(hm.size());
    model::rmsnorm(hm.data(), bw.norm(n::kFfnNorm)->data<float>(), rows, d, cfg_.rms_eps, xn.data());
  }

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
      std::vector<double> total;
      double norm = 0.0;
      auto add = [&](const quant::AwqScaleResult& r, double tokens) {
        if (total.empty()) total.assign(r.errs.size(), 0.0);
        for (size_t i = 0; i < r.errs.size(); ++i) total[i] += r.errs[i] * tokens;
        norm += r.norm * tokens;
      };
      {
        const model::Linear& g = *bw.linear(n::kFfnGateShexp);
        const model::Linear& u = *bw.linear(n::kFfnUpShexp);
        add(quant::awq_search_scales({{g.weight().data<float>(), g.n_out()},
                                      {u.weight().data<float>(), u.n_out()}},
                                     d, st.hessian.data(), st.abs_mean.data(), opts_.desc, awq_opts_),
            static_cast<double>(rows));
      }
      for (int64_t e = 0; e < E; ++e) {
        const auto off = static_cast<size_t>(route.offsets[static_cast<size_t>(e)]);
        const std::vector<int64_t> srows =
            statistics_rows(route.token.data() + off, route.count(e), rows, expert_calib_);
        StatsAccumulator acc(d);
        Buf x(static_cast<size_t>(std::min<int64_t>(kChunkRows, static_cast<int64_t>(srows.size())) * d));
        for (size_t i0 = 0; i0 < srows.size(); i0 += kChunkRows) {
          const int64_t nc = std::min<int64_t>(kChunkRows, static_cast<int64_t>(srows.size() - i0));
          gather(xn.data(), d, srows.data() + i0, nc, x.data());
          acc.add(x.data(), nc);
        }
        const h5::InputStats se = acc.finish(layer, "", {});
        const model::ExpertHandle ex = bw.expert(e);
        add(quant::awq_search_scales({{ex->gate.weight().data<float>(), ex->gate.n_out()},
                                      {ex->up.weight().data<float>(), ex->up.n_out()}},
                                     d, se.hessian.data(), st.abs_mean.data(), opts_.desc, awq_opts_),
            static_cast<double>(srows.size()));
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

  model::Routing route;
  if (data) route = model::moe_route(bw, cfg_, xn.data(), rows, nullptr);
  Buf out(static_cast<size_t>(rows * d), 0.0f);

  int64_t topped_up = 0, fewest = -1;  // experts whose statistics the fallback rule topped up
  std::optional<Progress> bar;
  if (opts_.progress && E >= 8) bar.emplace(strprintf("block %lld experts", static_cast<long long>(layer)), E, "experts");
  for (int64_t e = -1; e < E; ++e) {
    const bool shared = e < 0;
    const LinearGroup& gin = shared ? *G.sh_in : *G.ex_in;
    const LinearGroup& gout = shared ? *G.sh_out : *G.ex_out;
    const auto nm = names_of(e);
    const std::string in_name = group_name(gin, e), out_name = group_name(gout, e);
    // The unit's weights, f32 (AWQ: the shared ffn_norm scale folded into gate/up's columns).
    model::ExpertWeights w;
    if (shared) {
      w = {*bw.linear(nm[0]), *bw.linear(nm[1]), *bw.linear(nm[2])};
    } else {
      const model::ExpertHandle h = bw.expert(e);
      w = *h;
      if (!s_in.empty()) {
        model::scale_input_columns(w.gate, s_in);
        model::scale_input_columns(w.up, s_in);
      }
    }
    const int64_t ff = w.gate.n_out();
    // Its rows: routed (weights) and statistics rows.
    std::vector<int64_t> routed, srows;
    std::vector<float> rweight;
    if (data) {
      if (shared) {
        routed.resize(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r) routed[static_cast<size_t>(r)] = r;
        rweight.assign(static_cast<size_t>(rows), 1.0f);
        srows = routed;
      } else {
        const auto off = static_cast<size_t>(route.offsets[static_cast<size_t>(e)]);
        routed.assign(route.token.begin() + off, route.token.begin() + off + route.count(e));
        rweight.assign(route.weight.begin() + off, route.weight.begin() + off + route.count(e));
        srows = statistics_rows(routed.data(), static_cast<int64_t>(routed.size()), rows, expert_calib_);
      }
    }
    const int64_t n_stat = static_cast<int64_t>(srows.size());
    const std::string fallback =
        shared ? "" : (expert_calib_.all_tokens ? "all-tokens"
                       : (n_stat > static_cast<int64_t>(routed.size()) ? "top-up" : "none"));
    if (fallback == "top-up") {
      ++topped_up;
      const auto n = static_cast<int64_t>(routed.size());
      fewest = fewest < 0 ? n : std::min(fewest, n);
    }
    auto chunks = [&](auto&& fn) {  // fn(i0, nc, x [nc, d]) over the statistics rows
      Buf x(static_cast<size_t>(std::min(kChunkRows, std::max<int64_t>(n_stat, 1)) * d));
      for (int64_t i0 = 0; i0 < n_stat; i0 += kChunkRows) {
        const int64_t nc = std::min(kChunkRows, n_stat - i0);
        gather(xn.data(), d, srows.data() + i0, nc, x.data());
        fn(i0, nc, x.data());
      }
    };

    // Gate/up statistics.
    h5::InputStats st_in;
    if (load_stats_) {
      st_in = h5::read_input_stats(*load_stats_, layer, in_name, d);
    } else {
      StatsAccumulator acc(d);
      chunks([&](int64_t, int64_t nc, const float* x) { acc.add(x, nc); });
      st_in = acc.finish(layer, in_name, {nm[0], nm[1]});
      if (!shared) st_in.routed_tokens = static_cast<int64_t>(routed.size());
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
        chunks([&](int64_t, int64_t nc, const float* x) {
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
      res->linears.push_back(std::move(r));
    }

    // Down: statistics from the quantized gate/up on the same rows; the activations of the routed
    // rows are kept for the unit's output.
    h5::InputStats st_out;
    Buf act_routed;  // [n_routed, ff], in routed order
    if (load_stats_) {
      st_out = h5::read_input_stats(*load_stats_, layer, out_name, ff);
    } else {
      StatsAccumulator acc(ff);
      act_routed.resize(routed.size() * static_cast<size_t>(ff));
      Buf act(static_cast<size_t>(std::min(kChunkRows, std::max<int64_t>(n_stat, 1)) * ff));
      size_t k = 0;  // next routed row (srows and routed are both ascending)
      chunks([&](int64_t i0, int64_t nc, const float* x) {
        swiglu_act(w.gate, w.up, x, nc, act.data());
        acc.add(act.data(), nc);
        for (int64_t i = 0; i < nc; ++i)
          if (k < routed.size() && routed[k] == srows[static_cast<size_t>(i0 + i)])
            std::memcpy(act_routed.data() + k++ * static_cast<size_t>(ff), act.data() + i * ff,
                        static_cast<size_t>(ff) * 4);
      });
      DSQ_ASSERT(k == routed.size(), "routed rows missing from the statistics rows");
      st_out = acc.finish(layer, out_name, {nm[2]});
      if (!shared) st_out.routed_tokens = static_cast<int64_t>(routed.size());
    }
    h5::AwqSearch awq_out;
    if (sel(nm[2])) {
      const std::vector<float> h32_out = to_f32(st_out.hessian);
      LinearResult r = solve_linear(layer, nm[2], w.down.weight(), st_out, h32_out,
                                    !contains(gout.no_clip, arch_.find(nm[2])->short_name()),
                                    gs_out, out_name, &awq_out, nullptr);
      if (!fallback.empty()) r.extra["expert_fallback"] = fallback;
      w.down = model::Linear::from_tensors(r.name, r.q, w.down.bias());
      res->linears.push_back(std::move(r));
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

    // The unit's output on its routed rows, accumulated in the engine's order (shared, then the
    // experts ascending).
    if (data && !routed.empty()) {
      const int64_t nr = static_cast<int64_t>(routed.size());
      Buf y(static_cast<size_t>(std::min(kChunkRows, nr) * d));
      for (int64_t i0 = 0; i0 < nr; i0 += kChunkRows) {
        const int64_t nc = std::min(kChunkRows, nr - i0);
        w.down.forward(act_routed.data() + i0 * ff, nc, y.data());
#pragma omp parallel for schedule(static) if (nc * d > (1 << 18))
        for (int64_t i = 0; i < nc; ++i) {
          float* o = out.data() + routed[static_cast<size_t>(i0 + i)] * d;
          const float wi = rweight[static_cast<size_t>(i0 + i)];
          for (int64_t j = 0; j < d; ++j) o[j] += wi * y[static_cast<size_t>(i * d + j)];
        }
      }
    }
    // The quantized unit stays resident (small) for the rest of the block.
    if (shared) {
      *bw.linear(nm[0]) = std::move(w.gate);
      *bw.linear(nm[1]) = std::move(w.up);
      *bw.linear(nm[2]) = std::move(w.down);
    } else {
      bw.set_expert(e, std::move(w));
    }
    if (bar && !shared) bar->set(e + 1);
    if (!shared && e == 0) maybe_kill("during-experts", layer);
  }
  if (bar) bar->finish();
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
