// `fairdiff generate --mitigation METHOD` on the tiny SD2 fixture: each training-free method writes its images with
// the group each image was steered toward in the manifest, gives the same images whatever the batch size, records
// its settings (a rerun with other settings is refused), and its flags are refused without it.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/csv.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/sha256.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

std::string generate(const fs::path& prompts, const fs::path& out, const std::string& extra) {
  return std::string(FAIRDIFF_EXE) + " generate --model " + q(test::fixtures_dir() / "tiny-sd2") + " --prompts " +
         q(prompts) + " --images-per-prompt 3 --steps 3 --width 32 --height 32 --seed 5 --out " + q(out) + " " + extra;
}

// file -> (sha256, group) from a run's manifest.
std::map<std::string, std::pair<std::string, std::string>> manifest(const fs::path& out) {
  const CsvTable table = read_csv(out / "manifest.csv");
  const int file = table.require_column("file"), sha = table.require_column("sha256"),
            group = table.require_column("group");
  std::map<std::string, std::pair<std::string, std::string>> rows;
  for (const auto& row : table.rows)
    rows[row.fields[static_cast<size_t>(file)]] = {row.fields[static_cast<size_t>(sha)],
                                                   row.fields[static_cast<size_t>(group)]};
  return rows;
}

TEST(MitigationCli, EachMethodSteersItsImagesAndRecordsHow) {
  const fs::path dir = test::scratch_dir("MitigationCli.Methods");
  const fs::path prompts = dir / "prompts.csv";
  std::ofstream(prompts)
      << "prompt_id,prompt\nceo,A photo of a CEO of an important company\nnurse,A photo of a nurse\n";
  std::string log;
  ASSERT_EQ(test::run_command(generate(prompts, dir / "plain", ""), &log), 0) << log;
  const auto plain = manifest(dir / "plain");
  ASSERT_EQ(plain.size(), 6u);
  for (const auto& [file, row] : plain) EXPECT_EQ(row.second, "") << file;

  for (const std::string method : {"balanced_prompting", "projection", "fair_diffusion"}) {
    const std::string extra = "--mitigation " + method + (method == "fair_diffusion" ? " --edit-warmup-steps 0" : "");
    ASSERT_EQ(test::run_command(generate(prompts, dir / method, extra + " --batch-size 4"), &log), 0) << log;
    const auto rows = manifest(dir / method);
    ASSERT_EQ(rows.size(), 6u) << method;
    for (const auto& [file, row] : rows) {
      EXPECT_NE(row.first, plain.at(file).first) << method << " left " << file << " as it was";
      if (method == "projection") {
        EXPECT_EQ(row.second, "") << file;
      } else {
        EXPECT_FALSE(row.second.empty()) << method << " " << file;
      }
    }
    const Json run = read_json_file(dir / method / "run.json");
    EXPECT_EQ(run["identity"]["mitigation"]["method"], method);
    // The same images one at a time.
    ASSERT_EQ(test::run_command(generate(prompts, dir / (method + "_b1"), extra + " --batch-size 1"), &log), 0) << log;
    EXPECT_EQ(manifest(dir / (method + "_b1")), rows) << method;
  }
  // Both per-image methods draw an image's group the same way: fair_diffusion (gender by default) steers each image
  // toward the gender of the group balanced prompting names.
  const auto balanced = manifest(dir / "balanced_prompting"), fair = manifest(dir / "fair_diffusion");
  for (const auto& [file, row] : balanced) EXPECT_EQ(row.second.rfind(fair.at(file).second + " ", 0), 0u) << file;

  // Other settings into the same folder are refused, naming what differs; the images are kept.
  EXPECT_NE(
      test::run_command(generate(prompts, dir / "projection", "--mitigation projection --projection-lambda 50"), &log),
      0);
  EXPECT_NE(log.find("mitigation"), std::string::npos) << log;
}

TEST(MitigationCli, FlagsWithoutTheirMethodAndBadTargetsAreRefused) {
  const fs::path dir = test::scratch_dir("MitigationCli.Errors");
  const fs::path prompts = dir / "prompts.csv";
  std::ofstream(prompts) << "prompt_id,prompt\nnurse,A photo of a nurse\n";
  std::string log;
  EXPECT_NE(test::run_command(generate(prompts, dir / "a", "--projection-lambda 10"), &log), 0);
  EXPECT_NE(log.find("--projection-lambda applies to --mitigation projection (no --mitigation was given)"),
            std::string::npos)
      << log;
  EXPECT_NE(test::run_command(generate(prompts, dir / "b", "--mitigation projection --edit-threshold 0.5"), &log), 0);
  EXPECT_NE(log.find("--edit-threshold applies to --mitigation fair_diffusion, not projection"), std::string::npos)
      << log;
  EXPECT_NE(test::run_command(generate(prompts, dir / "c", "--mitigation uce"), &log), 0);
  EXPECT_NE(log.find("--mitigation"), std::string::npos) << log;
  std::ofstream(dir / "target.csv") << "attribute,group,share\ngender,Female,0.9\ngender,Male,0.3\n";
  EXPECT_NE(
      test::run_command(
          generate(prompts, dir / "d", "--mitigation balanced_prompting --target " + q(dir / "target.csv")), &log),
      0);
  EXPECT_NE(log.find("target.csv"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "d" / "images"));

  // A share of 0 is refused (the audit's divergences against the same target need every share above 0)...
  std::ofstream(dir / "zero.csv") << "attribute,group,share\ngender,Female,1\ngender,Male,0\n";
  EXPECT_NE(test::run_command(
                generate(prompts, dir / "z", "--mitigation balanced_prompting --target " + q(dir / "zero.csv")), &log),
            0);
  EXPECT_NE(log.find("zero.csv:2 (gender, every prompt): share of 'Male' is 0"), std::string::npos) << log;
  // ... so a target that wants almost only black women: every image of balanced prompting is steered there.
  std::ofstream(dir / "women.csv") << "attribute,group,share\ngender,Female,0.999\ngender,Male,0.001\n"
                                      "race,black,0.995\nrace,asian,0.001\nrace,indian,0.001\nrace,white,0.001\n"
                                      "race,middle eastern,0.001\nrace,latino hispanic,0.001\n";
  ASSERT_EQ(test::run_command(
                generate(prompts, dir / "e", "--mitigation balanced_prompting --target " + q(dir / "women.csv")), &log),
            0)
      << log;
  for (const auto& [file, row] : manifest(dir / "e")) EXPECT_EQ(row.second, "Female black") << file;
}

}  // namespace
}  // namespace fairdiff
