#include "lib/report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "lib/core/error.h"
#include "lib/report/report_io.h"

namespace dsq::report {

namespace {

constexpr const char* kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#E69F00", "#56B4E9", "#000000", "#8C6D31"};
constexpr double kCharWidth = 6.6;  // average glyph width at font-size 11, for layout only

std::string esc(const std::string& s) { return escape_markup(s, true); }

// Coordinates rounded to 0.1 px keep the SVG small and the bytes stable.
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-9) return "0";
  if (std::fabs(v) >= 1e6 || std::fabs(step) < 1e-4) return format_number(v, 3);
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return strprintf("%.*f", decimals, v);
}

std::string log_tick_label(double v) {
  char buf[32];
  if (v >= 1e-3 && v < 1e5) std::snprintf(buf, sizeof buf, "%g", v);
  else std::snprintf(buf, sizeof buf, "1e%d", static_cast<int>(std::lround(std::log10(v))));
  return buf;
}

// A marker shape per series (circle, square, triangle, diamond), so series differ without colour.
std::string marker(size_t series, double x, double y, const char* color,
                   const std::string& tip) {
  std::string m;
  const std::string fill = "fill=\"" + std::string(color) + "\" stroke=\"#fff\" stroke-width=\"1\"";
  switch (series % 4) {
    case 0:
      m = "<circle cx=\"" + px(x) + "\" cy=\"" + px(y) + "\" r=\"4\" " + fill;
      break;
    case 1:
      m = "<rect x=\"" + px(x - 3.6) + "\" y=\"" + px(y - 3.6) +
          "\" width=\"7.2\" height=\"7.2\" " + fill;
      break;
    case 2:
      m = "<path d=\"M" + px(x) + " " + px(y - 4.8) + "L" + px(x + 4.4) + " " + px(y + 3.4) +
          "L" + px(x - 4.4) + " " + px(y + 3.4) + "Z\" " + fill;
      break;
    default:
      m = "<path d=\"M" + px(x) + " " + px(y - 5) + "L" + px(x + 4.4) + " " + px(y) + "L" +
          px(x) + " " + px(y + 5) + "L" + px(x - 4.4) + " " + px(y) + "Z\" " + fill;
      break;
  }
  if (tip.empty()) return m + "/>";
  return m + "><title>" + escape_markup(tip) + "</title></" +
         (series % 4 == 0 ? "circle" : series % 4 == 1 ? "rect" : "path") + ">";
}

std::string svg_open(int w, int h, const std::string& title, const char* cls) {
  return strprintf("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart %s\" viewBox=\"0 0 %d %d\" "
                   "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
                   cls, w, h, w, h) +
         esc(title) + "\"><title>" + escape_markup(title) + "</title>\n";
}

std::string text(double x, double y, const std::string& s, const char* extra = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"" + (*extra ? " " : "") + extra + ">" +
         escape_markup(s) + "</text>\n";
}

}  // namespace

const char* series_color(size_t i) { return kPalette[i % (sizeof kPalette / sizeof *kPalette)]; }

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  // Ticks are integer multiples k * step (no accumulated rounding), from below lo to above hi.
  const auto k0 = static_cast<int64_t>(std::floor(lo / step + 1e-9));
  const auto k1 = std::max(k0 + 1, static_cast<int64_t>(std::ceil(hi / step - 1e-9)));
  std::vector<double> t;
  for (int64_t k = k0; k <= k1 && t.size() <= 100; ++k) t.push_back(static_cast<double>(k) * step);
  return t;
}

std::string render_xy_chart(const XYChart& c) {
  // Data range (in axis space: log10 for a log axis).
  const auto ty = [&](double v) { return c.log_y ? std::log10(v) : v; };
  const auto usable = [&](double v) { return std::isfinite(v) && (!c.log_y || v > 0); };
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  size_t n_points = 0;
  for (const auto& s : c.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !usable(s.y[i])) continue;
      ++n_points;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      double lo = s.y[i], hi = s.y[i];
      if (i < s.y_err.size() && std::isfinite(s.y_err[i])) {
        hi += s.y_err[i];
        if (!c.log_y || lo - s.y_err[i] > 0) lo -= s.y_err[i];
      }
      y_lo = std::min(y_lo, ty(lo));
      y_hi = std::max(y_hi, ty(hi));
    }
  }
  std::string o = svg_open(c.width, c.height, c.title, "xy");
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  o += text(12, 20, c.title, "class=\"ct\"");
  if (n_points == 0) {
    o += text(c.width / 2.0, c.height / 2.0, "no data", "text-anchor=\"middle\" class=\"muted\"");
    return o + "</svg>\n";
  }
  if (c.y_ref && usable(*c.y_ref)) {
    y_lo = std::min(y_lo, ty(*c.y_ref));
    y_hi = std::max(y_hi, ty(*c.y_ref));
  }

  // Legend rows under the title.
  const double left = 66, right = 18, bottom = 50;
  double lx = left, ly = 40;
  std::string legend;
  const auto style_of = [&](size_t i) {
    return c.series[i].style >= 0 ? static_cast<size_t>(c.series[i].style) : i;
  };
  const auto color_of = [&](size_t i) {
    return c.series[i].color.empty() ? std::string(series_color(style_of(i))) : c.series[i].color;
  };
  const auto dash_of = [&](size_t i) {
    return std::string(c.series[i].dashed ? "\" stroke-dasharray=\"6 4" : "");
  };
  for (size_t i = 0; i < c.series.size(); ++i) {
    const double w = 26 + kCharWidth * static_cast<double>(c.series[i].name.size()) + 16;
    if (lx + w > c.width - right && lx > left) {
      lx = left;
      ly += 18;
    }
    legend += "<g class=\"lg\">";
    if (c.series[i].lines)
      legend += "<line x1=\"" + px(lx) + "\" y1=\"" + px(ly - 4) + "\" x2=\"" + px(lx + 20) +
                "\" y2=\"" + px(ly - 4) + "\" stroke=\"" + color_of(i) + dash_of(i) +
                "\" stroke-width=\"2\"/>";
    legend += marker(style_of(i), lx + 10, ly - 4, color_of(i).c_str(), "");
    legend += text(lx + 26, ly, c.series[i].name);
    legend += "</g>\n";
    lx += w;
  }
  o += legend;
  const double top = ly + 14;
  const double x0 = left, x1 = c.width - right, y0 = top, y1 = c.height - bottom;

  // Axes.
  std::vector<double> yt;
  if (c.log_y) {
    const int d0 = static_cast<int>(std::floor(y_lo + 1e-9)), d1 = static_cast<int>(std::ceil(y_hi - 1e-9));
    for (int d = d0; d <= std::max(d1, d0 + 1); ++d) {
      yt.push_back(d);
      if (d1 - d0 <= 2 && d < std::max(d1, d0 + 1)) {
        yt.push_back(d + std::log10(2.0));
        yt.push_back(d + std::log10(5.0));
      }
    }
  } else {
    yt = nice_ticks(y_lo, y_hi, 5);
  }
  const double ya = yt.front(), yb = yt.back();
  double xa = x_lo, xb = x_hi;
  if (!(xb > xa)) {
    xa -= 0.5;
    xb += 0.5;
  }
  const double xpad = (xb - xa) * 0.04 + (c.integer_x ? 0.3 : 0);
  xa -= xpad;
  xb += xpad;
  const auto X = [&](double v) { return x0 + (v - xa) / (xb - xa) * (x1 - x0); };
  const auto Y = [&](double v) { return y1 - (v - ya) / (yb - ya) * (y1 - y0); };

  o += "<g class=\"grid\">";
  for (const double v : yt)
    o += "<line x1=\"" + px(x0) + "\" y1=\"" + px(Y(v)) + "\" x2=\"" + px(x1) + "\" y2=\"" +
         px(Y(v)) + "\"/>";
  o += "</g>\n<g class=\"tick\">";
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (const double v : yt)
    o += text(x0 - 6, Y(v) + 4,
              c.log_y ? log_tick_label(std::pow(10.0, v)) : tick_label(v, ystep),
              "text-anchor=\"end\"");
  // x ticks: categorical labels, or nice numbers (integers only when asked).
  std::vector<std::pair<double, std::string>> xt = c.x_ticks;
  if (xt.empty()) {
    std::vector<double> v = nice_ticks(x_lo, x_hi, std::min(8, static_cast<int>(c.width / 80)));
    const double step = v.size() > 1 ? v[1] - v[0] : 1;
    for (const double t : v) {
      if (t < xa || t > xb) continue;
      if (c.integer_x && (step < 1 || t != std::floor(t))) continue;
      xt.emplace_back(t, tick_label(t, step));
    }
    if (c.integer_x && xt.empty())
      for (double t = std::ceil(x_lo); t <= x_hi; t += 1) xt.emplace_back(t, tick_label(t, 1));
  }
  for (const auto& [v, label] : xt) {
    o += "<line class=\"tk\" x1=\"" + px(X(v)) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(X(v)) +
         "\" y2=\"" + px(y1 + 4) + "\"/>";
    o += text(X(v), y1 + 16, label, "text-anchor=\"middle\"");
  }
  o += "</g>\n";
  o += "<path class=\"axis\" d=\"M" + px(x0) + " " + px(y0) + "V" + px(y1) + "H" + px(x1) +
       "\"/>\n";
  o += text(x0 + (x1 - x0) / 2, c.height - 10, c.x_label, "text-anchor=\"middle\" class=\"al\"");
  o += "<text class=\"al\" text-anchor=\"middle\" transform=\"translate(14 " +
       px(y0 + (y1 - y0) / 2) + ") rotate(-90)\">" + escape_markup(c.y_label) + "</text>\n";
  if (c.y_ref && usable(*c.y_ref)) {
    const double y = Y(ty(*c.y_ref));
    o += "<line class=\"ref\" x1=\"" + px(x0) + "\" y1=\"" + px(y) + "\" x2=\"" + px(x1) +
         "\" y2=\"" + px(y) + "\"/>";
    o += text(x1 - 4, y - 4, c.y_ref_label, "text-anchor=\"end\" class=\"muted\"");
  }

  // Series: lines first, then whiskers and markers on top.
  for (size_t si = 0; si < c.series.size(); ++si) {
    const Series& s = c.series[si];
    const std::string color_str = color_of(si);
    const char* color = color_str.c_str();
    o += "<g class=\"series\" data-series=\"" + esc(s.name) + "\">";
    if (s.lines) {
      std::string d;
      bool pen = false;
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !usable(s.y[i])) {
          pen = false;
          continue;
        }
        d += pen ? 'L' : 'M';  // appended separately: GCC 12 -Wrestrict false positive
        d += px(X(s.x[i]));
        d += ' ';
        d += px(Y(ty(s.y[i])));
        pen = true;
      }
      if (!d.empty())
        o += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + color_str + dash_of(si) +
             "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>";
    }
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !usable(s.y[i])) continue;
      const double cx = X(s.x[i]), cy = Y(ty(s.y[i]));
      if (i < s.y_err.size() && std::isfinite(s.y_err[i]) && s.y_err[i] > 0) {
        const double lo = s.y[i] - s.y_err[i];
        const double ylo = c.log_y && lo <= 0 ? y1 : Y(ty(lo));
        const double yhi = Y(ty(s.y[i] + s.y_err[i]));
        o += "<path d=\"M" + px(cx - 4) + " " + px(yhi) + "H" + px(cx + 4) + "M" + px(cx) + " " +
             px(yhi) + "V" + px(ylo) + "M" + px(cx - 4) + " " + px(ylo) + "H" + px(cx + 4) +
             "\" stroke=\"" + color + "\" stroke-width=\"1.5\" fill=\"none\"/>";
      }
      if (s.markers)
        o += marker(style_of(si), cx, cy, color, i < s.tips.size() ? s.tips[i] : s.name);
      if (s.label_points) o += text(cx + 8, cy - 7, s.name, "class=\"pl\"");
    }
    o += "</g>\n";
  }
  return o + "</svg>\n";
}

namespace {

// Viridis, sampled at 5 stops and interpolated linearly: t in [0, 1] -> "#rrggbb".
std::string viridis(double t, bool* light) {
  static constexpr double kStops[5][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  double rgb[3];
  for (int k = 0; k < 3; ++k) rgb[k] = kStops[i][k] + (kStops[i + 1][k] - kStops[i][k]) * f;
  *light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140;
  return strprintf("#%02x%02x%02x", static_cast<int>(std::lround(rgb[0])),
                   static_cast<int>(std::lround(rgb[1])), static_cast<int>(std::lround(rgb[2])));
}

}  // namespace

std::string render_heatmap(const Heatmap& h) {
  const size_t rows = h.row_labels.size(), cols = h.col_labels.size();
  DSQ_ASSERT(h.values.size() == rows * cols, "heatmap: %zu values for %zu x %zu", h.values.size(),
             rows, cols);
  size_t row_chars = 4, col_chars = 4;
  for (const auto& r : h.row_labels) row_chars = std::max(row_chars, r.size());
  for (const auto& c : h.col_labels) col_chars = std::max(col_chars, c.size());
  const double cw = std::max<double>(h.cell_width, kCharWidth * col_chars + 8);
  const double ch = h.cell_height;
  const double left = kCharWidth * row_chars + 16, top = 48;
  const double grid_w = cw * cols, grid_h = ch * rows;
  const int width = static_cast<int>(left + grid_w + 110);
  const int height = static_cast<int>(top + std::max(grid_h, 140.0) + 16);

  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const double v : h.values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (h.range) std::tie(lo, hi) = *h.range;
  const auto norm = [&](double v) {
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return h.higher_is_better ? t : 1 - t;
  };

  std::string o = svg_open(width, height, h.title, "heatmap");
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  o += text(12, 20, h.title, "class=\"ct\"");
  o += "<g class=\"tick\">";
  for (size_t c = 0; c < cols; ++c)
    o += text(left + cw * (c + 0.5), top - 8, h.col_labels[c], "text-anchor=\"middle\"");
  for (size_t r = 0; r < rows; ++r)
    o += text(left - 8, top + ch * (r + 0.5) + 4, h.row_labels[r], "text-anchor=\"end\"");
  o += "</g>\n<g class=\"cells\">";
  const bool show_values = ch >= 16 && cw >= 40;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const double v = h.values[r * cols + c];
      const double x = left + cw * c, y = top + ch * r;
      if (!std::isfinite(v)) {
        o += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(cw - 1) +
             "\" height=\"" + px(ch - 1) + "\" fill=\"#f0f0f0\"/>";
        continue;
      }
      bool light = false;
      const std::string fill = viridis(norm(v), &light);
      o += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(cw - 1) +
           "\" height=\"" + px(ch - 1) + "\" fill=\"" + fill + "\"><title>" +
           escape_markup(h.row_labels[r] + " " + h.col_labels[c] + ": " + format_number(v, 4) +
                         " " + h.value_label) +
           "</title></rect>";
      if (show_values)
        o += "<text x=\"" + px(x + cw / 2) + "\" y=\"" + px(y + ch / 2 + 4) +
             "\" text-anchor=\"middle\" class=\"cv\" fill=\"" + (light ? "#000" : "#fff") + "\">" +
             format_number(v, 3) + "</text>";
    }
  }
  o += "</g>\n";
  // Colour bar: ten discrete steps (no gradient ids, which would clash between inline SVGs).
  const double bx = left + grid_w + 24, bh = 120;
  for (int i = 0; i < 10; ++i) {
    bool light = false;
    const double t = 1 - i / 9.0;
    const std::string fill = viridis(t, &light);  // top = brightest = best
    o += "<rect x=\"" + px(bx) + "\" y=\"" + px(top + bh * i / 10) + "\" width=\"14\" height=\"" +
         px(bh / 10 + 0.5) + "\" fill=\"" + fill + "\"/>";
  }
  o += "<g class=\"tick\">";
  o += text(bx + 20, top + 8, format_number(h.higher_is_better ? hi : lo, 3));
  o += text(bx + 20, top + bh, format_number(h.higher_is_better ? lo : hi, 3));
  o += text(bx, top + bh + 18, h.value_label);
  o += "</g>\n";
  return o + "</svg>\n";
}

}  // namespace dsq::report
