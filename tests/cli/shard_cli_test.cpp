// Sharded generation and analysis (issue 19 item 1): a run made as 2 or 3 shards (by --shard or a Slurm array's
// environment), then merged, is the unsharded run byte for byte (run.json, manifest.csv, every PNG); a shard stopped
// part-way resumes; merge refuses missing, duplicated, unfinished, damaged or mismatched shards and writes nothing
// then. An analysis made as shards and finished by one unsharded run writes what the unsharded run writes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/csv.h"
#include "core/fs.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

const std::string kExe = FAIRDIFF_EXE;

std::string generate(const fs::path& prompts, const fs::path& out, const std::string& extra = "") {
  return kExe + " generate --model " + (test::fixtures_dir() / "tiny-sd2").string() + " --prompts " + prompts.string() +
         " --images-per-prompt 3 --steps 2 --width 32 --height 32 --seed 5 --device cpu" + extra + " --out " +
         out.string();
}

std::string text_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every file of `a` is in `b` with the same bytes, and the other way round.
void expect_same_tree(const fs::path& a, const fs::path& b) {
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(a)) {
    if (!entry.is_regular_file()) continue;
    const fs::path relative = fs::relative(entry.path(), a);
    ASSERT_TRUE(fs::is_regular_file(b / relative)) << relative;
    EXPECT_EQ(text_of(entry.path()), text_of(b / relative)) << relative;
    ++files;
  }
  int other = 0;
  for (const auto& entry : fs::recursive_directory_iterator(b)) other += entry.is_regular_file();
  EXPECT_EQ(files, other);
}

TEST(ShardCli, ShardedThenMergedIsTheUnshardedRun) {
  const fs::path root = test::scratch_dir("shard_cli");
  write_file_atomic(root / "prompts.csv", "prompt_id,prompt\nceo,A photo of a CEO\nnurse,A photo of a nurse\n");
  std::string log;
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "whole"), &log), 0) << log;

  // Shard 0 of 2 by the flag, shard 1 from a Slurm array's environment (ids 1..2).
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "s0", " --shard 0/2"), &log), 0) << log;
  EXPECT_NE(log.find("generated 3 image(s)"), std::string::npos) << log;
  ASSERT_EQ(test::run_command("SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=1 " +
                                  generate(root / "prompts.csv", root / "s1"),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("shard 1/2 of the run (from SLURM_ARRAY_TASK_ID)"), std::string::npos) << log;
  // Shard 0 owns the run's images 0, 2, 4: ceo 0 and 2, nurse 1.
  EXPECT_TRUE(fs::exists(root / "s0/images/ceo/0.png"));
  EXPECT_FALSE(fs::exists(root / "s0/images/ceo/1.png"));
  EXPECT_TRUE(fs::exists(root / "s0/images/nurse/1.png"));
  EXPECT_EQ(read_csv(root / "s0/manifest.csv").rows.size(), 3U);

  // A shard stopped part-way resumes: an image gone is made again, the rest kept.
  fs::remove(root / "s1/images/ceo/1.png");
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "s1", " --shard 1/2"), &log), 0) << log;
  EXPECT_NE(log.find("generated 1 image(s)"), std::string::npos) << log;
  // The same folder for another shard is refused.
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "s1", " --shard 0/2"), &log), 3) << log;
  EXPECT_NE(log.find("holds shard 1/2, not shard 0/2"), std::string::npos) << log;

  ASSERT_EQ(test::run_command(kExe + " merge --out " + (root / "merged").string() + " " + (root / "s1").string() + " " +
                                  (root / "s0").string(),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("merged 2 shards, 6 images"), std::string::npos) << log;
  expect_same_tree(root / "whole", root / "merged");

  // Three shards merge to the same run.
  std::string shards;
  for (int k = 0; k < 3; ++k) {
    const fs::path dir = root / ("t" + std::to_string(k));
    ASSERT_EQ(test::run_command(generate(root / "prompts.csv", dir, " --shard " + std::to_string(k) + "/3"), &log), 0)
        << log;
    shards += " " + dir.string();
  }
  ASSERT_EQ(test::run_command(kExe + " merge --out " + (root / "merged3").string() + shards, &log), 0) << log;
  expect_same_tree(root / "whole", root / "merged3");

  // --workers: the launcher runs the shards as processes and merges them (--gpus does the same on cuda:0...).
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "workers", " --workers 2"), &log), 0) << log;
  EXPECT_NE(log.find("generated 6 image(s) with 2 workers"), std::string::npos) << log;
  expect_same_tree(root / "whole", root / "workers");
  EXPECT_FALSE(fs::exists(root / "workers.shards"));
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "workers", " --workers 2"), &log), 3) << log;
  EXPECT_NE(log.find("exists and is not empty"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "w2", " --workers 2 --shard 0/2"), &log), 2);
  EXPECT_NE(log.find("drop --shard"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "w3", " --gpus 1"), &log), 2);
  EXPECT_NE(log.find("--gpus"), std::string::npos) << log;
}

// A worker that fails is named with the end of its log; the other's images stay, and the same command resumes.
TEST(ShardCli, AFailedWorkerIsNamedAndTheSameCommandResumes) {
  const fs::path root = test::scratch_dir("shard_cli_workers");
  write_file_atomic(root / "prompts.csv", "prompt_id,prompt\nceo,A photo of a CEO\n");
  std::string log;
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "whole"), &log), 0) << log;
  // Worker 1's shard folder cannot be made: a file stands where it goes.
  fs::create_directories(root / "out.shards");
  write_file_atomic(root / "out.shards/1-of-2", "in the way");
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "out", " --workers 2"), &log), 3);
  EXPECT_NE(log.find("worker 1/2 on cpu (exit 3)"), std::string::npos) << log;
  EXPECT_NE(log.find("cannot create output folder"), std::string::npos) << log;
  EXPECT_EQ(read_csv(root / "out.shards/0-of-2/manifest.csv").rows.size(), 2U);  // worker 0 finished
  EXPECT_FALSE(fs::exists(root / "out"));
  fs::remove(root / "out.shards/1-of-2");
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "out", " --workers 2"), &log), 0) << log;
  expect_same_tree(root / "whole", root / "out");
}

TEST(ShardCli, MergeRefusesWhatIsNotOneWholeRun) {
  const fs::path root = test::scratch_dir("shard_cli_refusals");
  write_file_atomic(root / "prompts.csv", "prompt_id,prompt\nceo,A photo of a CEO\n");
  std::string log;
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / ("s" + std::to_string(k)),
                                         " --shard " + std::to_string(k) + "/2"),
                                &log),
              0)
        << log;
  }
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "other", " --shard 1/2 --guidance 3"), &log), 0)
      << log;
  const std::string merge = kExe + " merge --out " + (root / "out").string();
  const std::string s0 = " " + (root / "s0").string(), s1 = " " + (root / "s1").string();

  EXPECT_EQ(test::run_command(merge + s0, &log), 3);
  EXPECT_NE(log.find("missing: 1/2"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(merge + s0 + s0, &log), 3);
  EXPECT_NE(log.find("are both shard 0/2"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(merge + s0 + " " + (root / "other").string(), &log), 3);
  EXPECT_NE(log.find("other settings"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(merge + s0 + " " + root.string(), &log), 3);
  EXPECT_NE(log.find("not a generation run folder"), std::string::npos) << log;

  // A damaged image, then a missing one.
  const fs::path image = root / "s1/images/ceo/1.png";
  const std::string bytes = text_of(image);
  write_file_atomic(image, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(test::run_command(merge + s0 + s1, &log), 3);
  EXPECT_NE(log.find("differs from its manifest's record"), std::string::npos) << log;
  fs::remove(image);
  EXPECT_EQ(test::run_command(merge + s0 + s1, &log), 3);
  EXPECT_NE(log.find("1.png"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root / "out"));
  // An unsharded run is not a shard.
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "plain"), &log), 0) << log;
  EXPECT_EQ(test::run_command(merge + s0 + " " + (root / "plain").string(), &log), 3);
  EXPECT_NE(log.find("holds an unsharded run"), std::string::npos) << log;

  EXPECT_EQ(test::run_command(kExe + " merge" + s0 + s1, &log), 2);
  EXPECT_NE(log.find("--out is required"), std::string::npos) << log;
  fs::create_directories(root / "full");
  write_file_atomic(root / "full/x", "x");
  ASSERT_EQ(test::run_command(generate(root / "prompts.csv", root / "s1", " --shard 1/2"), &log), 0) << log;
  EXPECT_EQ(test::run_command(kExe + " merge --out " + (root / "full").string() + s0 + s1, &log), 3);
  EXPECT_NE(log.find("exists and is not empty"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(generate(root / "prompts.csv", root / "bad", " --shard 2/2"), &log), 2);
  EXPECT_NE(log.find("shard K must be below N"), std::string::npos) << log;
}

// analyze --shard K/N records its part in --out's journal.K-of-N.jsonl; a run without --shard on the same --out
// takes every shard's work in, analyses nothing again, and writes what the unsharded run writes.
TEST(ShardCli, ShardedAnalysisThenOneUnshardedRunIsTheUnshardedAnalysis) {
  const fs::path root = test::scratch_dir("shard_cli_analyze");
  const fs::path images = root / "images";
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  for (int i = 1; i <= 6; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "fairface_%04d.jpg", i);
    const fs::path folder = images / (i <= 3 ? "ceo" : "nurse");
    fs::create_directories(folder);
    fs::copy_file(faces / name, folder / name);
  }
  write_file_atomic(images / "nurse/broken.png", "\x89PNG\r\n\x1a\n truncated");
  const std::string analyze = kExe + " analyze --images " + images.string() + " --by-folder";
  std::string log;
  ASSERT_EQ(test::run_command(analyze + " --out " + (root / "whole").string(), &log), 0) << log;

  const fs::path sharded = root / "sharded";
  ASSERT_EQ(test::run_command(analyze + " --shard 0/2 --out " + sharded.string(), &log), 0) << log;
  EXPECT_NE(log.find("shard 0/2: analyzed"), std::string::npos) << log;
  ASSERT_EQ(test::run_command("JOB_COMPLETION_INDEX=1 FAIRDIFF_SHARD_COUNT=2 " + analyze + " --out " + sharded.string(),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("shard 1/2 of the folder (from JOB_COMPLETION_INDEX)"), std::string::npos) << log;
  EXPECT_TRUE(fs::is_regular_file(sharded / "journal.0-of-2.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(sharded / "journal.1-of-2.jsonl"));
  EXPECT_FALSE(fs::exists(sharded / "detections.csv"));
  // A shard made with other settings is not taken in.
  ASSERT_EQ(test::run_command(analyze + " --shard 0/3 --score-threshold 0.9 --out " + sharded.string(), &log), 0)
      << log;

  ASSERT_EQ(test::run_command(analyze + " --out " + sharded.string(), &log), 0) << log;
  EXPECT_NE(log.find("took 4 analyses from journal.0-of-2.jsonl"), std::string::npos) << log;
  EXPECT_NE(log.find("journal.0-of-3.jsonl was made with other settings; not used"), std::string::npos) << log;
  EXPECT_NE(log.find("6 kept from journal.jsonl"), std::string::npos) << log;
  for (const char* file : {"detections.csv", "faces.csv", "skipped.csv", "analysis.json"})
    EXPECT_EQ(text_of(root / "whole" / file), text_of(sharded / file)) << file;
  EXPECT_EQ(read_csv(sharded / "detections.csv").rows.size(), 6U);
  EXPECT_EQ(read_csv(sharded / "skipped.csv").rows.size(), 1U);
}

}  // namespace
}  // namespace fairdiff
