// The report module on the study's data: study-layout tables checked against counts taken straight from the
// CSV, metrics.json, the HTML page, thumbnails.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "audit/audit_result.h"
#include "audit/planner.h"
#include "core/csv.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "report/html_report.h"
#include "report/metrics_json.h"
#include "report/tables.h"
#include "report/thumbnails.h"
#include "test_paths.h"

namespace fairdiff::report {
namespace {

using audit::Attribute;

std::filesystem::path seed_dir() {
  return test::source_dir() / "data" / "seed";
}

struct StudyAudit {
  PromptSet prompts;
  std::vector<audit::Run> runs;
  audit::AuditResult result;
};

const StudyAudit& study_audit() {
  static const StudyAudit audit_data = [] {
    StudyAudit s;
    s.prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
    audit::DetectionOptions options;
    options.label_map.add("race:race=--");
    s.runs.push_back(
        audit::read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", s.prompts, options));
    s.runs.push_back(audit::read_detections(seed_dir() / "study_results" / "dreambooth" / "dream_detect_linear.csv",
                                            "linear_300", s.prompts, options));
    audit::AuditSettings settings;
    settings.bootstrap.resamples = 100;
    settings.homogeneity_resamples = 100;
    audit::Taxonomy taxonomy;
    s.result =
        audit::run_audit(s.prompts, s.runs, taxonomy, audit::Target(taxonomy, s.prompts.size()), nullptr, settings);
    return s;
  }();
  return audit_data;
}

TEST(Tables, GenderRaceTableMatchesCountsFromTheCsv) {
  const StudyAudit& s = study_audit();
  // Count (prompt, gender, race) directly from the study's CSV ("race" and "--" both count as no race).
  CsvTable raw = read_csv(seed_dir() / "study_results" / "prompts_results.csv");
  std::map<std::string, std::map<std::string, int>> counts;
  std::map<std::string, int> totals;
  for (const auto& row : raw.rows) {
    std::string gender = row.fields[2], race = row.fields[4];
    std::string cell = (gender == "--" || race == "--" || race == "race") ? "--,--" : gender + "," + race;
    ++counts[row.fields[0]][cell];
    ++totals[row.fields[0]];
  }
  CsvTable table = parse_csv(prompt_table_csv(s.result, Attribute::gender_race), "prompt_gender_race.csv");
  ASSERT_EQ(table.header, (std::vector<std::string>{"prompt_id", "gender", "race", "sd21", "linear_300"}));
  ASSERT_EQ(table.rows.size(), 10u * 13u);
  for (const auto& row : table.rows) {
    const int p = s.prompts.find(row.fields[0]);
    const std::string& text = s.prompts.texts[p];
    const int count = counts[text][row.fields[1] + "," + row.fields[2]];
    EXPECT_EQ(row.fields[3], audit::format_share(count / static_cast<double>(totals[text])))
        << row.fields[0] << " " << row.fields[1] << " " << row.fields[2];
    if (row.fields[0] == "cleaning") {
      EXPECT_EQ(row.fields[4], "");  // linear_300 has no cleaning prompt
    }
  }
}

TEST(Tables, GenderTableHasNoFaceRowsAndSummaryAverages) {
  const StudyAudit& s = study_audit();
  CsvTable gender = parse_csv(prompt_table_csv(s.result, Attribute::gender), "g.csv");
  ASSERT_EQ(gender.rows.size(), 30u);
  // From the CSVs: 81 of SD 2.1's 100 CEO images and 80 of linear_300's have a male face.
  EXPECT_EQ(gender.rows[0].fields, (std::vector<std::string>{"ceo", "Male", "0.81", "0.8"}));
  EXPECT_EQ(gender.rows[2].fields[1], "--");
  CsvTable summary = parse_csv(summary_table_csv(s.result, Attribute::gender), "s.csv");
  ASSERT_EQ(summary.rows.size(), 3u);
  double expected = 0;
  for (int p : s.result.common_prompts) {
    expected += s.result.runs[0].distributions.at(Attribute::gender)[p].share_of_all(0);
  }
  expected /= s.result.common_prompts.size();
  EXPECT_NEAR(std::stod(summary.rows[0].fields[1]), expected, 1e-6);
  double sum = 0;
  for (const auto& row : summary.rows) sum += std::stod(row.fields[2]);
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

TEST(MetricsJson, HoldsEveryRunMetricAndComparison) {
  const StudyAudit& s = study_audit();
  Json j = metrics_json(s.result, make_headline(s.result));
  ASSERT_EQ(j["runs"].size(), 2u);
  const Json& ceo = j["runs"][0]["metrics"]["gender_race"]["per_prompt"]["ceo"];
  for (const auto& info : audit::metric_catalog()) {
    if (info.metric == audit::Metric::gender_deviation_ratio) continue;
    ASSERT_TRUE(ceo.contains(info.key)) << info.key;
    EXPECT_TRUE(ceo[info.key]["value"].is_number());
    EXPECT_EQ(ceo[info.key]["ci"].size(), 2u);
  }
  EXPECT_TRUE(j["runs"][0]["metrics"]["gender"]["average"].contains("gender_deviation_ratio"));
  EXPECT_EQ(j["runs"][0]["distributions"]["ceo"]["gender"]["counts"][0], 81);
  EXPECT_EQ(j["comparisons"][0]["run"], "linear_300");
  EXPECT_EQ(j["comparisons"][0]["prompts"].size(), 9u);
  EXPECT_TRUE(j["homogeneity"]["gender"]["ceo"]["p_value"].is_number());
  EXPECT_EQ(j["headline"]["runs"][0]["most_biased"].size(), 3u);
}

TEST(Html, PageHasEveryChartAndSection) {
  const StudyAudit& s = study_audit();
  std::vector<Chart> charts = make_charts(s.result);
  ChartLibrary library;
  library.scripts = {{"stub", "/* charting library */"}};
  std::string html = render_html(s.result, make_headline(s.result), charts, library, {}, ReportOptions{});
  for (const auto& chart : charts) EXPECT_NE(html.find("id=\"" + chart.id + "\""), std::string::npos) << chart.id;
  for (const char* section :
       {"id=\"headline\"", "id=\"caveat\"", "id=\"distributions\"", "id=\"metrics\"", "id=\"comparisons\"",
        "id=\"thumbnails\"", "id=\"methods\"", "Wilson", "Newcombe", "CLEAM", "not corrected"}) {
    EXPECT_NE(html.find(section), std::string::npos) << section;
  }
  // The embedded JSON cannot end its <script> element early.
  const size_t data = html.find("id=\"fairdiff-charts\"");
  ASSERT_NE(data, std::string::npos);
  const size_t end = html.find("</script>", data);
  EXPECT_EQ(html.substr(data, end - data).find("</"), std::string::npos);
}

TEST(Thumbnails, Base64AndDownscale) {
  EXPECT_EQ(base64_encode({'M', 'a', 'n'}), "TWFu");
  EXPECT_EQ(base64_encode({'M', 'a'}), "TWE=");
  EXPECT_EQ(base64_encode({'M'}), "TQ==");
  Image image;
  image.width = 4;
  image.height = 2;
  image.channels = 3;
  image.pixels.assign(4 * 2 * 3, 0);
  for (int x = 0; x < 2; ++x) {
    for (int c = 0; c < 3; ++c) image.at(0, x, c) = 200;  // top-left 2x2 block averages to 100
  }
  Image small = downscale(image, 2);
  ASSERT_EQ(small.width, 2);
  ASSERT_EQ(small.height, 1);
  EXPECT_EQ(small.at(0, 0, 0), 100);
  EXPECT_EQ(small.at(0, 1, 0), 0);
}

TEST(WriteReport, WritesEveryFileWithThumbnailsWhenImagesExist) {
  auto dir = test::scratch_dir("report_with_images");
  std::filesystem::create_directories(dir / "images" / "ceo");
  std::string csv = "prompt,path,gender,age,race\n";
  for (int i = 0; i < 6; ++i) {
    Image image;
    image.width = image.height = 32;
    image.channels = 3;
    image.pixels.assign(32 * 32 * 3, static_cast<uint8_t>(40 * i));
    write_png(dir / "images" / "ceo" / ("img_" + std::to_string(i) + ".png"), image);
    csv += "ceo,/content/drive/run/ceo/img_" + std::to_string(i) + ".png," + (i % 2 ? "Female" : "Male") + ",(25-32)," +
           (i < 3 ? "white" : "black") + "\n";
  }
  csv += "nurse,nurse_0.png,--,--,--\n";
  write_file_atomic(dir / "detections.csv", csv);
  PromptSet prompts;
  prompts.source = "inline";
  prompts.ids = {"ceo", "nurse"};
  prompts.texts = {"A photo of a CEO", "A photo of a nurse"};
  prompts.templates = {"", ""};
  std::vector<audit::Run> runs = {
      audit::read_detections(dir / "detections.csv", "tiny", prompts, audit::DetectionOptions{})};
  audit::AuditSettings settings;
  settings.bootstrap.resamples = 50;
  audit::Taxonomy taxonomy;
  audit::AuditResult result = audit::run_audit(prompts, runs, taxonomy, audit::Target(taxonomy, 2), nullptr, settings);
  ReportOptions options;
  options.thumbnails.images_root = dir / "images";
  ReportFiles files = write_report(result, runs, dir / "out", options);
  EXPECT_EQ(files.thumbnails, 6);
  for (const char* name : {"report.html", "metrics.json", "tables/prompt_gender.csv", "tables/prompt_race.csv",
                           "tables/prompt_gender_race.csv", "tables/summary_gender_race.csv", "tables/metrics.csv"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "out" / name)) << name;
  }
  std::string html = read_file(dir / "out" / "report.html");
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("data-library=\"vega-embed\""), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // nothing fetched from the network
}

}  // namespace
}  // namespace fairdiff::report

namespace fairdiff::report {
namespace {

// Two runs naming their images by the same relative paths: each run's thumbnails come from its own folder (a
// shared --images-root used to show the first run's images for both).
TEST(Thumbnails, EachRunReadsItsOwnImagesUnderASharedRoot) {
  auto dir = test::scratch_dir("report_two_roots");
  std::string csv = "prompt,path,gender,age,race\nceo,ceo/0.png,Male,(25-32),white\n";
  PromptSet prompts;
  prompts.source = "inline";
  prompts.ids = {"ceo"};
  prompts.texts = {"A photo of a CEO"};
  prompts.templates = {""};
  std::vector<audit::Run> runs;
  for (const auto& [name, shade] : std::vector<std::pair<std::string, int>>{{"base", 10}, {"tuned", 200}}) {
    std::filesystem::create_directories(dir / "images" / name / "ceo");
    Image image{8, 8, 3, std::vector<uint8_t>(8 * 8 * 3, static_cast<uint8_t>(shade))};
    write_png(dir / "images" / name / "ceo" / "0.png", image);
    write_file_atomic(dir / (name + ".csv"), csv);
    runs.push_back(audit::read_detections(dir / (name + ".csv"), name, prompts, audit::DetectionOptions{}));
  }
  audit::AuditSettings settings;
  settings.bootstrap.resamples = 0;
  audit::Taxonomy taxonomy;
  audit::AuditResult result = audit::run_audit(prompts, runs, taxonomy, audit::Target(taxonomy, 1), nullptr, settings);
  ThumbnailOptions options;
  options.images_root = dir / "images";
  auto thumbs = make_thumbnails(result, runs, options);
  ASSERT_EQ(thumbs.size(), 2u);
  ASSERT_EQ(thumbs[0].found, 1);
  ASSERT_EQ(thumbs[1].found, 1);
  EXPECT_NE(thumbs[0].cells.at(0).at("Male white")[0], thumbs[1].cells.at(0).at("Male white")[0]);

  // A root without per-run folders serves the first run only; NAME=DIR names a run's folder explicitly.
  options.images_root = dir / "images" / "base";
  thumbs = make_thumbnails(result, runs, options);
  EXPECT_EQ(thumbs[0].found, 1);
  EXPECT_EQ(thumbs[1].found, 0);
  options.run_images_roots["tuned"] = dir / "images" / "tuned";
  thumbs = make_thumbnails(result, runs, options);
  EXPECT_EQ(thumbs[1].found, 1);
  EXPECT_NE(thumbs[0].cells.at(0).at("Male white")[0], thumbs[1].cells.at(0).at("Male white")[0]);
}

}  // namespace
}  // namespace fairdiff::report
