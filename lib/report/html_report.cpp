#include "lib/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "lib/core/error.h"
#include "lib/report/report_io.h"
#include "lib/report/svg_chart.h"

namespace dsq::report {

namespace {

constexpr double kNaN = kUnset;

// The first of `keys` that holds a number; NaN when none does (JSON null counts as missing).
double num(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object()) return kNaN;
  for (const char* k : keys) {
    const auto it = j.find(k);
    if (it != j.end() && it->is_number()) return it->get<double>();
  }
  return kNaN;
}

// A boolean field; false when absent or of another type (reports are drawn, not validated).
bool flag(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string str(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object()) return "";
  for (const char* k : keys) {
    const auto it = j.find(k);
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

void fill(double& dst, double v) {
  if (std::isnan(dst)) dst = v;
}

// "blk.12.ffn_up.weight" -> (12, "ffn_up"); other names -> (-1, name).
std::pair<int, std::string> split_tensor_name(const std::string& name) {
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string::npos && dot > 4 &&
        std::all_of(name.begin() + 4, name.begin() + static_cast<std::ptrdiff_t>(dot),
                    [](char c) { return c >= '0' && c <= '9'; }) && dot - 4 < 9) {
      std::string kind = name.substr(dot + 1);
      if (kind.size() > 7 && kind.compare(kind.size() - 7, 7, ".weight") == 0)
        kind.resize(kind.size() - 7);
      return {std::stoi(name.substr(4, dot - 4)), kind};
    }
  }
  return {-1, name};
}

// A document's method/bits/group, at top level or inside a "recipe" object.
const nlohmann::json* recipe_of(const nlohmann::json& j) {
  const auto it = j.find("recipe");
  return it != j.end() && it->is_object() ? &*it : nullptr;
}

const nlohmann::json* tensor_array(const nlohmann::json& j) {
  for (const char* k : {"tensors", "linears"}) {
    const auto it = j.find(k);
    if (it != j.end() && it->is_array()) return &*it;
  }
  return nullptr;
}

bool is_eval_report(const nlohmann::json& j) {
  for (const char* k : {"perplexity", "kld_mean", "top1_agreement", "ref_perplexity"})
    if (j.contains(k)) return true;
  if (j.contains("layers") && j["layers"].is_array() && !j["layers"].empty() &&
      j["layers"][0].is_object() && j["layers"][0].contains("rel_l2"))
    return true;
  return false;
}

}  // namespace

std::string run_label(const nlohmann::json& j, const std::string& path) {
  if (std::string l = str(j, {"label"}); !l.empty()) return l;
  const nlohmann::json* r = recipe_of(j);
  std::string method = str(j, {"method"});
  if (method.empty() && r) method = str(*r, {"method"});
  if (!method.empty()) {
    double bits = num(j, {"bits"}), group = num(j, {"group", "group_size"});
    if (r) {
      fill(bits, num(*r, {"bits"}));
      fill(group, num(*r, {"group", "group_size"}));
    }
    if (std::isfinite(bits)) method += strprintf(" w%g", bits);
    if (std::isfinite(group)) method += strprintf("g%g", group);
    return method;
  }
  const std::string name = std::filesystem::path(path).filename().string();
  const size_t dot = name.find('.');
  return dot == 0 || dot == std::string::npos ? name : name.substr(0, dot);
}

void merge_report(Run& run, const nlohmann::json& j, const std::string& source) {
  const nlohmann::json* tensors = j.is_object() ? tensor_array(j) : nullptr;
  const bool eval = j.is_object() && is_eval_report(j);
  const bool distill = j.is_object() && j.contains("curve") && j["curve"].is_array();
  if (!eval && !tensors && !distill)
    throw FormatError(strprintf(
        "'%s': not a dsq eval, check, quantize or distill report (expected keys such as "
        "'perplexity', 'kld_mean', 'layers', 'tensors' or 'curve')",
        source.c_str()));
  if (distill && run.curve.empty())
    for (const auto& p : j["curve"]) {
      if (!p.is_object()) continue;
      run.curve.push_back({num(p, {"step"}), num(p, {"tokens"}), num(p, {"minutes"}),
                           num(p, {"train_loss"}), num(p, {"heldout_kl"})});
    }
  run.sources.push_back(source);
  const nlohmann::json* r = recipe_of(j);
  if (run.method.empty()) run.method = str(j, {"method"});
  if (run.method.empty() && r) run.method = str(*r, {"method"});
  for (const nlohmann::json* src : {&j, r}) {
    if (!src) continue;
    // Only plausible values convert (a hostile 1e97 must not reach an int conversion).
    auto small_int = [](double v) { return std::isfinite(v) && std::fabs(v) < 1e6; };
    if (run.bits == 0 && small_int(num(*src, {"bits"})))
      run.bits = static_cast<int>(num(*src, {"bits"}));
    if (run.group == 0 && small_int(num(*src, {"group", "group_size"})))
      run.group = static_cast<int>(num(*src, {"group", "group_size"}));
  }
  fill(run.perplexity, num(j, {"perplexity"}));
  fill(run.ref_perplexity, num(j, {"ref_perplexity"}));
  fill(run.ppl_ratio, num(j, {"ppl_ratio"}));
  if (std::isnan(run.ppl_ratio) && run.ref_perplexity > 0)
    run.ppl_ratio = run.perplexity / run.ref_perplexity;
  fill(run.kld_mean, num(j, {"kld_mean"}));
  fill(run.kld_stderr, num(j, {"kld_stderr"}));
  fill(run.kld_p99, num(j, {"kld_p99"}));
  fill(run.kld_max, num(j, {"kld_max"}));
  fill(run.top1_agreement, num(j, {"top1_agreement"}));
  fill(run.tokens_per_second, num(j, {"tokens_per_second"}));
  fill(run.tokens_scored, num(j, {"tokens_scored"}));
  // A quantize report's bits per weight of the quantized linears is what the methods trade; it
  // wins over an eval report's whole-model figure whatever the order of the files.
  const auto it_summary = j.find("summary");
  const nlohmann::json* summary =
      it_summary != j.end() && it_summary->is_object() ? &*it_summary : nullptr;
  const double quant_bpw =
      summary ? num(*summary, {"quantized_bits_per_weight", "bits_per_weight"}) : kNaN;
  if (tensors && std::isfinite(quant_bpw)) run.bits_per_weight = quant_bpw;
  fill(run.bits_per_weight, num(j, {"bits_per_weight", "bpw"}));
  if (summary) fill(run.file_bytes, num(*summary, {"file_bytes"}));
  fill(run.file_bytes, num(j, {"file_bytes", "output_bytes", "model_bytes"}));

  if (eval && run.layers.empty() && j.contains("layers") && j["layers"].is_array()) {
    for (const auto& l : j["layers"]) {
      if (!l.is_object()) continue;
      LayerDrift d;
      if (l.contains("layer") && l["layer"].is_number_integer()) {
        d.index = l["layer"].get<int>();
        d.name = "blk." + std::to_string(d.index);
      } else {
        d.name = str(l, {"layer", "name"});
        const auto [idx, kind] = split_tensor_name(d.name + ".x");
        d.index = idx;
      }
      d.rel_l2 = num(l, {"rel_l2"});
      d.cosine = num(l, {"cosine"});
      run.layers.push_back(std::move(d));
    }
  }
  if (tensors && run.tensors.empty()) {
    for (const auto& t : *tensors) {
      if (!t.is_object()) continue;
      // Tensors kept in source precision (norms, embeddings) are not part of the comparison; a
      // mixed-precision run's linears kept in f16 (scheme "f16") are.
      if (t.contains("quantized") && t["quantized"].is_boolean() && !t["quantized"].get<bool>() &&
          str(t, {"scheme"}) != "f16")
        continue;
      TensorStat s;
      s.name = str(t, {"name", "tensor"});
      if (s.name.empty()) continue;
      std::tie(s.layer, s.kind) = split_tensor_name(s.name);
      s.type = str(t, {"scheme", "type", "qtype"});
      s.bits_per_weight = num(t, {"bits_per_weight", "bpw"});
      s.rel_error =
          num(t, {"rel_err", "rel_error", "rel_sq_error", "relative_error", "rel_mse", "nmse"});
      s.sqnr_db = num(t, {"sqnr_db", "sqnr"});
      if (std::isnan(s.sqnr_db) && s.rel_error > 0) s.sqnr_db = -10 * std::log10(s.rel_error);
      const auto extra = t.find("extra");
      const nlohmann::json none;
      const nlohmann::json& ex = extra != t.end() ? *extra : none;
      s.out_rel_err = num(ex, {"out_rel_err"});
      s.out_rel_err_rtn = num(ex, {"out_rel_err_rtn"});
      const double p = num(t, {"params", "n_params", "numel", "elements"});
      if (std::isfinite(p) && p >= 0 && p < 9.0e18) s.params = static_cast<int64_t>(p);
      run.tensors.push_back(std::move(s));
    }
  }
  if (j.contains("check") && j["check"].is_object() && !run.has_check) {
    const auto& c = j["check"];
    run.has_check = true;
    run.check_passed = flag(c, "passed");
    if (c.contains("limits") && c["limits"].is_array()) {
      for (const auto& l : c["limits"]) {
        if (!l.is_object()) continue;
        CheckLimit cl;
        cl.name = str(l, {"name"});
        cl.op = str(l, {"op"});
        cl.message = str(l, {"message"});
        cl.budget = num(l, {"budget"});
        cl.measured = num(l, {"measured"});
        cl.passed = flag(l, "passed");
        run.check.push_back(std::move(cl));
      }
    }
  }
}

std::vector<Run> load_runs(const std::vector<RunInput>& inputs) {
  std::vector<Run> runs;
  for (const auto& in : inputs) {
    const nlohmann::json j = read_json_file(in.path);
    const std::string label = in.label.empty() ? run_label(j, in.path) : in.label;
    auto it = std::find_if(runs.begin(), runs.end(), [&](const Run& r) { return r.label == label; });
    if (it == runs.end()) {
      runs.emplace_back();
      runs.back().label = label;
      it = runs.end() - 1;
    }
    merge_report(*it, j, in.path);
  }
  return runs;
}

namespace {

std::string h(const std::string& s) { return escape_markup(s); }

std::string fmt_fixed(double v, int decimals) {
  return std::isfinite(v) ? strprintf("%.*f", decimals, v) : "";
}

std::string fmt_bytes(double b) {
  if (!std::isfinite(b)) return "";
  if (b < 1024) return strprintf("%.0f B", b);
  if (b < 1024.0 * 1024) return strprintf("%.1f KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return strprintf("%.2f MiB", b / (1024.0 * 1024));
  return strprintf("%.2f GiB", b / (1024.0 * 1024 * 1024));
}

std::string fmt_sig(double v) { return std::isfinite(v) ? format_number(v, 4) : ""; }

struct Column {
  const char* title;
  const char* tip;
  std::function<double(const Run&)> value;  // for presence and "best" highlighting
  std::function<std::string(const Run&)> text;
  int best;  // -1 lower is better, +1 higher is better, 0 no highlight
};

std::string comparison_table(const std::vector<Run>& runs) {
  const std::vector<Column> cols = {
      {"bits / group", "quantization bits and group size",
       [](const Run& r) { return r.bits > 0 ? double(r.bits) : kNaN; },
       [](const Run& r) {
         return r.bits > 0 ? strprintf("W%d", r.bits) + (r.group > 0 ? strprintf(" g%d", r.group) : "")
                           : std::string();
       },
       0},
      {"bpw", "bits per weight, scales and zeros included",
       [](const Run& r) { return r.bits_per_weight; },
       [](const Run& r) { return fmt_fixed(r.bits_per_weight, 3); }, -1},
      {"size", "model file size", [](const Run& r) { return r.file_bytes; },
       [](const Run& r) { return fmt_bytes(r.file_bytes); }, -1},
      {"PPL", "perplexity", [](const Run& r) { return r.perplexity; },
       [](const Run& r) { return fmt_fixed(r.perplexity, 4); }, -1},
      {"PPL ratio", "perplexity / reference perplexity", [](const Run& r) { return r.ppl_ratio; },
       [](const Run& r) { return fmt_fixed(r.ppl_ratio, 4); }, -1},
      {"KLD mean", "mean KL(ref || model) per token, +- standard error",
       [](const Run& r) { return r.kld_mean; },
       [](const Run& r) {
         return fmt_sig(r.kld_mean) +
                (std::isfinite(r.kld_stderr) ? " \xC2\xB1 " + format_number(r.kld_stderr, 2) : "");
       },
       -1},
      {"KLD p99", "99th percentile of per-token KLD", [](const Run& r) { return r.kld_p99; },
       [](const Run& r) { return fmt_sig(r.kld_p99); }, -1},
      {"KLD max", "largest per-token KLD", [](const Run& r) { return r.kld_max; },
       [](const Run& r) { return fmt_sig(r.kld_max); }, -1},
      {"top-1", "share of tokens where model and reference agree on the argmax",
       [](const Run& r) { return r.top1_agreement; },
       [](const Run& r) {
         return std::isfinite(r.top1_agreement) ? strprintf("%.2f%%", 100 * r.top1_agreement) : "";
       },
       +1},
      {"tok/s", "evaluation throughput", [](const Run& r) { return r.tokens_per_second; },
       [](const Run& r) { return fmt_fixed(r.tokens_per_second, 0); }, +1},
      {"budget", "dsq check result", [](const Run& r) { return r.has_check ? 1.0 : kNaN; },
       [](const Run& r) {
         return std::string(r.check_passed ? "<span class=\"badge pass\">PASS</span>"
                                           : "<span class=\"badge fail\">FAIL</span>");
       },
       0},
  };
  // The method column only when some run's label does not already say it.
  const bool show_method =
      std::any_of(runs.begin(), runs.end(), [](const Run& r) { return !r.method.empty() && r.method != r.label; });
  std::string o = std::string("<table class=\"cmp\"><thead><tr><th>run</th>") +
                  (show_method ? "<th>method</th>" : "");
  std::vector<const Column*> shown;
  for (const auto& c : cols) {
    if (std::none_of(runs.begin(), runs.end(), [&](const Run& r) { return std::isfinite(c.value(r)); }))
      continue;
    shown.push_back(&c);
    o += std::string("<th title=\"") + escape_markup(c.tip, true) + "\">" + h(c.title) + "</th>";
  }
  o += "</tr></thead><tbody>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    o += "<tr><td><span class=\"sw\" style=\"background:" + std::string(series_color(i)) +
         "\"></span>" + h(r.label) + "</td>" + (show_method ? "<td>" + h(r.method) + "</td>" : "");
    for (const Column* c : shown) {
      const double v = c->value(r);
      // Best = no other run is better and at least one is worse (all equal: nothing to show).
      bool best = c->best != 0 && std::isfinite(v), beats_one = false;
      for (const Run& other : runs) {
        const double w = c->value(other);
        if (!std::isfinite(w)) continue;
        if (c->best < 0 ? w < v : w > v) best = false;
        if (c->best < 0 ? w > v : w < v) beats_one = true;
      }
      best = best && beats_one;
      const std::string t = std::isfinite(v) ? c->text(r) : "";
      // Column texts are built from numbers and fixed markup only, so they need no escaping.
      o += std::string(best ? "<td class=\"num best\">" : "<td class=\"num\">") + t + "</td>";
    }
    o += "</tr>\n";
  }
  return o + "</tbody></table>\n";
}

// One single-point series per run at (bits per weight, metric).
std::string tradeoff_chart(const std::vector<Run>& runs, const std::string& title,
                           const std::string& y_label, bool log_y,
                           const std::function<double(const Run&)>& y,
                           const std::function<double(const Run&)>& err, double ref,
                           const std::string& ref_label) {
  XYChart c;
  c.title = title;
  c.x_label = "bits per weight";
  c.y_label = y_label;
  c.log_y = log_y;
  c.width = 600;
  c.height = 380;
  if (std::isfinite(ref)) {
    c.y_ref = ref;
    c.y_ref_label = ref_label;
  }
  for (const Run& r : runs) {
    Series s;
    s.name = r.label;
    s.lines = false;
    s.label_points = true;
    s.x = {r.bits_per_weight};
    s.y = {y(r)};
    if (err) s.y_err = {err(r)};
    s.tips = {r.label + ": " + format_number(y(r), 4) + " at " + format_number(r.bits_per_weight, 4) +
              " bpw"};
    c.series.push_back(std::move(s));
  }
  return render_xy_chart(c);
}

bool spans_decades(const std::vector<double>& v) {
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const double x : v)
    if (std::isfinite(x) && x > 0) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  return hi > 0 && hi / lo > 30;
}

std::string layer_charts(const std::vector<Run>& runs) {
  XYChart rel, cos;
  rel.title = "Relative L2 error of each block's output";
  rel.y_label = "||h - h_ref|| / ||h_ref||";
  cos.title = "Cosine similarity of each block's output";
  cos.y_label = "cosine";
  std::vector<double> all;
  for (XYChart* c : {&rel, &cos}) {
    c->x_label = "block";
    c->integer_x = true;
    c->width = 600;
  }
  for (const Run& r : runs) {
    Series a, b;
    a.name = b.name = r.label;
    for (size_t i = 0; i < r.layers.size(); ++i) {
      const LayerDrift& d = r.layers[i];
      const double x = d.index >= 0 ? d.index : static_cast<double>(i);
      a.x.push_back(x);
      a.y.push_back(d.rel_l2);
      a.tips.push_back(r.label + " " + d.name + ": rel L2 " + format_number(d.rel_l2, 4));
      b.x.push_back(x);
      b.y.push_back(d.cosine);
      b.tips.push_back(r.label + " " + d.name + ": cosine " + format_number(d.cosine, 6));
      all.push_back(d.rel_l2);
    }
    rel.series.push_back(std::move(a));
    cos.series.push_back(std::move(b));
  }
  rel.log_y = spans_decades(all);
  return "<div class=\"row\">" + render_xy_chart(rel) + render_xy_chart(cos) + "</div>\n";
}

// Distillation: the held-out KL against tokens trained and against minutes of training.
std::string distill_charts(const std::vector<Run>& runs) {
  XYChart by_tokens, by_minutes;
  by_tokens.title = "Held-out KL vs tokens trained";
  by_tokens.x_label = "tokens";
  by_minutes.title = "Held-out KL vs minutes of training";
  by_minutes.x_label = "minutes";
  for (XYChart* c : {&by_tokens, &by_minutes}) {
    c->y_label = "KL(teacher || student) per token";
    c->width = 600;
  }
  for (const Run& r : runs) {
    if (r.curve.empty()) continue;
    Series a, b;
    a.name = b.name = r.label;
    for (const CurvePoint& p : r.curve) {
      const std::string tip = r.label + " step " + format_number(p.step, 6) + ": held-out KL " +
                              format_number(p.heldout_kl, 4);
      a.x.push_back(p.tokens);
      a.y.push_back(p.heldout_kl);
      a.tips.push_back(tip);
      b.x.push_back(p.minutes);
      b.y.push_back(p.heldout_kl);
      b.tips.push_back(tip);
    }
    by_tokens.series.push_back(std::move(a));
    by_minutes.series.push_back(std::move(b));
  }
  return "<div class=\"row\">" + render_xy_chart(by_tokens) + render_xy_chart(by_minutes) + "</div>\n";
}

// What calibrated methods minimise: each linear's output error on the calibration inputs, next
// to RTN's on the same inputs. Empty when no run reports it.
std::string output_error_chart(const std::vector<Run>& runs, const std::map<std::string, size_t>& pos,
                               const std::vector<std::pair<double, std::string>>& ticks) {
  XYChart c;
  c.title = "Output error of each linear on calibration inputs (lower is better)";
  c.y_label = "||WX - QX||\xC2\xB2 / ||WX||\xC2\xB2";
  c.x_label = ticks.empty() ? "tensor" : "block (tensors in model order)";
  c.x_ticks = ticks;
  c.log_y = true;
  c.width = 600;
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const Run& r = runs[ri];
    Series own, rtn;
    own.name = r.label;
    own.style = rtn.style = static_cast<int>(ri);  // the run's colour and marker in every chart
    rtn.name = r.label + ": RTN on the same inputs";
    rtn.color = "#9aa3ad";
    rtn.dashed = true;
    for (const TensorStat& t : r.tensors) {
      const double x = static_cast<double>(pos.at(t.name));
      own.x.push_back(x);
      own.y.push_back(t.out_rel_err);
      own.tips.push_back(r.label + " " + t.name + ": " + format_number(t.out_rel_err, 4));
      rtn.x.push_back(x);
      rtn.y.push_back(t.out_rel_err_rtn);
      rtn.tips.push_back("RTN " + t.name + ": " + format_number(t.out_rel_err_rtn, 4));
    }
    const auto has = [](const Series& s) {
      return std::any_of(s.y.begin(), s.y.end(), [](double v) { return std::isfinite(v); });
    };
    if (has(own)) c.series.push_back(std::move(own));  // runs without the numbers stay out
    if (has(rtn)) c.series.push_back(std::move(rtn));
  }
  return c.series.empty() ? "" : render_xy_chart(c);
}

// An empty blocks x tensor kinds heat map (NaN cells), on the colour scale [lo, hi] when lo <= hi.
Heatmap block_kind_heatmap(std::string title, std::string value_label,
                           const std::vector<std::string>& kinds, int n_blocks, double lo,
                           double hi) {
  Heatmap hm;
  hm.title = std::move(title);
  hm.col_labels = kinds;
  for (int b = 0; b < n_blocks; ++b) hm.row_labels.push_back("blk." + std::to_string(b));
  hm.values.assign(static_cast<size_t>(n_blocks) * kinds.size(), kNaN);
  hm.value_label = std::move(value_label);
  if (hi >= lo) hm.range = std::make_pair(lo, hi);
  if (n_blocks > 40) hm.cell_height = 8;
  return hm;
}

// Mixed-precision runs (more than one type among their tensors): the bits each block got, as a
// chart of the parameter-weighted bits per weight of every block and one heat map per run.
std::string bits_by_block(const std::vector<Run>& runs, const std::vector<std::string>& kinds) {
  const auto mixed = [](const Run& r) {
    std::set<std::string> types;
    for (const TensorStat& t : r.tensors)
      if (t.layer >= 0) types.insert(t.type);
    return types.size() > 1;
  };
  XYChart per_block;
  per_block.title = "Bits per weight of each block (mixed precision)";
  per_block.y_label = "bits per weight";
  per_block.x_label = "block";
  per_block.width = 600;
  std::string maps;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Run& r : runs)
    if (mixed(r))
      for (const TensorStat& t : r.tensors)
        if (t.layer >= 0 && std::isfinite(t.bits_per_weight)) {
          lo = std::min(lo, t.bits_per_weight);
          hi = std::max(hi, t.bits_per_weight);
        }
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const Run& r = runs[ri];
    if (!mixed(r)) continue;
    int n_blocks = 0;
    for (const TensorStat& t : r.tensors) n_blocks = std::max(n_blocks, t.layer + 1);
    std::vector<double> bits(static_cast<size_t>(n_blocks), 0), params(bits.size(), 0);
    Heatmap hm = block_kind_heatmap(r.label + ": bits per weight by block and tensor",
                                    "bits/weight", kinds, n_blocks, lo, hi);
    std::vector<double> cell_bits(hm.values.size(), 0), cell_params(hm.values.size(), 0);
    for (const TensorStat& t : r.tensors) {
      if (t.layer < 0 || !std::isfinite(t.bits_per_weight)) continue;
      const double p = t.params > 0 ? static_cast<double>(t.params) : 1.0;
      bits[static_cast<size_t>(t.layer)] += p * t.bits_per_weight;
      params[static_cast<size_t>(t.layer)] += p;
      const auto it = std::find(kinds.begin(), kinds.end(), t.kind);
      if (it == kinds.end()) continue;  // experts of a kind share one cell: their mean
      const size_t c = static_cast<size_t>(t.layer) * kinds.size() + (it - kinds.begin());
      cell_bits[c] += p * t.bits_per_weight;
      cell_params[c] += p;
    }
    for (size_t c = 0; c < hm.values.size(); ++c)
      if (cell_params[c] > 0) hm.values[c] = cell_bits[c] / cell_params[c];
    maps += render_heatmap(hm);
    Series s;
    s.name = r.label;
    s.style = static_cast<int>(ri);
    for (int b = 0; b < n_blocks; ++b) {
      if (params[static_cast<size_t>(b)] == 0) continue;
      s.x.push_back(b);
      s.y.push_back(bits[static_cast<size_t>(b)] / params[static_cast<size_t>(b)]);
      s.tips.push_back(r.label + " blk." + std::to_string(b) + ": " + format_number(s.y.back(), 4) +
                       " bpw");
    }
    per_block.series.push_back(std::move(s));
    for (int b = static_cast<int>(per_block.x_ticks.size()); b < n_blocks; ++b)
      per_block.x_ticks.emplace_back(b, std::to_string(b));
  }
  if (per_block.x_ticks.size() > 12) {  // about a dozen labels
    const size_t stride = (per_block.x_ticks.size() + 11) / 12;
    std::vector<std::pair<double, std::string>> t;
    for (size_t i = 0; i < per_block.x_ticks.size(); i += stride) t.push_back(per_block.x_ticks[i]);
    per_block.x_ticks = std::move(t);
  }
  if (per_block.series.empty()) return "";
  return "<div class=\"row\">" + render_xy_chart(per_block) + maps + "</div>\n";
}

std::string tensor_charts(const std::vector<Run>& runs) {
  // The union of tensor names in first-seen (model) order gives the x positions.
  std::vector<std::string> names;
  std::map<std::string, size_t> pos;
  std::vector<std::string> kinds;
  for (const Run& r : runs)
    for (const TensorStat& t : r.tensors) {
      if (pos.emplace(t.name, names.size()).second) names.push_back(t.name);
      if (t.layer >= 0 && std::find(kinds.begin(), kinds.end(), t.kind) == kinds.end())
        kinds.push_back(t.kind);
    }
  std::vector<std::pair<double, std::string>> ticks;
  {
    std::vector<std::pair<double, int>> firsts;  // first tensor of each block
    int last = -2;
    for (size_t i = 0; i < names.size(); ++i) {
      const int layer = split_tensor_name(names[i]).first;
      if (layer >= 0 && layer != last) firsts.emplace_back(static_cast<double>(i), layer);
      last = layer;
    }
    const size_t stride = (firsts.size() + 11) / 12;
    for (size_t i = 0; i < firsts.size(); i += std::max<size_t>(stride, 1))
      ticks.emplace_back(firsts[i].first, std::to_string(firsts[i].second));
  }
  XYChart sq, bpw, kind;
  sq.title = "SQNR of each quantized tensor (higher is better)";
  sq.y_label = "SQNR (dB)";
  bpw.title = "Bits per weight of each tensor";
  bpw.y_label = "bits per weight";
  kind.title = "Mean SQNR by tensor kind";
  kind.y_label = "SQNR (dB)";
  kind.x_label = "tensor kind";
  for (XYChart* c : {&sq, &bpw}) {
    c->x_label = ticks.empty() ? "tensor" : "block (tensors in model order)";
    c->x_ticks = ticks;
    c->width = 600;
  }
  kind.width = 600;
  for (size_t k = 0; k < kinds.size(); ++k) kind.x_ticks.emplace_back(static_cast<double>(k), kinds[k]);
  for (const Run& r : runs) {
    Series a, b, m;
    a.name = b.name = m.name = r.label;
    a.markers = b.markers = r.tensors.size() <= 160;
    std::vector<double> sum(kinds.size(), 0), cnt(kinds.size(), 0);
    for (const TensorStat& t : r.tensors) {
      const double x = static_cast<double>(pos.at(t.name));
      const std::string tip = r.label + " " + t.name + (t.type.empty() ? "" : " (" + t.type + ")");
      a.x.push_back(x);
      a.y.push_back(t.sqnr_db);
      a.tips.push_back(tip + ": " + format_number(t.sqnr_db, 4) + " dB");
      b.x.push_back(x);
      b.y.push_back(t.bits_per_weight);
      b.tips.push_back(tip + ": " + format_number(t.bits_per_weight, 4) + " bpw");
      const auto it = std::find(kinds.begin(), kinds.end(), t.kind);
      if (t.layer >= 0 && std::isfinite(t.sqnr_db) && it != kinds.end()) {
        sum[it - kinds.begin()] += t.sqnr_db;
        cnt[it - kinds.begin()] += 1;
      }
    }
    m.lines = false;
    for (size_t k = 0; k < kinds.size(); ++k) {
      m.x.push_back(static_cast<double>(k));
      m.y.push_back(cnt[k] > 0 ? sum[k] / cnt[k] : kNaN);
      m.tips.push_back(r.label + " " + kinds[k] + ": mean " + format_number(m.y.back(), 4) + " dB");
    }
    sq.series.push_back(std::move(a));
    bpw.series.push_back(std::move(b));
    kind.series.push_back(std::move(m));
  }
  std::string o = "<div class=\"row\">" + render_xy_chart(sq) + render_xy_chart(bpw) + "</div>\n";
  const std::string out_err = output_error_chart(runs, pos, ticks);
  if (!kinds.empty() || !out_err.empty())
    o += "<div class=\"row\">" + (kinds.empty() ? "" : render_xy_chart(kind)) + out_err + "</div>\n";
  // One heat map per run: block x tensor kind, coloured by SQNR on one scale for all runs.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Run& r : runs)
    for (const TensorStat& t : r.tensors)
      if (t.layer >= 0 && std::isfinite(t.sqnr_db)) {
        lo = std::min(lo, t.sqnr_db);
        hi = std::max(hi, t.sqnr_db);
      }
  std::string maps;
  for (const Run& r : runs) {
    int n_blocks = 0;
    for (const TensorStat& t : r.tensors) n_blocks = std::max(n_blocks, t.layer + 1);
    if (n_blocks == 0) continue;
    Heatmap hm = block_kind_heatmap(r.label + ": SQNR by block and tensor", "SQNR dB", kinds,
                                    n_blocks, lo, hi);
    for (const TensorStat& t : r.tensors) {
      const auto it = std::find(kinds.begin(), kinds.end(), t.kind);
      if (t.layer >= 0 && it != kinds.end())
        hm.values[static_cast<size_t>(t.layer) * kinds.size() + (it - kinds.begin())] = t.sqnr_db;
    }
    maps += render_heatmap(hm);
  }
  if (!maps.empty()) o += "<div class=\"row\">" + maps + "</div>\n";
  return o + bits_by_block(runs, kinds);
}

std::string check_section(const std::vector<Run>& runs) {
  std::string o;
  for (const Run& r : runs) {
    if (!r.has_check) continue;
    o += "<h3>" + h(r.label) + " " +
         (r.check_passed ? "<span class=\"badge pass\">PASS</span>"
                         : "<span class=\"badge fail\">FAIL</span>") +
         "</h3>\n<table class=\"cmp\"><thead><tr><th>limit</th><th>measured</th><th></th>"
         "<th>budget</th><th>result</th><th>note</th></tr></thead><tbody>\n";
    for (const CheckLimit& l : r.check) {
      o += "<tr><td>" + h(l.name) + "</td><td class=\"num\">" +
           (std::isfinite(l.measured) ? format_number(l.measured, 6) : "missing") +
           "</td><td>" + h(l.op) + "</td><td class=\"num\">" + format_number(l.budget, 6) +
           "</td><td>" +
           (l.passed ? "<span class=\"badge pass\">pass</span>"
                     : "<span class=\"badge fail\">FAIL</span>") +
           "</td><td>" + h(l.message) + "</td></tr>\n";
    }
    o += "</tbody></table>\n";
  }
  return o;
}

std::string tensor_tables(const std::vector<Run>& runs) {
  std::string o;
  for (const Run& r : runs) {
    if (r.tensors.empty()) continue;
    o += "<details><summary>" + h(r.label) + ": " + std::to_string(r.tensors.size()) +
         " tensors</summary>\n<table class=\"cmp\"><thead><tr><th>tensor</th><th>type</th>"
         "<th>bpw</th><th>rel. error</th><th>SQNR dB</th></tr></thead><tbody>\n";
    for (const TensorStat& t : r.tensors)
      o += "<tr><td>" + h(t.name) + "</td><td>" + h(t.type) + "</td><td class=\"num\">" +
           fmt_fixed(t.bits_per_weight, 3) + "</td><td class=\"num\">" + fmt_sig(t.rel_error) +
           "</td><td class=\"num\">" + fmt_fixed(t.sqnr_db, 2) + "</td></tr>\n";
    o += "</tbody></table></details>\n";
  }
  return o;
}

constexpr const char* kCss = R"css(
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif;
  margin: 0; background: #f5f6f8; color: #1d2330; font-size: 14px; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #b8c0cc; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08);
  padding: 12px 20px 18px; margin: 18px 0; }
h2 { font-size: 17px; margin: 6px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
p.note { color: #5b6576; margin: 0 0 10px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #e3e6eb; border-radius: 6px; }
.row > svg.xy, .row > svg.heatmap { flex: 1 1 440px; max-width: calc(50% - 6px); }
@media (max-width: 900px) { .row > svg.xy, .row > svg.heatmap { max-width: 100%; } }
svg.chart text { font-family: inherit; font-size: 11px; fill: #333; }
svg.chart text.ct { font-size: 13px; font-weight: 600; fill: #1d2330; }
svg.chart text.al { font-size: 12px; fill: #444; }
svg.chart text.pl { font-size: 12px; font-weight: 600; }
svg.chart text.cv { font-size: 10px; }
svg.chart text.muted { fill: #888; }
svg.chart .grid line { stroke: #e8eaee; stroke-width: 1; }
svg.chart .tk { stroke: #888; }
svg.chart .axis { stroke: #888; fill: none; }
svg.chart .ref { stroke: #888; stroke-dasharray: 5 4; }
table.cmp { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
table.cmp th, table.cmp td { padding: 6px 10px; border-bottom: 1px solid #e8eaee; text-align: left; }
table.cmp th { background: #f0f2f5; font-weight: 600; white-space: nowrap; }
table.cmp td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.cmp td.best { font-weight: 700; color: #00693e; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 700; }
.badge.pass { background: #d8f3e3; color: #0b6b3a; }
.badge.fail { background: #fde0dc; color: #a61b0f; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
footer { color: #7a8494; text-align: center; font-size: 12px; padding: 12px; }
)css";

}  // namespace

std::string render_report_html(const std::vector<Run>& runs, const HtmlOptions& opt) {
  const auto any = [&](const std::function<bool(const Run&)>& f) {
    return std::any_of(runs.begin(), runs.end(), f);
  };
  std::string labels;
  for (const Run& r : runs) labels += (labels.empty() ? "" : ", ") + r.label;
  std::string o = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
                  "<head>\n<meta charset=\"utf-8\"/>\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
                  "<title>" + h(opt.title) + "</title>\n<style>" + kCss + "</style>\n</head>\n"
                  "<body>\n<header><h1>" + h(opt.title) + "</h1><p>" +
                  std::to_string(runs.size()) + (runs.size() == 1 ? " run: " : " runs: ") +
                  h(labels) + "</p></header>\n<main>\n";
  o += "<section id=\"summary\"><h2>Comparison</h2>\n<p class=\"note\">Best value per column in "
       "bold green. Drift is measured against the reference model on the same tokens.</p>\n" +
       comparison_table(runs) + "</section>\n";
  const bool tradeoff_kld =
      any([](const Run& r) { return std::isfinite(r.bits_per_weight) && r.kld_mean > 0; });
  const bool tradeoff_ppl = any(
      [](const Run& r) { return std::isfinite(r.bits_per_weight) && std::isfinite(r.perplexity); });
  if (tradeoff_kld || tradeoff_ppl) {
    double ref = kNaN;
    for (const Run& r : runs) fill(ref, r.ref_perplexity);
    o += "<section id=\"tradeoff\"><h2>Accuracy vs size</h2>\n<p class=\"note\">Lower left is "
         "better: fewer bits per weight for less drift. Whiskers show one standard error.</p>\n"
         "<div class=\"row\">";
    if (tradeoff_kld)
      o += tradeoff_chart(
          runs, "KL divergence vs bits per weight", "mean KLD (nats/token)", true,
          [](const Run& r) { return r.kld_mean; }, [](const Run& r) { return r.kld_stderr; },
          kNaN, "");
    if (tradeoff_ppl)
      o += tradeoff_chart(
          runs, "Perplexity vs bits per weight", "perplexity", false,
          [](const Run& r) { return r.perplexity; }, nullptr, ref, "reference " + format_number(ref, 5));
    o += "</div></section>\n";
  }
  if (any([](const Run& r) { return !r.layers.empty(); }))
    o += "<section id=\"layers\"><h2>Per-layer drift</h2>\n<p class=\"note\">How far each "
         "block's output hidden state moves from the reference model's; errors usually grow "
         "with depth.</p>\n" +
         layer_charts(runs) + "</section>\n";
  if (any([](const Run& r) { return !r.tensors.empty(); }))
    o += "<section id=\"tensors\"><h2>Per-tensor quantization</h2>\n<p class=\"note\">SQNR = "
         "10 log10(||W||\xC2\xB2 / ||W - Q||\xC2\xB2); hover a point or cell for its "
         "tensor.</p>\n" +
         tensor_charts(runs) + tensor_tables(runs) + "</section>\n";
  if (any([](const Run& r) { return !r.curve.empty(); }))
    o += "<section id=\"distill\"><h2>Distillation</h2>\n<p class=\"note\">How fast the "
         "student approaches its teacher: the forward KL per held-out token (top-k buckets).</p>\n" +
         distill_charts(runs) + "</section>\n";
  if (any([](const Run& r) { return r.has_check; }))
    o += "<section id=\"budget\"><h2>Error budget</h2>\n" + check_section(runs) + "</section>\n";
  o += "<section id=\"sources\"><h2>Inputs</h2><ul>\n";
  for (const Run& r : runs)
    for (const auto& s : r.sources) o += "<li>" + h(r.label) + ": " + h(s) + "</li>\n";
  o += "</ul></section>\n</main>\n<footer>generated by dsq " + h(DSQ_VERSION) +
       "</footer>\n</body>\n</html>\n";
  return o;
}

RunInput parse_run_argument(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || std::filesystem::exists(arg)) {
    if (arg.empty()) throw UsageError("empty input file name");
    return {arg, ""};
  }
  RunInput in{arg.substr(eq + 1), arg.substr(0, eq)};
  if (in.label.empty() || in.path.empty())
    throw UsageError(strprintf("'%s': expected FILE or LABEL=FILE", arg.c_str()));
  return in;
}

std::vector<Run> write_report(const ReportOptions& opt) {
  if (opt.inputs.empty()) throw UsageError("no input reports");
  if (opt.out_path.empty()) throw UsageError("no output file (-o)");
  std::vector<Run> runs = load_runs(opt.inputs);
  write_file_atomic(opt.out_path, render_report_html(runs, opt.html));
  return runs;
}

}  // namespace dsq::report
