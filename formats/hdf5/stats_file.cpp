#include "formats/hdf5/stats_file.h"

#include <cmath>
#include <map>

#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::formats::hdf5 {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    const size_t next = s.find(',', pos);
    out.push_back(s.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return out;
}

}  // namespace

std::string stats_object(int64_t layer, const std::string& group) {
  return "blk." + std::to_string(layer) + "/" + group;
}

void write_stats_header(Writer& w, const StatsHeader& h) {
  w.set_attr("/", "dsq_stats_version", kStatsVersion);
  w.set_attr("/", "kind", h.kind);
  w.set_attr("/", "n_layers", h.n_layers);
  w.set_attr("/", "model", h.model);
  w.set_attr("/", "recipe", dump_json(h.recipe));
}

void write_input_stats(Writer& w, const InputStats& s) {
  const int64_t n = s.n_in;
  DSQ_ASSERT(static_cast<int64_t>(s.hessian.size()) == n * n &&
                 static_cast<int64_t>(s.abs_mean.size()) == n &&
                 static_cast<int64_t>(s.abs_max.size()) == n,
             "inconsistent InputStats for %s", s.group.c_str());
  const std::string obj = stats_object(s.layer, s.group);
  w.write_f64(obj + "/hessian", {n, n}, s.hessian.data());
  w.write_f64(obj + "/abs_mean", {n}, s.abs_mean.data());
  w.write_f64(obj + "/abs_max", {n}, s.abs_max.data());
  w.set_attr(obj, "linears", join(s.linears));
  w.set_attr(obj, "n_in", n);
  w.set_attr(obj, "n_tokens", s.n_tokens);
  if (s.routed_tokens >= 0) w.set_attr(obj, "routed_tokens", s.routed_tokens);
}

StatsHeader read_stats_header(const Reader& r) {
  const auto version = r.attr_int("/", "dsq_stats_version");
  if (!version) {
    throw FormatError("'" + r.path() +
                      "': not a dsq statistics file (no 'dsq_stats_version' attribute)");
  }
  if (*version != kStatsVersion) {
    throw FormatError("'" + r.path() + "': statistics version " + std::to_string(*version) +
                      " is not supported (expected " + std::to_string(kStatsVersion) + ")");
  }
  StatsHeader h;
  h.kind = r.attr_string("/", "kind").value_or("");
  h.n_layers = r.attr_int("/", "n_layers").value_or(-1);
  h.model = r.attr_string("/", "model").value_or("");
  const std::string recipe = r.attr_string("/", "recipe").value_or("{}");
  h.recipe = parse_json(recipe, r.path() + " (attribute recipe)");
  if (!h.recipe.is_object())
    throw FormatError("'" + r.path() + "': attribute 'recipe' is not a JSON object");
  // What the pipeline compares with its own recipe (calibration/pipeline.cpp) must be objects.
  if (const auto q = h.recipe.find("quantize"); q != h.recipe.end()) {
    const auto mo = q->is_object() ? q->find("method_options") : q->end();
    if (!q->is_object() || (mo != q->end() && !mo->is_object()))
      throw FormatError("'" + r.path() + "': attribute 'recipe': 'quantize' and its "
                        "'method_options' must be JSON objects");
  }
  if (h.n_layers < 0) throw FormatError("'" + r.path() + "': missing attribute 'n_layers'");
  return h;
}

InputStats read_input_stats(const Reader& r, int64_t layer, const std::string& group,
                            int64_t n_in) {
  const std::string obj = stats_object(layer, group);
  if (!r.is_group(obj)) {
    throw FormatError("'" + r.path() + "': no statistics for '" + obj +
                      "' (collected for another model?)");
  }
  InputStats s;
  s.layer = layer;
  s.group = group;
  s.linears = split(r.attr_string(obj, "linears").value_or(""));
  s.n_in = r.attr_int(obj, "n_in").value_or(-1);
  s.n_tokens = r.attr_int(obj, "n_tokens").value_or(-1);
  s.routed_tokens = r.attr_int(obj, "routed_tokens").value_or(-1);
  if (s.n_in != n_in) {
    throw ShapeError("'" + r.path() + "': '" + obj + "': n_in is " + std::to_string(s.n_in) +
                     ", the model needs " + std::to_string(n_in));
  }
  if (s.n_tokens <= 0) {
    throw FormatError("'" + r.path() + "': '" + obj + "': n_tokens must be positive, found " +
                      std::to_string(s.n_tokens));
  }
  s.hessian = r.read_f64(obj + "/hessian", Shape{n_in, n_in});
  s.abs_mean = r.read_f64(obj + "/abs_mean", Shape{n_in});
  s.abs_max = r.read_f64(obj + "/abs_max", Shape{n_in});
  return s;
}

void write_awq_search(Writer& w, int64_t layer, const std::string& group, const AwqSearch& a) {
  const std::string obj = stats_object(layer, group);
  w.write_f64(obj + "/awq_scales", {static_cast<int64_t>(a.scales.size())}, a.scales.data());
  w.set_attr(obj, "awq_alpha", a.alpha);
  for (const auto& c : a.clips) {
    DSQ_ASSERT(static_cast<int64_t>(c.ratios.size()) == c.rows * c.n_groups, "bad AwqClip %s",
               c.linear.c_str());
    w.write_f32(obj + "/awq_clip." + c.linear, {c.rows, c.n_groups}, c.ratios.data());
  }
}

std::optional<AwqSearch> read_awq_search(const Reader& r, int64_t layer, const std::string& group,
                                         int64_t n_in, const std::vector<AwqClip>& clip_shapes) {
  const std::string obj = stats_object(layer, group);
  if (!r.has(obj + "/awq_scales")) return std::nullopt;
  AwqSearch a;
  a.alpha = r.attr_double(obj, "awq_alpha").value_or(0.0);
  a.scales = r.read_f64(obj + "/awq_scales", Shape{n_in});
  for (const double s : a.scales)
    if (!(s > 0.0) || !std::isfinite(s))
      throw ShapeError("'" + r.path() + "': '" + obj + "/awq_scales': scales must be positive");
  for (const auto& shape : clip_shapes) {
    const std::string ds = obj + "/awq_clip." + shape.linear;
    if (!r.has(ds))
      throw FormatError("'" + r.path() + "': no AWQ clip ratios '" + ds + "'");
    const std::vector<double> v = r.read_f64(ds, Shape{shape.rows, shape.n_groups});
    AwqClip c = shape;
    c.ratios.assign(v.begin(), v.end());
    for (const float x : c.ratios)
      if (!(x > 0.0f && x <= 1.0f))
        throw ShapeError("'" + r.path() + "': '" + ds + "': clip ratios must be in (0, 1]");
    a.clips.push_back(std::move(c));
  }
  return a;
}

void write_sensitivity(Writer& w, const SensitivityTable& t) {
  w.set_attr("/", "sensitivity",
             dump_json(nlohmann::json{{"candidates", t.candidates}, {"method", t.method}}));
  const size_t k = t.candidates.size() + 1;
  std::map<int64_t, std::vector<const SensitivityTable::Linear*>> by_layer;
  for (const auto& l : t.linears) {
    int64_t layer = 0;
    DSQ_ASSERT(parse_block_name(l.name, &layer, nullptr), "not a block tensor: %s", l.name.c_str());
    DSQ_ASSERT(l.costs.size() + 1 == k, "sensitivity of %s: wrong width", l.name.c_str());
    by_layer[layer].push_back(&l);
  }
  for (const auto& [layer, ls] : by_layer) {
    const std::string obj = "blk." + std::to_string(layer);
    std::vector<double> m;
    std::vector<std::string> names, rtn;
    for (const auto* l : ls) {
      m.insert(m.end(), l->costs.begin(), l->costs.end());
      m.push_back(l->rtn_cost);
      names.push_back(l->name);
      rtn.push_back(l->rtn_scheme);
    }
    w.write_f64(obj + "/sensitivity", {static_cast<int64_t>(ls.size()), static_cast<int64_t>(k)},
                m.data());
    w.set_attr(obj, "sensitivity_linears", join(names));
    w.set_attr(obj, "sensitivity_rtn_schemes", join(rtn));
  }
}

std::optional<SensitivityTable> read_sensitivity(const Reader& r, int64_t n_layers) {
  const std::optional<std::string> head = r.attr_string("/", "sensitivity");
  if (!head) return std::nullopt;
  const std::string where = "'" + r.path() + "': sensitivity";
  const nlohmann::json j = parse_json(*head, r.path() + " (attribute sensitivity)");
  SensitivityTable t;
  try {
    t.candidates = j.at("candidates").get<std::vector<std::string>>();
    t.method = j.at("method").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": " + e.what());
  }
  const int64_t k = static_cast<int64_t>(t.candidates.size()) + 1;
  for (int64_t layer = 0; layer < n_layers; ++layer) {
    const std::string obj = "blk." + std::to_string(layer);
    if (!r.has(obj + "/sensitivity")) continue;
    const auto names = split(r.attr_string(obj, "sensitivity_linears").value_or(""));
    const auto rtn = split(r.attr_string(obj, "sensitivity_rtn_schemes").value_or(""));
    const int64_t n = static_cast<int64_t>(names.size());
    if (r.shape(obj + "/sensitivity") != Shape{n, k} || rtn.size() != names.size())
      throw ShapeError(where + ": " + obj + "/sensitivity does not match its " +
                       std::to_string(n) + " linears and " + std::to_string(k - 1) + " candidates");
    const std::vector<double> m = r.read_f64(obj + "/sensitivity");
    for (int64_t i = 0; i < n; ++i) {
      SensitivityTable::Linear l;
      l.name = names[static_cast<size_t>(i)];
      l.costs.assign(m.begin() + i * k, m.begin() + i * k + k - 1);
      l.rtn_cost = m[static_cast<size_t>(i * k + k - 1)];
      l.rtn_scheme = rtn[static_cast<size_t>(i)];
      for (double c : l.costs)
        if (!std::isfinite(c) || c < 0) throw FormatError(where + ": bad cost for '" + l.name + "'");
      if (!std::isfinite(l.rtn_cost) || l.rtn_cost < 0)
        throw FormatError(where + ": bad RTN cost for '" + l.name + "'");
      t.linears.push_back(std::move(l));
    }
  }
  return t;
}

}  // namespace dsq::formats::hdf5
