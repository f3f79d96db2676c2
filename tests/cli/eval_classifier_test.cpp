// End-to-end: fairdiff eval-classifier on a small labeled subset of real photos.
#include <gtest/gtest.h>

#include <fstream>

#include "core/json.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

TEST(EvalClassifierCommand, WritesTheReportTheAuditReads) {
  const fs::path root = test::scratch_dir("eval_cli");
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  std::string log;
  const std::string cmd = std::string(FAIRDIFF_EXE) + " eval-classifier --images " + faces.string() +
                          " --limit 12 --json " + (root / "report.json").string();
  ASSERT_EQ(test::run_command(cmd, &log), 0) << log;
  Json r = read_json_file(root / "report.json");
  EXPECT_EQ(r["n"], 12);
  EXPECT_GT(r["detection_rate"].get<double>(), 0.5);
  EXPECT_GT(r["images_per_s"].get<double>(), 0.0);
  EXPECT_EQ(r["gender"]["labels"], Json({"male", "female"}));
  ASSERT_EQ(r["gender"]["confusion"].size(), 2u);
  // The default profile's heads answer in FairFace's 7 races, the labels' own taxonomy.
  EXPECT_EQ(r["race"]["taxonomy"], "fairface7");
  EXPECT_EQ(r["race"]["labels"],
            Json({"white", "black", "latino hispanic", "east asian", "southeast asian", "indian", "middle eastern"}));
  ASSERT_EQ(r["race"]["confusion"].size(), 7u);
  long long total = 0;
  for (const auto& row : r["race"]["confusion"]) {
    for (const auto& c : row) total += c.get<long long>();
  }
  EXPECT_EQ(total, r["detected"].get<long long>());
  EXPECT_TRUE(r["race"].contains("per_class"));
  EXPECT_TRUE(r["groups"].is_object());

  // GEAR's 5 races against FairFace's 7 labels: compared in the coarser taxonomy.
  ASSERT_EQ(test::run_command(std::string(FAIRDIFF_EXE) + " eval-classifier --profile gear --images " + faces.string() +
                                  " --limit 4 --json " + (root / "gear.json").string(),
                              &log),
            0)
      << log;
  Json g = read_json_file(root / "gear.json");
  EXPECT_EQ(g["race"]["taxonomy"], "five");
  EXPECT_EQ(g["race"]["labels"], Json({"white", "black", "asian", "indian", "other"}));

  std::ofstream(root / "bad.csv") << "file,gender,race\nx.jpg,male,klingon\n";
  EXPECT_EQ(test::run_command(std::string(FAIRDIFF_EXE) + " eval-classifier --images " + faces.string() + " --labels " +
                                  (root / "bad.csv").string() + " --json " + (root / "r.json").string(),
                              &log),
            3)
      << log;
  EXPECT_NE(log.find("klingon"), std::string::npos) << log;
}

}  // namespace
}  // namespace fairdiff
