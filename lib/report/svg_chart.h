// Inline SVG charts for the HTML report: x/y line and scatter charts and heat maps, drawn as plain
// SVG elements (no script), with hover tooltips through <title>. Output is deterministic: the same
// data gives the same bytes. All text is escaped.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dsq::report {

// The i-th series colour (Okabe-Ito palette, readable by colour-blind viewers; cycles).
const char* series_color(size_t i);

struct Series {
  std::string name;
  std::vector<double> x, y;        // same length; NaN y = gap (not drawn)
  std::vector<double> y_err;       // optional (empty or same length): +- whisker per point
  std::vector<std::string> tips;   // optional (empty or same length): tooltip per point
  bool lines = true;               // connect consecutive points
  bool markers = true;             // draw a marker per point
  bool label_points = false;       // write the series name beside each point (scatter charts)
  int style = -1;       // palette colour and marker shape index; -1 = the series' position
  std::string color;    // overrides the palette colour when set ("#999999")
  bool dashed = false;  // dashed connecting line
};

struct XYChart {
  std::string title;
  std::string x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;  // logarithmic y axis (non-positive values are dropped)
  // Categorical x ticks (value, label), e.g. the first tensor of each block; empty = numeric ticks.
  std::vector<std::pair<double, std::string>> x_ticks;
  bool integer_x = false;  // numeric x ticks at integers only (block indices)
  std::optional<double> y_ref;  // a dashed horizontal reference line (e.g. a budget)
  std::string y_ref_label;
  int width = 640, height = 340;  // SVG viewBox size (the SVG scales to its container)
};

// Renders an <svg> element. A chart with no finite point renders a "no data" placeholder.
std::string render_xy_chart(const XYChart& c);

struct Heatmap {
  std::string title;
  std::vector<std::string> row_labels, col_labels;
  std::vector<double> values;  // [rows, cols] row-major; NaN = empty cell
  std::string value_label;     // shown in the colour bar and tooltips, e.g. "SQNR dB"
  bool higher_is_better = true;  // bright = good either way
  // Colour scale [lo, hi]; unset = the finite values' range. Set it to compare several maps.
  std::optional<std::pair<double, double>> range;
  int cell_width = 56, cell_height = 22;
};

std::string render_heatmap(const Heatmap& h);

// "Nice" axis ticks covering [lo, hi] with about `target` intervals (1, 2, 5 x 10^k steps).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace dsq::report
