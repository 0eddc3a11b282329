// `dsq report` end to end: the binary writes the page, and headless Chromium renders it (DOM with
// the three methods and the SVG charts, plus a screenshot in the test output directory,
// <build>/test-output/report_render/). Chromium is a test extra
// (scripts/install-test-extras.sh): the test skips without it, except in CI where it must run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "lib/report/report_io.h"
#include "tests/report/shell_args.h"
#include "tests/report/report_fixtures.h"
#include "tests/report/xml_check.h"
#include "tests/test_util.h"
#include "tests/tools/cli_run.h"

namespace dsq::testing {
namespace {

namespace fs = std::filesystem;

const char* const kMethods[] = {"rtn", "gptq", "awq"};

// The Chromium binary ($DSQ_CHROMIUM, else chromium or chromium-browser on PATH); empty if none.
std::string find_chromium() {
  if (const char* env = std::getenv("DSQ_CHROMIUM")) return env;
  for (const char* name : {"chromium", "chromium-browser"}) {
    const std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return name;
  }
  return "";
}

#define REQUIRE_CHROMIUM(var)                                                                    \
  const std::string var = find_chromium();                                                       \
  if (var.empty()) {                                                                             \
    if (in_ci()) FAIL() << "chromium is missing but CI=true (scripts/install-test-extras.sh)";   \
    GTEST_SKIP() << "chromium not installed; run scripts/install-test-extras.sh to render the "  \
                    "report in headless Chromium";                                               \
  }

std::string output_dir() {
  const fs::path dir = fs::path(DSQ_BINARY_DIR) / "test-output" / "report_render";
  fs::create_directories(dir);
  return dir.string();
}

// Runs headless Chromium on `html` with one extra mode flag (--screenshot=... or --dump-dom);
// returns its exit code, stdout in *out.
int chromium(const std::string& bin, const TempDir& tmp, const std::string& html,
             const std::string& mode, std::string* out) {
  const std::string profile = tmp.file("chromium-profile");
  const std::string cmd =
      "timeout 180 " + shell_quote(bin) +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
      " --disable-background-networking --disable-component-update --disable-sync"
      " --disable-dev-shm-usage --hide-scrollbars --user-data-dir=" + shell_quote(profile) +
      " --window-size=1280,2000 " + mode + " " + shell_quote("file://" + html) + " >" +
      shell_quote(tmp.file("chromium.out")) + " 2>" + shell_quote(tmp.file("chromium.err"));
  const int status = std::system(cmd.c_str());
  *out = read_text(tmp.file("chromium.out"));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Width and height from a PNG's IHDR chunk; {0, 0} when the bytes are not a PNG.
std::pair<uint32_t, uint32_t> png_size(const std::string& png) {
  if (png.size() < 24 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return {0, 0};
  const auto be32 = [&](size_t i) {
    return (uint32_t(uint8_t(png[i])) << 24) | (uint32_t(uint8_t(png[i + 1])) << 16) |
           (uint32_t(uint8_t(png[i + 2])) << 8) | uint32_t(uint8_t(png[i + 3]));
  };
  return {be32(16), be32(20)};
}

// Writes a quantize and an eval report per method and renders them with `dsq report`.
std::string write_three_method_report(const TempDir& tmp) {
  std::vector<std::string> args = {"report", "--title", "stories260K: RTN vs GPTQ vs AWQ (fixture)"};
  for (const char* m : kMethods) {
    const std::string q = tmp.file(std::string(m) + ".quantize.json");
    const std::string e = tmp.file(std::string(m) + ".eval.json");
    report::write_file_atomic(q, quantize_fixture(m).dump(2));
    report::write_file_atomic(e, eval_fixture_for(m).dump(2));
    args.push_back(std::string(m) + "=" + q);
    args.push_back(std::string(m) + "=" + e);
  }
  const std::string html = tmp.file("report.html");
  args.push_back("-o");
  args.push_back(html);
  const CliRun r = run_dsq(tmp, shell_args(args));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("3 runs (rtn, gptq, awq)"), std::string::npos) << r.out;
  return html;
}

TEST(ReportRender, WritesAWellFormedPageAtomically) {
  TempDir tmp;
  const std::string html = write_three_method_report(tmp);
  ASSERT_TRUE(fs::exists(html));
  EXPECT_FALSE(fs::exists(html + ".tmp"));
  const auto root = XmlParser::parse(read_text(html));
  EXPECT_GE(root->all("svg").size(), 10u);  // 2 trade-off + 2 layer + 3 tensor charts + 3 maps
  // Errors exit 1 (input) or 2 (usage) and leave no output behind.
  const std::string out = tmp.file("bad.html");
  report::write_file_atomic(tmp.file("other.json"), "{\"hello\": 1}");
  CliRun r = run_dsq(tmp, shell_args({"report", tmp.file("other.json"), "-o", out}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a dsq eval, check, quantize or distill report"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  r = run_dsq(tmp, shell_args({"report", "=x.json", "-o", out}));
  EXPECT_EQ(r.code, 2);
  r = run_dsq(tmp, shell_args({"report", tmp.file("rtn.eval.json")}));  // no -o
  EXPECT_EQ(r.code, 2);
}

TEST(ReportRender, RendersInHeadlessChromium) {
  REQUIRE_CHROMIUM(bin);
  TempDir tmp;
  const std::string html = write_three_method_report(tmp);
  const std::string dir = output_dir();
  fs::copy_file(html, dir + "/report.html", fs::copy_options::overwrite_existing);

  std::string dom;
  ASSERT_EQ(chromium(bin, tmp, html, "--dump-dom", &dom), 0) << read_text(tmp.file("chromium.err"));
  // The rendered DOM has the comparison table rows and every chart as an <svg>, with one series
  // per method.
  size_t svgs = 0, at = 0;
  while ((at = dom.find("<svg", at)) != std::string::npos) ++svgs, ++at;
  EXPECT_GE(svgs, 10u) << dom.substr(0, 2000);
  for (const char* m : kMethods) {
    SCOPED_TRACE(m);
    EXPECT_NE(dom.find(std::string("</span>") + m + "</td>"), std::string::npos);
    EXPECT_NE(dom.find(std::string("data-series=\"") + m + "\""), std::string::npos);
    EXPECT_NE(dom.find(std::string(m) + ": SQNR by block and tensor"), std::string::npos);
  }

  const std::string png = dir + "/report.png";
  fs::remove(png);
  std::string ignored;
  ASSERT_EQ(chromium(bin, tmp, html, "--screenshot=" + shell_quote(png), &ignored), 0)
      << read_text(tmp.file("chromium.err"));
  const std::string bytes = read_text(png);
  EXPECT_EQ(png_size(bytes), std::make_pair(1280u, 2000u));
  // A blank page compresses to a few KiB; charts, tables and text make it much larger.
  EXPECT_GT(bytes.size(), 60000u);
  std::printf("screenshot: %s (%zu bytes)\n", png.c_str(), bytes.size());
}

// The real thing: stories260K quantized W4 g32 with RTN, GPTQ and AWQ, each evaluated against the
// f32 model, rendered into one report that Chromium shows with every method's row and series.
TEST(ReportRender, Stories260KMethodsRenderInChromium) {
  DSQ_REQUIRE_SHARED(shared);
  REQUIRE_CHROMIUM(bin);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf";
  const std::vector<std::string> methods = {"rtn", "gptq", "awq"};

  std::vector<std::string> report_args = {"report", "--title", "stories260K W4 g32"};
  for (const auto& m : methods) {
    SCOPED_TRACE(m);
    const std::string model = tmp.file(m + ".dsq"), q = tmp.file(m + ".quantize.json"),
                      e = tmp.file(m + ".eval.json");
    std::vector<std::string> args = {"-q", "quantize", hf, "-o", model, "--bits", "4", "--group",
                                     "32", "--method", m, "--json", q};
    if (m != "rtn") {
      const std::vector<std::string> calib = {
          "--calib", shared + "/data/tinystories-calib.stories260K.u32", "--calib-samples", "8",
          "--calib-len", "128"};
      args.insert(args.end(), calib.begin(), calib.end());
    }
    CliRun r = run_dsq(tmp, shell_args(args));
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_dsq(tmp, shell_args({"-q", "eval", model, "--ref", hf, "--tokens",
                                 shared + "/data/tinystories-eval.stories260K.u32", "--ctx",
                                 "512", "--bos", "--max-tokens", "2048", "--json", e}));
    ASSERT_EQ(r.code, 0) << r.err;
    report_args.push_back(m + "=" + q);
    report_args.push_back(m + "=" + e);
  }
  const std::string html = tmp.file("stories260K.html");
  report_args.push_back("-o");
  report_args.push_back(html);
  const CliRun r = run_dsq(tmp, shell_args(report_args));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string dir = output_dir();
  fs::copy_file(html, dir + "/stories260K.html", fs::copy_options::overwrite_existing);

  std::string dom;
  ASSERT_EQ(chromium(bin, tmp, html, "--dump-dom", &dom), 0);
  for (const auto& m : methods) {
    SCOPED_TRACE(m);
    EXPECT_NE(dom.find("</span>" + m + "</td>"), std::string::npos);  // comparison row
    EXPECT_NE(dom.find("data-series=\"" + m + "\""), std::string::npos);  // chart series
  }
  std::string ignored;
  const std::string png = dir + "/stories260K.png";
  ASSERT_EQ(chromium(bin, tmp, html, "--screenshot=" + shell_quote(png), &ignored), 0);
  EXPECT_EQ(png_size(read_text(png)), std::make_pair(1280u, 2000u));
}

}  // namespace
}  // namespace dsq::testing
