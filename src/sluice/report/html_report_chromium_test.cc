// Renders a report in headless Chromium and checks the charts are in the rendered DOM; also
// takes a screenshot. Set SLUICE_REPORT_OUT=<dir> to keep the files (report.html, dom.html,
// report.png) there instead of in a temporary directory that is removed.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/report/html_report.h"
#include "sluice/testing/matchers.h"

namespace sluice::report {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// Return the <svg> element with `id` in the DOM Chromium dumped, or "".
std::string SvgById(const std::string& dom, const std::string& id) {
  const size_t start = dom.find("id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  const size_t open = dom.rfind("<svg", start);
  if (open == std::string::npos) return "";
  return dom.substr(open, dom.find("</svg>", start) + 6 - open);
}

std::string FindChromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

class ChromiumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* keep = std::getenv("SLUICE_REPORT_OUT"); keep != nullptr && *keep != '\0') {
      dir_ = keep;
      std::filesystem::create_directories(dir_);
    } else {
      char tmpl[] = "/tmp/sluice_report_XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
      remove_ = true;
    }
  }
  void TearDown() override {
    if (remove_) std::filesystem::remove_all(dir_);
  }

  // Run Chromium headless on `html_path` with `args`; stdout goes to `stdout_path`.
  int RunChromium(const std::string& chromium, const std::string& args,
                  const std::string& stdout_path) {
    const std::string cmd = fmt::format(
        "timeout 60 {} --headless --no-sandbox --disable-gpu --no-first-run "
        "--user-data-dir={}/profile {} file://{}/report.html > {} 2>>{}/chromium.log",
        chromium, dir_, args, dir_, stdout_path, dir_);
    return std::system(cmd.c_str());
  }

  std::string dir_;
  bool remove_ = false;
};

TEST_F(ChromiumTest, RendersEveryChartAndTakesAScreenshot) {
  const std::string chromium = FindChromium();
  ASSERT_FALSE(chromium.empty()) << "chromium is not installed (apt-get install chromium)";

  std::ifstream in(std::string(SLUICE_REPORT_TESTDATA) + "/run_v2.json");
  std::stringstream ss;
  ss << in.rdbuf();
  ASSERT_OK_AND_ASSIGN(std::string html, RenderHtmlReport(nlohmann::json::parse(ss.str())));
  {
    std::ofstream out(dir_ + "/report.html", std::ios::binary);
    out << html;
  }

  ASSERT_EQ(RunChromium(chromium, "--dump-dom", dir_ + "/dom.html"), 0)
      << ReadFile(dir_ + "/chromium.log");
  const std::string dom = ReadFile(dir_ + "/dom.html");
  ASSERT_THAT(dom, HasSubstr("</html>")) << ReadFile(dir_ + "/chromium.log");

  struct Expect {
    const char* id;
    const char* element;  // What draws the data.
    size_t at_least;
  };
  const Expect expects[] = {
      {"chart-dag", "<rect", 8},                          // 4 boxes + 4 utilization bars
      {"chart-dag", "<path class=\"edge\"", 4},           // the diamond's edges
      {"chart-throughput", "<path class=\"series\"", 4},  // one line per node
      {"chart-memory", "<path class=\"series\"", 3},      // RSS, budget, limit
      {"chart-cpu", "<path class=\"series\"", 1},
      {"chart-phases", "<rect", 7},  // 3 + 4 phase segments
      {"chart-hist-orders-batch_rows", "<rect class=\"bucket\"", 3},
      {"chart-hist-orders-request_latency", "<rect class=\"bucket\"", 7},
      {"chart-hist-s3_archive-batch_latency", "<rect class=\"bucket\"", 6},
      {"chart-hist-s3_archive-request_latency", "<rect class=\"bucket\"", 8},
  };
  for (const auto& e : expects) {
    const std::string svg = SvgById(dom, e.id);
    ASSERT_FALSE(svg.empty()) << e.id << " is not in the rendered DOM";
    EXPECT_THAT(svg, HasSubstr("<title")) << e.id;
    EXPECT_GE(Count(svg, e.element), e.at_least) << e.id << ": " << e.element;
  }
  EXPECT_GE(Count(SvgById(dom, "chart-hist-s3_archive-batch_latency"), "class=\"marker\""), 3u);

  const std::string png = dir_ + "/report.png";
  ASSERT_EQ(
      RunChromium(chromium, "--hide-scrollbars --screenshot=" + png + " --window-size=1400,4000",
                  dir_ + "/screenshot.out"),
      0)
      << ReadFile(dir_ + "/chromium.log");
  const std::string image = ReadFile(png);
  ASSERT_GT(image.size(), 20000u) << "screenshot too small to show the charts";
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::cout << "screenshot: " << png << (remove_ ? " (removed; set SLUICE_REPORT_OUT to keep)" : "")
            << "\n";
}

}  // namespace
}  // namespace sluice::report
