// JUnit XML: well-formed (parsed by tests/report/xml_check.h, and by xmllint when installed), one
// testcase per limit, failures marked, hostile text escaped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "lib/report/junit.h"
#include "lib/report/report_io.h"
#include "tests/report/xml_check.h"
#include "tests/test_util.h"

namespace dsq::report {
namespace {

using testing::XmlNode;
using testing::XmlParser;

std::vector<LimitResult> sample_results() {
  LimitResult a;
  a.name = "max_kld_mean";
  a.metric = "kld_mean";
  a.budget = 0.01;
  a.measured = 0.004;
  a.passed = true;
  LimitResult b;
  b.name = "max_layer_rel_error[blk.<1>&\"x\"]";
  b.metric = "rel_l2 of blk.<1>&\"x\"";
  b.budget = 0.05;
  b.measured = 0.07;
  b.detail = "worst blk.1 of 1";
  b.message = "layer blk.1 rel_l2 = 0.07 > budget 0.05 ]]> 'quoted'\ttab\nline\x01\xff";
  LimitResult c;
  c.name = "min_top1_agreement";
  c.metric = "top1_agreement";
  c.at_least = true;
  c.budget = 0.99;
  c.message = "top1_agreement is not in the eval report";
  return {a, b, c};
}

TEST(Junit, WellFormedOneTestcasePerLimitFailuresMarked) {
  const auto results = sample_results();
  JunitOptions opt;
  opt.suite_name = "gate <w4> & co";
  opt.time_seconds = 1.25;
  opt.properties = {{"model", "m&m's.dsq"}, {"budget", "b\"q\".json"}};
  opt.system_out = format_results_table(results);
  const std::string xml = junit_xml(results, opt);
  std::unique_ptr<XmlNode> root;
  ASSERT_NO_THROW(root = XmlParser::parse(xml)) << xml;
  EXPECT_EQ(root->name, "testsuites");
  EXPECT_EQ(root->attr("tests"), "3");
  EXPECT_EQ(root->attr("failures"), "2");
  const auto suites = root->all("testsuite");
  ASSERT_EQ(suites.size(), 1u);
  EXPECT_EQ(suites[0]->attr("name"), "gate <w4> & co");
  EXPECT_EQ(suites[0]->attr("time"), "1.250");
  const auto cases = root->all("testcase");
  ASSERT_EQ(cases.size(), 3u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(cases[i]->attr("name"), results[i].name);  // escaped and decoded back exactly
    EXPECT_EQ(cases[i]->attr("classname"), "dsq.check");
    EXPECT_EQ(cases[i]->child("failure") != nullptr, !results[i].passed);
  }
  const XmlNode* f = cases[1]->child("failure");
  // Attribute values keep tab and newline (as character references); the control byte and the
  // invalid UTF-8 byte become U+FFFD.
  EXPECT_EQ(f->attr("message"),
            "layer blk.1 rel_l2 = 0.07 > budget 0.05 ]]> 'quoted'\ttab\nline\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(f->attr("type"), "limit_exceeded");
  EXPECT_NE(f->text.find("measured: 0.07"), std::string::npos) << f->text;
  EXPECT_NE(f->text.find("detail: worst blk.1 of 1"), std::string::npos);
  EXPECT_NE(cases[2]->child("failure")->text.find("measured: missing"), std::string::npos);
  const auto props = root->all("property");
  ASSERT_EQ(props.size(), 2u);
  EXPECT_EQ(props[0]->attr("value"), "m&m's.dsq");
  EXPECT_EQ(props[1]->attr("value"), "b\"q\".json");
  ASSERT_NE(suites[0]->child("system-out"), nullptr);
  EXPECT_EQ(suites[0]->child("system-out")->text.substr(0, 5), "limit");

  // An independent parser agrees (xmllint from Debian's libxml2-utils, a test extra).
  if (std::system("command -v xmllint >/dev/null 2>&1") == 0) {
    testing::TempDir tmp;
    const std::string path = tmp.file("junit.xml");
    write_file_atomic(path, xml);
    EXPECT_EQ(std::system(("xmllint --noout '" + path + "'").c_str()), 0);
  } else if (testing::in_ci()) {
    ADD_FAILURE() << "xmllint missing in CI (scripts/install-test-extras.sh installs it)";
  }
}

TEST(Junit, AllPassingSuite) {
  auto results = sample_results();
  for (auto& r : results) {
    r.passed = true;
    r.message.clear();
  }
  const auto root = XmlParser::parse(junit_xml(results, {}));
  EXPECT_EQ(root->attr("failures"), "0");
  EXPECT_EQ(root->all("testcase").size(), 3u);
  EXPECT_TRUE(root->all("failure").empty());
  EXPECT_TRUE(root->all("properties").empty());
  EXPECT_EQ(root->all("testsuite")[0]->attr("name"), "dsq check");
}

// The checker itself must reject what is not well-formed, or the tests above prove nothing.
TEST(XmlCheck, RejectsMalformedDocuments) {
  const char* bad[] = {
      "<a><b></a></b>",          "<a>",          "<a></a><b/>",       "<a x=1/>",
      "<a x=\"1\" x=\"2\"/>",    "<a>&nbsp;</a>", "<a>&#1;</a>",       "<a>x < y</a>",
      "<a x=\"<\"/>",            "<a>\x01</a>",   "<a>\xff</a>",       "<a>]]></a>",
      "text",                    "<a>&amp</a>",   "<a x=\"1\"y=\"2\"/>",
  };
  for (const char* doc : bad) {
    SCOPED_TRACE(doc);
    EXPECT_THROW(XmlParser::parse(doc), std::runtime_error);
  }
  const auto ok = XmlParser::parse(
      "<?xml version=\"1.0\"?>\n<!DOCTYPE html>\n<!-- c --><a k='&lt;&#x41;&#66;'>t&amp;<b/><![CDATA[<x>]]></a>\n");
  EXPECT_EQ(ok->attr("k"), "<AB");
  EXPECT_EQ(ok->text, "t&<x>");
  EXPECT_EQ(ok->all("b").size(), 1u);
}

}  // namespace
}  // namespace dsq::report
