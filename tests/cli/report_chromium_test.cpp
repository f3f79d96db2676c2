// Opens the default report in headless Chromium (Debian's package): every chart must render, the page must
// log nothing to the console, and a screenshot is saved under the build tree.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/fs.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

const char* kChromium = "/usr/bin/chromium";

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

std::string chromium_command(const std::filesystem::path& profile, const std::string& extra, const std::string& url) {
  return std::string("timeout 240 ") + kChromium +
         " --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
         " --disable-sync --no-first-run --user-data-dir=" +
         profile.string() + " --enable-logging=stderr --v=0 --virtual-time-budget=60000 " + extra + " " + url;
}

TEST(ReportChromium, EveryChartRendersWithoutConsoleErrors) {
  if (!std::filesystem::exists(kChromium)) {
    GTEST_SKIP() << kChromium << " is not installed (apt-get install chromium, or run scripts/install.sh)";
  }
  auto dir = test::scratch_dir("report_chromium");
  std::string output;
  int rc =
      test::run_command(std::string(FAIRDIFF_EXE) + " report --bootstrap 200 --out " + (dir / "out").string(), &output);
  ASSERT_EQ(rc, 0) << output;
  const std::filesystem::path html_path = dir / "out" / "report.html";
  const std::string html = read_file(html_path);
  const size_t charts = count_of(html, "class=\"chart\"");
  ASSERT_GE(charts, 8u);
  const std::string url = "file://" + std::filesystem::absolute(html_path).string();

  rc = test::run_command("(" + chromium_command(dir / "profile-dom", "--dump-dom", url) + " > " +
                             (dir / "dom.html").string() + " 2> " + (dir / "chromium.log").string() + ")",
                         &output);
  ASSERT_EQ(rc, 0) << output << read_file(dir / "chromium.log");
  const std::string dom = read_file(dir / "dom.html");
  EXPECT_NE(dom.find("data-render-status=\"ready\""), std::string::npos)
      << "title: " << dom.substr(dom.find("<title>"), 120);
  EXPECT_NE(dom.find("data-charts-rendered=\"" + std::to_string(charts) + "\""), std::string::npos);
  EXPECT_EQ(count_of(dom, "data-rendered=\"yes\""), charts);
  EXPECT_GE(count_of(dom, "<svg"), charts);
  EXPECT_GE(count_of(dom, "class=\"mark-"), charts);  // Vega drew marks in every chart

  std::istringstream log(read_file(dir / "chromium.log"));
  std::string line, console;
  while (std::getline(log, line)) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos)
      console += line + "\n";
  }
  EXPECT_TRUE(console.empty()) << "the page logged to the console:\n" << console;

  const std::filesystem::path screenshot = std::filesystem::path(FAIRDIFF_BINARY_DIR) / "report-screenshot.png";
  std::filesystem::remove(screenshot);
  rc = test::run_command(
      "(" + chromium_command(dir / "profile-shot", "--window-size=1400,2400 --screenshot=" + screenshot.string(), url) +
          " > /dev/null 2> " + (dir / "screenshot.log").string() + ")",
      &output);
  ASSERT_EQ(rc, 0) << output << read_file(dir / "screenshot.log");
  ASSERT_TRUE(std::filesystem::is_regular_file(screenshot)) << read_file(dir / "screenshot.log");
  EXPECT_GT(std::filesystem::file_size(screenshot), 20000u);
  std::printf("screenshot: %s\n", screenshot.string().c_str());
}

}  // namespace
}  // namespace fairdiff
