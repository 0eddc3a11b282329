// The HTML report: run detection and labels, merging, and a page that is well-formed, offline,
// escaped, and has one chart series per run.
#include <gtest/gtest.h>

#include <fstream>

#include "lib/core/error.h"
#include "lib/report/html_report.h"
#include "lib/report/report_io.h"
#include "tests/report/report_fixtures.h"
#include "tests/report/xml_check.h"
#include "tests/test_util.h"

namespace dsq::report {
namespace {

using nlohmann::json;
using testing::XmlNode;
using testing::XmlParser;

const char* const kMethods[] = {"rtn", "gptq", "awq"};

std::vector<report::Run> three_runs() {
  std::vector<report::Run> runs;
  for (const char* m : kMethods) {
    report::Run r;
    r.label = m;
    merge_report(r, testing::quantize_fixture(m), std::string(m) + ".quant.json");
    merge_report(r, testing::eval_fixture_for(m), std::string(m) + ".eval.json");
    runs.push_back(std::move(r));
  }
  return runs;
}

// The <svg> elements whose aria-label contains `title`.
std::vector<const XmlNode*> charts(const XmlNode& root, const std::string& title) {
  std::vector<const XmlNode*> out;
  for (const XmlNode* s : root.all("svg"))
    if (s->attr("aria-label").find(title) != std::string::npos) out.push_back(s);
  return out;
}

TEST(HtmlReport, RunLabels) {
  EXPECT_EQ(run_label({{"label", "mine"}, {"method", "rtn"}}, "x.json"), "mine");
  EXPECT_EQ(run_label({{"method", "gptq"}, {"bits", 4}, {"group", 128}}, "x.json"), "gptq w4g128");
  EXPECT_EQ(run_label({{"recipe", {{"method", "awq"}, {"bits", 3}}}}, "x.json"), "awq w3");
  EXPECT_EQ(run_label({{"perplexity", 3.8}}, "/tmp/out/rtn-w4.eval.json"), "rtn-w4");
  EXPECT_EQ(run_label({{"perplexity", 3.8}}, ".hidden"), ".hidden");
}

TEST(HtmlReport, MergesEvalAndQuantizeReports) {
  const auto runs = three_runs();
  const report::Run& r = runs[0];
  EXPECT_EQ(r.method, "rtn");
  EXPECT_EQ(r.bits, 4);
  EXPECT_EQ(r.group, 32);
  EXPECT_EQ(r.tensors.size(), 35u);
  EXPECT_EQ(r.layers.size(), 5u);
  EXPECT_EQ(r.tensors[8].layer, 1);
  EXPECT_EQ(r.tensors[8].kind, "attn_k");
  EXPECT_EQ(r.layers[3].index, 3);
  EXPECT_DOUBLE_EQ(r.kld_mean, 1.8 * 0.02);
  EXPECT_EQ(r.tensors[8].type, "int4_asym g32");  // token_embd (not quantized) left out
  // The quantized linears' bpw wins over the eval report's whole-file figure, in either order.
  EXPECT_DOUBLE_EQ(r.bits_per_weight, 4.75);
  report::Run rev;
  merge_report(rev, testing::eval_fixture_for("rtn"), "e.json");
  merge_report(rev, testing::quantize_fixture("rtn"), "q.json");
  EXPECT_DOUBLE_EQ(rev.bits_per_weight, 4.75);
  EXPECT_DOUBLE_EQ(rev.file_bytes, 304000);
  EXPECT_EQ(r.sources.size(), 2u);

  // SQNR is derived from the relative error when a quantize report has no sqnr_db; the ppl ratio
  // from the two perplexities.
  report::Run d;
  merge_report(d,
               {{"tensors", json::array({{{"name", "output.weight"}, {"rel_error", 0.001}}})},
                {"perplexity", 4.0},
                {"ref_perplexity", 3.2},
                {"layers", json::array({{{"layer", "blk.7"}, {"rel_l2", 0.1}}})}},
               "d.json");
  EXPECT_NEAR(d.tensors[0].sqnr_db, 30.0, 1e-9);
  EXPECT_EQ(d.tensors[0].layer, -1);
  EXPECT_DOUBLE_EQ(d.ppl_ratio, 1.25);
  EXPECT_EQ(d.layers[0].index, 7);
  EXPECT_TRUE(std::isnan(d.kld_mean));

  report::Run bad;
  try {
    merge_report(bad, {{"hello", 1}}, "other.json");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'other.json': not a dsq eval, check, quantize or distill report"),
              std::string::npos);
  }
  // A check section whose "passed" fields are not booleans is drawn as failed, not an exception.
  report::Run odd;
  json ev = testing::eval_fixture_for("rtn");
  ev["check"] = {{"passed", 1}, {"limits", json::array({{{"name", "kld_mean"}, {"passed", "yes"}}})}};
  merge_report(odd, ev, "odd.json");
  EXPECT_TRUE(odd.has_check);
  EXPECT_FALSE(odd.check_passed);
  ASSERT_EQ(odd.check.size(), 1u);
  EXPECT_FALSE(odd.check[0].passed);
}

// A mixed-precision run (several schemes, linears kept in f16) gets the bits-per-block chart
// and a bits heat map; uniform runs do not.
TEST(HtmlReport, MixedPrecisionRunsShowBitsPerBlock) {
  json tensors = json::array();
  for (int l = 0; l < 3; ++l)
    for (const char* k : {"attn_q", "ffn_down"}) {
      const bool kept = l == 0 && std::string(k) == "attn_q";
      const double bpw = kept ? 16.0 : (l == 2 ? 8.25 : 4.25);
      tensors.push_back({{"name", "blk." + std::to_string(l) + "." + k + ".weight"},
                         {"quantized", !kept},
                         {"scheme", kept ? "f16" : (l == 2 ? "int8_sym_g64" : "int4_sym_g64")},
                         {"bits_per_weight", bpw},
                         {"params", 100},
                         {"rel_err", kept ? 0.0 : 1e-3}});
    }
  tensors.push_back({{"name", "blk.0.attn_norm.weight"}, {"quantized", false}, {"dtype", "f32"}});
  report::Run mixed;
  mixed.label = "mixed";
  merge_report(mixed, {{"tensors", tensors}}, "m.json");
  EXPECT_EQ(mixed.tensors.size(), 6u);  // the kept linear in, the norm out
  report::Run uniform;
  uniform.label = "uniform";
  merge_report(uniform, testing::quantize_fixture("rtn"), "u.json");
  const std::string page = render_report_html({mixed, uniform}, {});
  std::unique_ptr<XmlNode> root;
  ASSERT_NO_THROW(root = XmlParser::parse(page));
  const auto per_block = charts(*root, "Bits per weight of each block");
  ASSERT_EQ(per_block.size(), 1u);
  EXPECT_NE(page.find("text-anchor=\"middle\">2</text>"), std::string::npos);  // block ticks
  EXPECT_EQ(page.find("text-anchor=\"middle\">0.2</text>"), std::string::npos);
  EXPECT_NE(page.find("mixed blk.0: 10.12 bpw"), std::string::npos);  // (16 + 4.25) / 2
  EXPECT_NE(page.find("mixed blk.2: 8.25 bpw"), std::string::npos);
  EXPECT_EQ(page.find("uniform blk.0:"), std::string::npos);
  EXPECT_NE(page.find("mixed: bits per weight by block and tensor"), std::string::npos);
  EXPECT_EQ(page.find("uniform: bits per weight by block and tensor"), std::string::npos);
  // A page of uniform runs has neither.
  const std::string plain = render_report_html({uniform}, {});
  EXPECT_EQ(plain.find("Bits per weight of each block"), std::string::npos);
}

TEST(HtmlReport, LoadRunsMergesEqualLabels) {
  testing::TempDir tmp;
  std::vector<RunInput> inputs;
  for (const char* m : kMethods) {
    const std::string q = tmp.file(std::string(m) + ".quant.json");
    const std::string e = tmp.file(std::string(m) + ".eval.json");
    write_file_atomic(q, testing::quantize_fixture(m).dump());
    write_file_atomic(e, testing::eval_fixture_for(m).dump());
    inputs.push_back({q, ""});  // label from "method": "rtn w4g32"
    inputs.push_back({e, std::string(m) + " w4g32"});
  }
  const auto runs = load_runs(inputs);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[1].label, "gptq w4g32");
  EXPECT_EQ(runs[1].sources.size(), 2u);
  EXPECT_FALSE(runs[1].tensors.empty());
  EXPECT_FALSE(runs[1].layers.empty());
  EXPECT_THROW(load_runs({{tmp.file("nope.json"), ""}}), IoError);
}

TEST(HtmlReport, PageIsWellFormedOfflineAndComparesRuns) {
  const auto runs = three_runs();
  const std::string html = render_report_html(runs, {});
  std::unique_ptr<XmlNode> root;
  ASSERT_NO_THROW(root = XmlParser::parse(html));
  EXPECT_EQ(root->name, "html");
  // Offline: no script, no external resource; the only URLs are XML namespaces.
  EXPECT_TRUE(root->all("script").empty());
  EXPECT_TRUE(root->all("link").empty());
  EXPECT_TRUE(root->all("img").empty());
  size_t at = 0, urls = 0;
  while ((at = html.find("http", at)) != std::string::npos) {
    const bool ns = html.compare(at, 26, "http://www.w3.org/2000/svg") == 0 ||
                    html.compare(at, 28, "http://www.w3.org/1999/xhtml") == 0;
    urls += ns ? 0 : 1;
    ++at;
  }
  EXPECT_EQ(urls, 0u);

  // Comparison table: one row per run, best KLD (GPTQ) highlighted.
  const XmlNode* table = nullptr;
  for (const XmlNode* t : root->all("table"))
    if (t->attr("class") == "cmp") {
      table = t;
      break;
    }
  ASSERT_NE(table, nullptr);
  const auto rows = table->child("tbody")->all("tr");
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(rows[i]->children[0]->text, kMethods[i]);
  EXPECT_EQ(rows[0]->children.size(), 11u);  // run + 10 value columns; no method column (= label)
  size_t best_in_gptq = 0, best_in_rtn = 0;
  for (const XmlNode* td : rows[1]->all("td")) best_in_gptq += td->attr("class") == "num best";
  for (const XmlNode* td : rows[0]->all("td")) best_in_rtn += td->attr("class") == "num best";
  EXPECT_EQ(best_in_gptq, 6u);  // PPL, ratio, KLD mean/p99/max, top-1
  EXPECT_EQ(best_in_rtn, 0u);   // bpw, size and tok/s tie across the three runs: no highlight

  // Every chart that compares runs has one series group per run, labelled with the run.
  for (const char* title : {"KL divergence vs bits per weight", "Perplexity vs bits per weight",
                            "Relative L2 error", "Cosine similarity", "SQNR of each",
                            "Bits per weight of each", "Mean SQNR by tensor kind"}) {
    SCOPED_TRACE(title);
    const auto found = charts(*root, title);
    ASSERT_EQ(found.size(), 1u);
    std::vector<std::string> series;
    for (const XmlNode* g : found[0]->all("g"))
      if (g->attr("class") == "series") series.push_back(g->attr("data-series"));
    EXPECT_EQ(series, std::vector<std::string>({"rtn", "gptq", "awq"}));
  }
  // The output-error chart exists for the calibrated run only, with RTN's error as a baseline,
  // drawn in GPTQ's colour (palette index 1) and a neutral dashed line.
  {
    const auto found = charts(*root, "Output error of each linear");
    ASSERT_EQ(found.size(), 1u);
    std::vector<std::string> series;
    std::vector<std::string> strokes;
    for (const XmlNode* g : found[0]->all("g"))
      if (g->attr("class") == "series") {
        series.push_back(g->attr("data-series"));
        strokes.push_back(g->all("path").at(0)->attr("stroke"));
      }
    EXPECT_EQ(series, std::vector<std::string>({"gptq", "gptq: RTN on the same inputs"}));
    EXPECT_EQ(strokes[0], "#D55E00");
    EXPECT_EQ(strokes[1], "#9aa3ad");
  }
  // One SQNR heat map per run, with a cell per (block, kind).
  for (const char* m : kMethods) {
    const auto hm = charts(*root, std::string(m) + ": SQNR by block and tensor");
    ASSERT_EQ(hm.size(), 1u);
    size_t cells = 0, brightest = 0;
    for (const XmlNode* g : hm[0]->all("g"))
      if (g->attr("class") == "cells") {
        cells = g->all("rect").size();
        for (const XmlNode* r : g->all("rect")) brightest += r->attr("fill") == "#fde725";
      }
    EXPECT_EQ(cells, 35u);
    // One colour scale for all runs: only the best run (GPTQ) reaches the brightest colour.
    EXPECT_EQ(brightest, std::string(m) == "gptq" ? 1u : 0u);
  }
  // Deterministic bytes.
  EXPECT_EQ(render_report_html(runs, {}), html);
}

TEST(HtmlReport, ScatterPointsFollowTheData) {
  const auto root = XmlParser::parse(render_report_html(three_runs(), {}));
  const XmlNode* kld = charts(*root, "KL divergence vs bits per weight").at(0);
  // One marker per run; worse KLD (RTN 1.8x, AWQ 1.3x, GPTQ 1x) sits higher (smaller y).
  std::map<std::string, double> y;
  for (const XmlNode* g : kld->all("g")) {
    if (g->attr("class") != "series") continue;
    const auto circles = g->all("circle"), rects = g->all("rect"), paths = g->all("path");
    double cy = NAN;
    if (!circles.empty()) cy = std::stod(circles[0]->attr("cy"));
    else if (!rects.empty()) cy = std::stod(rects[0]->attr("y")) + 3.6;
    else {
      // Triangle marker: "M<x> <y-4.8>L..." after the error-bar path.
      const std::string d = paths.back()->attr("d");
      cy = std::stod(d.substr(d.find(' ') + 1)) + 4.8;
    }
    y[g->attr("data-series")] = cy;
  }
  ASSERT_EQ(y.size(), 3u);
  EXPECT_LT(y["rtn"], y["awq"]);
  EXPECT_LT(y["awq"], y["gptq"]);
}

TEST(HtmlReport, EscapesHostileLabelsAndSkipsEmptySections) {
  report::Run r;
  r.label = "<script>alert('x')</script> & \"co\"";
  merge_report(r, {{"perplexity", 5.0}, {"ref_perplexity", 4.0}}, "evil<>.json");
  const std::string html = render_report_html({r}, {"report <1>"});
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  const auto root = XmlParser::parse(html);
  EXPECT_EQ(root->child("head")->child("title")->text, "report <1>");
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"),
            std::string::npos);
  // No layer, tensor or budget data: those sections are left out; no bpw, so no trade-off chart.
  std::vector<std::string> ids;
  for (const XmlNode* s : root->all("section")) ids.push_back(s->attr("id"));
  EXPECT_EQ(ids, std::vector<std::string>({"summary", "sources"}));
}

TEST(HtmlReport, CheckReportsShowTheGate) {
  json j = testing::eval_fixture_for("rtn");
  j["check"] = {{"budget", "b.json"},
                {"passed", false},
                {"failed", 1},
                {"limits", json::array({{{"name", "max_kld_mean"},
                                         {"op", "<="},
                                         {"budget", 0.01},
                                         {"measured", 0.036},
                                         {"passed", false},
                                         {"message", "kld_mean = 0.036 > budget 0.01"}},
                                        {{"name", "min_top1_agreement"},
                                         {"op", ">="},
                                         {"budget", 0.9},
                                         {"measured", 0.93},
                                         {"passed", true}}})}};
  report::Run r;
  r.label = "rtn";
  merge_report(r, j, "rtn.check.json");
  ASSERT_TRUE(r.has_check);
  EXPECT_FALSE(r.check_passed);
  ASSERT_EQ(r.check.size(), 2u);
  const auto root = XmlParser::parse(render_report_html({r}, {}));
  const XmlNode* budget = nullptr;
  for (const XmlNode* s : root->all("section"))
    if (s->attr("id") == "budget") budget = s;
  ASSERT_NE(budget, nullptr);
  const auto rows = budget->child("table")->child("tbody")->all("tr");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]->children[4]->child("span")->text, "FAIL");
  EXPECT_EQ(rows[1]->children[4]->child("span")->text, "pass");
}

}  // namespace
TEST(HtmlReport, DistillRunsDrawTheirHeldOutCurve) {
  // The shape of `dsq distill --json`: a curve of held-out KL every few steps.
  json j = {{"loss", "forward-kl"}, {"file_bytes", 909568}, {"curve", json::array()}};
  const double kl[] = {0.58, 0.31, 0.2, 0.15};
  for (int i = 0; i < 4; ++i)
    j["curve"].push_back({{"step", 100 * i}, {"tokens", 204800 * i}, {"minutes", 0.4 * i},
                          {"train_loss", i ? kl[i] + 0.01 : 0.0}, {"heldout_kl", kl[i]}});
  report::Run r;
  r.label = "healed";
  merge_report(r, j, "d.json");
  ASSERT_EQ(r.curve.size(), 4u);
  EXPECT_EQ(r.curve[2].tokens, 409600);
  EXPECT_EQ(r.curve[3].heldout_kl, 0.15);
  const std::string html = render_report_html({r}, {"distill"});
  const auto root = XmlParser::parse(html);
  std::vector<std::string> ids;
  for (const XmlNode* s : root->all("section")) ids.push_back(s->attr("id"));
  EXPECT_EQ(ids, std::vector<std::string>({"summary", "distill", "sources"}));
  // Both charts, with a tooltip per point naming its step and value.
  EXPECT_NE(html.find("Held-out KL vs tokens trained"), std::string::npos);
  EXPECT_NE(html.find("Held-out KL vs minutes of training"), std::string::npos);
  EXPECT_NE(html.find("healed step 300: held-out KL 0.15"), std::string::npos);
}

}  // namespace dsq::report
