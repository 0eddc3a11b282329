// SVG charts: tick choice, point placement (linear and log axes), heat map colours.
#include <gtest/gtest.h>

#include <cmath>

#include "lib/report/svg_chart.h"
#include "tests/report/xml_check.h"

namespace dsq::report {
namespace {

using testing::XmlNode;
using testing::XmlParser;

TEST(SvgChart, NiceTicksCoverTheRangeWithRoundSteps) {
  const double ranges[][2] = {{0, 1}, {0.9991, 0.99998}, {3.7, 4.3}, {-5, 12}, {0, 1e6}, {2, 2}};
  for (const auto& r : ranges) {
    SCOPED_TRACE(r[0]);
    const auto t = nice_ticks(r[0], r[1], 5);
    ASSERT_GE(t.size(), 3u);
    EXPECT_LE(t.size(), 12u);
    const double eps = 1e-9 * std::max(1.0, r[1] - r[0]);  // rounding of k * step
    EXPECT_LE(t.front(), r[0] + eps);
    EXPECT_GE(t.back(), r[1] - eps);
    const double step = t[1] - t[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 ||
                std::fabs(mantissa - 5) < 1e-6)
        << step;
    for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-6);
  }
}

std::vector<std::pair<double, double>> circle_centres(const XmlNode& svg) {
  std::vector<std::pair<double, double>> out;
  for (const XmlNode* c : svg.all("circle"))
    out.emplace_back(std::stod(c->attr("cx")), std::stod(c->attr("cy")));
  return out;
}

TEST(SvgChart, PointsArePlacedLinearlyOrLogarithmically) {
  XYChart c;
  c.title = "t";
  Series s;
  s.name = "a";
  s.x = {0, 1, 2, 3};
  s.y = {0.001, 0.01, 0.1, 1};
  c.series = {s};
  c.log_y = true;
  auto root = XmlParser::parse(render_xy_chart(c));
  auto p = circle_centres(*root);
  ASSERT_EQ(p.size(), 5u);  // 4 points + the legend marker (first)
  p.erase(p.begin());
  // Equal ratios -> equal vertical spacing on a log axis; equal x steps -> equal spacing.
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_NEAR(p[i + 1].second - p[i].second, p[1].second - p[0].second, 0.2);
    EXPECT_NEAR(p[i + 1].first - p[i].first, p[1].first - p[0].first, 0.2);
  }
  EXPECT_LT(p[3].second, p[0].second);  // larger values are higher up

  c.log_y = false;
  c.series[0].y = {1, 2, 4, 8};
  root = XmlParser::parse(render_xy_chart(c));
  p = circle_centres(*root);
  p.erase(p.begin());
  const double unit = p[0].second - p[1].second;
  EXPECT_GT(unit, 0);
  EXPECT_NEAR(p[1].second - p[2].second, 2 * unit, 0.2);
  EXPECT_NEAR(p[2].second - p[3].second, 4 * unit, 0.2);
}

TEST(SvgChart, GapsAndEmptyCharts) {
  XYChart c;
  c.title = "gaps";
  Series s;
  s.name = "a";
  s.x = {0, 1, 2, 3, 4};
  s.y = {1, 2, NAN, 3, 4};
  c.series = {s};
  const auto root = XmlParser::parse(render_xy_chart(c));
  std::string line;
  for (const XmlNode* g : root->all("g"))
    if (g->attr("class") == "series") line = g->all("path").at(0)->attr("d");
  // Two pen-down runs around the NaN.
  EXPECT_EQ(std::count(line.begin(), line.end(), 'M'), 2);
  EXPECT_EQ(std::count(line.begin(), line.end(), 'L'), 2);

  c.series[0].y = {NAN, NAN, NAN, NAN, NAN};
  const std::string empty = render_xy_chart(c);
  EXPECT_NE(empty.find("no data"), std::string::npos);
  EXPECT_NO_THROW(XmlParser::parse(empty));
}

TEST(SvgChart, HeatmapColoursBestCellsBrightest) {
  Heatmap h;
  h.title = "h";
  h.row_labels = {"blk.0", "blk.1"};
  h.col_labels = {"attn_q", "ffn_down"};
  h.values = {10, 20, 30, NAN};
  h.value_label = "dB";
  auto fills = [&] {
    std::vector<std::string> f;
    const auto root = XmlParser::parse(render_heatmap(h));
    for (const XmlNode* g : root->all("g"))
      if (g->attr("class") == "cells")
        for (const XmlNode* r : g->all("rect")) f.push_back(r->attr("fill"));
    return f;
  };
  auto f = fills();
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[2], "#fde725");  // highest SQNR: brightest
  EXPECT_EQ(f[0], "#440154");  // lowest: darkest
  EXPECT_EQ(f[3], "#f0f0f0");  // NaN: empty cell
  h.higher_is_better = false;
  f = fills();
  EXPECT_EQ(f[0], "#fde725");
  EXPECT_EQ(f[2], "#440154");
}

}  // namespace
}  // namespace dsq::report
