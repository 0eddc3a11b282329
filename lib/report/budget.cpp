#include "lib/report/budget.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <system_error>

#include "lib/core/error.h"
#include "lib/report/report_io.h"

namespace dsq::report {

const std::vector<std::string_view> kScalarLimitNames = {
    "max_kld_mean",  "max_kld_p99",         "min_top1_agreement",
    "max_ppl_ratio", "max_bits_per_weight", "max_file_bytes"};

namespace {

constexpr std::string_view kLayerLimitName = "max_layer_rel_error";

// Escapes a key for a JSON pointer (RFC 6901): '~' -> "~0", '/' -> "~1".
std::string pointer_token(std::string_view key) {
  std::string out;
  for (const char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

class BudgetParser {
 public:
  explicit BudgetParser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ConfigError(strprintf("'%s': %s: %s", source_.c_str(), path.empty() ? "/" : path.c_str(),
                                what.c_str()));
  }

  void expect_type(const nlohmann::json& j, const std::string& path, bool ok,
                   const char* expected) const {
    if (!ok) fail(path, strprintf("expected %s, got %s", expected, json_type_name(j).c_str()));
  }

  // Rejects keys outside `allowed` (unknown keys are errors: a typo must not disable a limit).
  void check_keys(const nlohmann::json& obj, const std::string& path,
                  const std::vector<std::string_view>& allowed) const {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool known = false;
      for (const auto a : allowed) known = known || it.key() == a;
      if (!known) {
        std::string list;
        for (const auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(path + "/" + pointer_token(it.key()),
             strprintf("unknown key '%s' (expected one of: %s)", it.key().c_str(), list.c_str()));
      }
    }
  }

  double number(const nlohmann::json& j, const std::string& path, double lo, double hi) const {
    expect_type(j, path, j.is_number(), "a number");
    const double v = j.get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) {
      if (std::isinf(hi)) fail(path, strprintf("expected a number >= %g, got %g", lo, v));
      fail(path, strprintf("expected a number in [%g, %g], got %g", lo, hi, v));
    }
    return v;
  }

  std::string string(const nlohmann::json& j, const std::string& path, bool non_empty) const {
    expect_type(j, path, j.is_string(), "a string");
    std::string s = j.get<std::string>();
    if (non_empty && s.empty()) fail(path, "expected a non-empty string");
    return s;
  }

  Budget parse(const nlohmann::json& j) const {
    Budget b;
    b.source = source_;
    expect_type(j, "", j.is_object(), "an object");
    check_keys(j, "", {"$schema", "name", "description", "limits"});
    if (j.contains("$schema")) string(j["$schema"], "/$schema", false);
    if (j.contains("name")) b.name = string(j["name"], "/name", false);
    if (j.contains("description")) b.description = string(j["description"], "/description", false);
    if (!j.contains("limits")) fail("", "missing required key 'limits'");
    const nlohmann::json& lim = j["limits"];
    expect_type(lim, "/limits", lim.is_object(), "an object");
    std::vector<std::string_view> allowed = kScalarLimitNames;
    allowed.push_back(kLayerLimitName);
    check_keys(lim, "/limits", allowed);
    if (lim.empty()) fail("/limits", "no limits set (expected at least one)");

    constexpr double kInf = std::numeric_limits<double>::infinity();
    const auto opt = [&](const char* key, double lo, double hi) -> std::optional<double> {
      if (!lim.contains(key)) return std::nullopt;
      return number(lim[key], std::string("/limits/") + key, lo, hi);
    };
    b.max_kld_mean = opt("max_kld_mean", 0, kInf);
    b.max_kld_p99 = opt("max_kld_p99", 0, kInf);
    b.min_top1_agreement = opt("min_top1_agreement", 0, 1);
    b.max_ppl_ratio = opt("max_ppl_ratio", 0, kInf);
    b.max_bits_per_weight = opt("max_bits_per_weight", 0, kInf);
    if (lim.contains("max_file_bytes")) {
      const auto& v = lim["max_file_bytes"];
      const char* path = "/limits/max_file_bytes";
      // 2^53: every integer up to here is exact in a double (and so in any JSON parser).
      const double x = number(v, path, 0, 9007199254740992.0);
      if (x != std::floor(x)) fail(path, strprintf("expected an integer, got %g", x));
      b.max_file_bytes = static_cast<int64_t>(x);
    }
    if (lim.contains(kLayerLimitName)) {
      const std::string base = "/limits/" + std::string(kLayerLimitName);
      const auto& arr = lim[kLayerLimitName];
      expect_type(arr, base, arr.is_array(), "an array");
      if (arr.empty()) fail(base, "expected at least one {\"pattern\", \"max\"} entry");
      for (size_t i = 0; i < arr.size(); ++i) {
        const std::string p = base + "/" + std::to_string(i);
        const auto& e = arr[i];
        expect_type(e, p, e.is_object(), "an object");
        check_keys(e, p, {"pattern", "max"});
        if (!e.contains("pattern")) fail(p, "missing required key 'pattern'");
        if (!e.contains("max")) fail(p, "missing required key 'max'");
        LayerLimit l;
        l.pattern = string(e["pattern"], p + "/pattern", true);
        l.max = number(e["max"], p + "/max", 0, kInf);
        b.max_layer_rel_error.push_back(std::move(l));
      }
    }
    return b;
  }

 private:
  std::string source_;
};

// A finite-or-NaN number at top level of the report, or nullopt when absent or not a number.
std::optional<double> report_number(const nlohmann::json& r, const char* key) {
  if (!r.is_object()) return std::nullopt;
  const auto it = r.find(key);
  if (it == r.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

LimitResult compare(std::string name, std::string metric, bool at_least, double budget,
                    std::optional<double> measured) {
  LimitResult r;
  r.name = std::move(name);
  r.metric = std::move(metric);
  r.at_least = at_least;
  r.budget = budget;
  r.measured = measured;
  if (!measured) {
    r.message = strprintf("%s is not in the eval report", r.metric.c_str());
  } else if (std::isnan(*measured)) {
    r.message = strprintf("%s is NaN", r.metric.c_str());
  } else {
    r.passed = at_least ? *measured >= budget : *measured <= budget;
    if (!r.passed)
      r.message = strprintf("%s = %s %s budget %s", r.metric.c_str(),
                            format_number(*measured, 6).c_str(), at_least ? "<" : ">",
                            format_number(budget, 6).c_str());
  }
  return r;
}

// The layers of an eval report as (name, rel_l2) pairs; entries without a rel_l2 number get NaN.
std::vector<std::pair<std::string, double>> report_layers(const nlohmann::json& r) {
  std::vector<std::pair<std::string, double>> out;
  if (!r.is_object() || !r.contains("layers") || !r["layers"].is_array()) return out;
  for (const auto& l : r["layers"]) {
    if (!l.is_object()) continue;
    std::string name;
    if (l.contains("layer") && l["layer"].is_number_integer())
      name = "blk." + std::to_string(l["layer"].get<int64_t>());
    else if (l.contains("layer") && l["layer"].is_string())
      name = l["layer"].get<std::string>();
    else if (l.contains("name") && l["name"].is_string())
      name = l["name"].get<std::string>();
    else
      continue;
    const auto v = report_number(l, "rel_l2");
    out.emplace_back(std::move(name), v ? *v : std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

}  // namespace

Budget parse_budget(const nlohmann::json& j, const std::string& source) {
  return BudgetParser(source).parse(j);
}

Budget load_budget(const std::string& path) { return parse_budget(read_json_file(path), path); }

std::vector<LimitResult> check_budget(const Budget& b, const nlohmann::json& report,
                                      const ModelFacts& facts) {
  std::vector<LimitResult> out;
  if (b.max_kld_mean)
    out.push_back(compare("max_kld_mean", "kld_mean", false, *b.max_kld_mean,
                          report_number(report, "kld_mean")));
  if (b.max_kld_p99)
    out.push_back(compare("max_kld_p99", "kld_p99", false, *b.max_kld_p99,
                          report_number(report, "kld_p99")));
  if (b.min_top1_agreement)
    out.push_back(compare("min_top1_agreement", "top1_agreement", true, *b.min_top1_agreement,
                          report_number(report, "top1_agreement")));
  if (b.max_ppl_ratio) {
    std::optional<double> ratio = report_number(report, "ppl_ratio");
    const auto ppl = report_number(report, "perplexity");
    const auto ref = report_number(report, "ref_perplexity");
    if (!ratio && ppl && ref && *ref > 0) ratio = *ppl / *ref;
    out.push_back(compare("max_ppl_ratio", "ppl_ratio", false, *b.max_ppl_ratio, ratio));
  }
  if (b.max_bits_per_weight) {
    std::optional<double> bpw = report_number(report, "bits_per_weight");
    if (!bpw) bpw = facts.bits_per_weight;
    out.push_back(compare("max_bits_per_weight", "bits_per_weight", false, *b.max_bits_per_weight,
                          bpw));
  }
  if (b.max_file_bytes) {
    std::optional<double> bytes;
    if (facts.file_bytes) bytes = static_cast<double>(*facts.file_bytes);
    else bytes = report_number(report, "file_bytes");
    auto r = compare("max_file_bytes", "file_bytes", false, static_cast<double>(*b.max_file_bytes),
                     bytes);
    if (!bytes) r.message = "file_bytes unknown (no model file given)";
    out.push_back(std::move(r));
  }
  const auto layers = report_layers(report);
  for (const auto& l : b.max_layer_rel_error) {
    const std::string name = std::string(kLayerLimitName) + "[" + l.pattern + "]";
    const std::string metric = "rel_l2 of " + l.pattern;
    std::optional<double> worst;
    std::string worst_name;
    int matched = 0;
    bool have_nan = false;  // an unmeasurable layer wins: it must fail the limit
    for (const auto& [lname, v] : layers) {
      if (!glob_match(l.pattern, lname)) continue;
      ++matched;
      if (have_nan) continue;
      have_nan = std::isnan(v);
      if (have_nan || !worst || v > *worst) {
        worst = v;
        worst_name = lname;
      }
    }
    LimitResult r = compare(name, metric, false, l.max, worst);
    if (matched == 0) {
      r.message = layers.empty() ? "the eval report has no per-layer drift"
                                 : strprintf("pattern '%s' matches none of the %zu layers",
                                             l.pattern.c_str(), layers.size());
    } else {
      r.detail = strprintf("worst %s of %d", worst_name.c_str(), matched);
      if (!r.passed && !std::isnan(*worst))
        r.message = strprintf("layer %s rel_l2 = %s > budget %s", worst_name.c_str(),
                              format_number(*worst, 6).c_str(), format_number(l.max, 6).c_str());
      else if (!r.passed)
        r.message = strprintf("layer %s rel_l2 is missing or NaN", worst_name.c_str());
    }
    out.push_back(std::move(r));
  }
  return out;
}

ModelFacts model_facts(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw IoError(strprintf("'%s': no such file or directory", path.c_str()));
  ModelFacts f;
  if (fs::is_directory(st)) {
    int64_t total = 0;
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
         it.increment(ec))
      if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
    if (ec) throw IoError(strprintf("'%s': cannot list: %s", path.c_str(), ec.message().c_str()));
    f.file_bytes = total;
  } else {
    f.file_bytes = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec) throw IoError(strprintf("'%s': cannot stat: %s", path.c_str(), ec.message().c_str()));
  }
  return f;
}

bool all_passed(const std::vector<LimitResult>& results) { return count_failed(results) == 0; }

int count_failed(const std::vector<LimitResult>& results) {
  int n = 0;
  for (const auto& r : results) n += r.passed ? 0 : 1;
  return n;
}

namespace {

std::string measured_text(const LimitResult& r) {
  if (!r.measured) return "missing";
  if (r.name == "max_file_bytes") return strprintf("%.0f", *r.measured);
  return format_number(*r.measured, 6);
}

std::string budget_text(const LimitResult& r) {
  if (r.name == "max_file_bytes") return strprintf("%.0f", r.budget);
  return format_number(r.budget, 6);
}

}  // namespace

std::string format_results_table(const std::vector<LimitResult>& results) {
  size_t w_name = 5, w_meas = 8, w_budget = 6;
  for (const auto& r : results) {
    w_name = std::max(w_name, r.name.size());
    w_meas = std::max(w_meas, measured_text(r).size());
    w_budget = std::max(w_budget, budget_text(r).size());
  }
  const auto row = [&](const std::string& a, const std::string& b, const std::string& op,
                       const std::string& c, const std::string& d, const std::string& e) {
    std::string line = strprintf("%-*s  %*s  %-2s  %-*s  %-6s", static_cast<int>(w_name),
                                 a.c_str(), static_cast<int>(w_meas), b.c_str(), op.c_str(),
                                 static_cast<int>(w_budget), c.c_str(), d.c_str());
    if (!e.empty()) line += "  " + e;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out = row("limit", "measured", "", "budget", "result", "");
  for (const auto& r : results) {
    std::string note = r.detail;
    if (!r.passed) note = r.message + (r.detail.empty() ? "" : " (" + r.detail + ")");
    out += row(r.name, measured_text(r), r.at_least ? ">=" : "<=", budget_text(r),
               r.passed ? "pass" : "FAIL", note);
  }
  const int failed = count_failed(results);
  if (failed == 0)
    out += strprintf("all %zu limits hold\n", results.size());
  else
    out += strprintf("%d of %zu limits exceeded\n", failed, results.size());
  return out;
}

nlohmann::json results_to_json(const Budget& budget, const std::vector<LimitResult>& results) {
  nlohmann::json limits = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json e = {{"name", r.name},   {"metric", r.metric},
                        {"op", r.at_least ? ">=" : "<="},
                        {"budget", r.budget}, {"passed", r.passed}};
    e["measured"] = r.measured && std::isfinite(*r.measured) ? nlohmann::json(*r.measured)
                                                             : nlohmann::json(nullptr);
    if (!r.detail.empty()) e["detail"] = r.detail;
    if (!r.message.empty()) e["message"] = r.message;
    limits.push_back(std::move(e));
  }
  nlohmann::json j = {{"budget", budget.source},
                      {"passed", all_passed(results)},
                      {"failed", count_failed(results)},
                      {"limits", std::move(limits)}};
  if (!budget.name.empty()) j["name"] = budget.name;
  return j;
}

bool glob_match(std::string_view pattern, std::string_view name) {
  // Iterative matcher with single-star backtracking: O(|pattern| * |name|) worst case.
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace dsq::report
