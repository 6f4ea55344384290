#include "sluice/report/html_report.h"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::report {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

nlohmann::json Fixture(const std::string& name) {
  std::ifstream in(std::string(SLUICE_REPORT_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// Return the <svg> element with `id`, or "" when there is none.
std::string SvgById(const std::string& html, const std::string& id) {
  const size_t start = html.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  return html.substr(start, html.find("</svg>", start) + 6 - start);
}

TEST(HtmlReportTest, Version2ReportHasEveryChart) {
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(Fixture("run_v2.json")));
  for (const char* id :
       {"chart-dag", "chart-throughput", "chart-memory", "chart-cpu", "chart-phases",
        "chart-hist-orders-batch_rows", "chart-hist-orders-request_latency",
        "chart-hist-s3_archive-batch_latency", "chart-hist-s3_archive-request_latency"}) {
    const std::string svg = SvgById(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_THAT(svg, HasSubstr(std::string("<title id=\"") + id + "-title\">")) << id;
  }
  EXPECT_THAT(SvgById(html, "chart-throughput"), HasSubstr("s3_archive (rows in)"));
  EXPECT_THAT(SvgById(html, "chart-throughput"), HasSubstr("orders (rows out)"));
  EXPECT_THAT(SvgById(html, "chart-memory"), HasSubstr("memory budget limit"));
  EXPECT_THAT(html, Not(HasSubstr("class=\"note\"")));
}

TEST(HtmlReportTest, HeaderBottleneckTableAndAlerts) {
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(Fixture("run_v2.json")));
  EXPECT_THAT(html, HasSubstr("<title>sluice run report: orders_archive (2026-11-24T22:36:40-"));
  EXPECT_THAT(html, HasSubstr("<span class=\"badge status-ok\">ok</span>"));
  EXPECT_THAT(html, HasSubstr("<dt>Rows read</dt><dd>1,099,621</dd>"));
  EXPECT_THAT(html, HasSubstr("<dt>Peak RSS</dt><dd>262 MiB</dd>"));
  EXPECT_THAT(html, HasSubstr("<dt>CPU user + sys</dt><dd>78.4 s + 6.9 s</dd>"));
  EXPECT_THAT(html, HasSubstr("Limiting node: <span class=\"bottleneck-node\">s3_archive</span>"));
  EXPECT_THAT(html, HasSubstr("sink backpressure: &#39;s3_archive&#39; is busy"));
  EXPECT_THAT(SvgById(html, "chart-dag"), HasSubstr("class=\"node bottleneck\"><title>s3_archive"));
  EXPECT_THAT(html, HasSubstr("<tr class=\"bottleneck\"><td>s3_archive</td>"));
  EXPECT_THAT(html, HasSubstr("batches closed by rows 118 timeout 2, deleted_rows=1,099,621"));
  EXPECT_THAT(html, HasSubstr("<td>slow_batches</td><td>s3_archive</td>"));
  EXPECT_THAT(html, HasSubstr("still firing"));
}

TEST(HtmlReportTest, Version1ReportShowsNotesInsteadOfEmptyCharts) {
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(Fixture("run_v1.json")));
  for (const char* note :
       {"note-throughput", "note-memory", "note-cpu", "note-histograms", "note-alerts"}) {
    EXPECT_THAT(html, HasSubstr(std::string("id=\"") + note + "\"")) << note;
  }
  for (const char* absent : {"chart-throughput", "chart-memory", "chart-cpu", "chart-hist-"}) {
    EXPECT_THAT(html, Not(HasSubstr(absent))) << absent;
  }
  EXPECT_FALSE(SvgById(html, "chart-dag").empty());
  EXPECT_THAT(SvgById(html, "chart-dag"), HasSubstr("edges unknown"));
  EXPECT_FALSE(SvgById(html, "chart-phases").empty());  // v1 has phases_s.
  EXPECT_THAT(html, HasSubstr("<dt>CPU</dt><dd>not recorded</dd>"));
}

TEST(HtmlReportTest, NoPhasesGivesANote) {
  auto run = Fixture("run_v1.json");
  for (auto& n : run["nodes"]) n["phases_s"] = nlohmann::json::object();
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(run));
  EXPECT_THAT(html, HasSubstr("id=\"note-phases\""));
  EXPECT_THAT(html, Not(HasSubstr("chart-phases")));
}

TEST(HtmlReportTest, EscapesEveryTextFromTheReport) {
  auto run = Fixture("run_v2.json");
  const std::string evil = "<script>alert(1)</script>&x";
  run["nodes"][3]["id"] = evil;
  run["nodes"][3]["type"] = "<b>t</b>";
  run["pipeline"] = "p<i>";
  run["status"] = "failed";
  run["error"] = "io_error: can't open \"<file>\" & give up";
  run["timeseries"]["nodes"][evil] = run["timeseries"]["nodes"]["s3_archive"];
  run["timeseries"]["nodes"].erase("s3_archive");
  run["alerts"][0]["node"] = evil;
  run["alerts"][0]["message"] = evil;
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(run));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<b>t")));
  EXPECT_THAT(html, Not(HasSubstr("p<i>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;&amp;x"));
  EXPECT_THAT(html, HasSubstr("io_error: can&#39;t open &quot;&lt;file&gt;&quot; &amp; give up"));
  EXPECT_THAT(html, HasSubstr("<span class=\"badge status-failed\">failed</span>"));
  // The id of its histograms keeps only safe characters.
  EXPECT_FALSE(SvgById(html, "chart-hist-_script_alert_1___script__x-batch_latency").empty());
}

TEST(HtmlReportTest, CollidingHistogramIdsAreNumbered) {
  auto run = nlohmann::json::parse(R"({"nodes": [
      {"id": "a b", "histograms": {"h": {"count": 1, "buckets": [[1, 1]]}}},
      {"id": "a_b", "histograms": {"h": {"count": 1, "buckets": [[1, 1]]}}}]})");
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(run));
  EXPECT_FALSE(SvgById(html, "chart-hist-a_b-h").empty());
  EXPECT_FALSE(SvgById(html, "chart-hist-a_b-h-2").empty());
}

TEST(HtmlReportTest, SelfContained) {
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(Fixture("run_v2.json")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));
  EXPECT_THAT(html, Not(HasSubstr("src=")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  // The only URL is the SVG namespace name, which is never fetched.
  std::string rest = html;
  size_t pos;
  while ((pos = rest.find("http://www.w3.org/2000/svg")) != std::string::npos) rest.erase(pos, 26);
  EXPECT_THAT(rest, Not(HasSubstr("http://")));
}

TEST(HtmlReportTest, UsesTheStoredBottleneck) {
  auto run = Fixture("run_v2.json");
  run["bottleneck"] = {{"node", "enrich"}, {"reason", "stored reason"}, {"advice", {"do x"}}};
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(run));
  EXPECT_THAT(html,
              HasSubstr("<span class=\"bottleneck-node\">enrich</span> \u2014 stored reason."));
  EXPECT_THAT(html, HasSubstr("<li>do x</li>"));
  EXPECT_THAT(SvgById(html, "chart-dag"), HasSubstr("class=\"node bottleneck\"><title>enrich"));
}

TEST(HtmlReportTest, Reproducible) {
  const auto run = Fixture("run_v2.json");
  ASSERT_OK_AND_ASSIGN(std::string a, RenderHtmlReport(run));
  ASSERT_OK_AND_ASSIGN(std::string b, RenderHtmlReport(run));
  EXPECT_EQ(a, b);
}

TEST(HtmlReportTest, RejectsJsonThatIsNotARunReport) {
  EXPECT_THAT(RenderHtmlReport(nlohmann::json::parse(R"({"pipeline": "p"})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'nodes'")));
  EXPECT_THAT(RenderHtmlReport(nlohmann::json::parse(R"({"nodes": [{"id": 3}]})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes[0].id: expected a string")));
  EXPECT_THAT(RenderHtmlReport(nlohmann::json::parse(R"({"nodes": [], "timeseries": []})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("timeseries: expected an object")));
}

TEST(HtmlReportTest, EmptyNodeList) {
  ASSERT_OK_AND_ASSIGN(std::string html,
                       RenderHtmlReport(nlohmann::json::parse(R"({"nodes": []})")));
  EXPECT_THAT(html, HasSubstr("id=\"note-dag\""));
  EXPECT_THAT(html, HasSubstr("No limiting node found: the report has no nodes."));
}

}  // namespace
}  // namespace sluice::report
