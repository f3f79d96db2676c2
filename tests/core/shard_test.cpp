// Shards of a run (core/shard.h): "K/N" parsing, ownership by ordinal, and the defaults from a Slurm job array or a
// Kubernetes indexed Job, with clear errors for malformed values.
#include "core/shard.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

using test::ScopedEnv;

void clear_scheduler_env(ScopedEnv& env) {
  for (const char* name :
       {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
        "JOB_COMPLETION_INDEX", "FAIRDIFF_SHARD_COUNT", "FAIRDIFF_NO_SHARD"})
    env.set(name, std::nullopt);
}

std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Shard, ParsesKOfNAndOwnsEveryNthItem) {
  const Shard shard = parse_shard("2/4");
  EXPECT_EQ(shard.index, 2);
  EXPECT_EQ(shard.count, 4);
  EXPECT_TRUE(shard.sharded());
  EXPECT_EQ(shard.str(), "2/4");
  EXPECT_TRUE(shard.owns(2));
  EXPECT_TRUE(shard.owns(6));
  EXPECT_FALSE(shard.owns(3));
  EXPECT_FALSE(parse_shard("0/1").sharded());
  // Every item belongs to exactly one shard.
  for (int64_t ordinal = 0; ordinal < 20; ++ordinal) {
    int owners = 0;
    for (int64_t k = 0; k < 3; ++k) owners += parse_shard(std::to_string(k) + "/3").owns(ordinal);
    EXPECT_EQ(owners, 1) << ordinal;
  }
  EXPECT_NE(usage_error([] { parse_shard("4/4"); }).find("shard K must be below N"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_shard("3"); }).find("expected K/N"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_shard("a/2"); }).find("--shard K: 'a' is not a whole number"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_shard("0/0"); }).find("--shard N"), std::string::npos);
  EXPECT_NE(usage_error([] { parse_shard("-1/2"); }).find("--shard K"), std::string::npos);
}

TEST(Shard, DefaultsFromSlurmOrAnIndexedJob) {
  ScopedEnv env;
  clear_scheduler_env(env);
  std::string source;
  EXPECT_FALSE(resolve_shard("", source).sharded());
  EXPECT_EQ(source, "");

  // Slurm: --array=1-4 gives ids 1..4 with SLURM_ARRAY_TASK_MIN=1.
  env.set("SLURM_ARRAY_TASK_ID", "3");
  env.set("SLURM_ARRAY_TASK_COUNT", "4");
  env.set("SLURM_ARRAY_TASK_MIN", "1");
  Shard shard = resolve_shard("", source);
  EXPECT_EQ(shard.str(), "2/4");
  EXPECT_EQ(source, "SLURM_ARRAY_TASK_ID");
  // The flag wins over the environment.
  EXPECT_EQ(resolve_shard("0/2", source).str(), "0/2");
  EXPECT_EQ(source, "--shard");
  // FAIRDIFF_NO_SHARD=1 ignores the scheduler.
  env.set("FAIRDIFF_NO_SHARD", "1");
  EXPECT_FALSE(resolve_shard("", source).sharded());
  env.set("FAIRDIFF_NO_SHARD", std::nullopt);
  // A step: --array=0-6:2 gives ids 0, 2, 4, 6.
  env.set("SLURM_ARRAY_TASK_MIN", "0");
  env.set("SLURM_ARRAY_TASK_STEP", "2");
  env.set("SLURM_ARRAY_TASK_ID", "4");
  EXPECT_EQ(resolve_shard("", source).str(), "2/4");
  env.set("SLURM_ARRAY_TASK_ID", "3");
  EXPECT_NE(usage_error([&] { resolve_shard("", source); }).find("off its array's step"), std::string::npos);
  env.set("SLURM_ARRAY_TASK_STEP", std::nullopt);
  env.set("SLURM_ARRAY_TASK_ID", "9");
  EXPECT_NE(usage_error([&] { resolve_shard("", source); }).find("contiguous array"), std::string::npos);
  env.set("SLURM_ARRAY_TASK_COUNT", "x");
  EXPECT_NE(usage_error([&] { resolve_shard("", source); }).find("SLURM_ARRAY_TASK_COUNT"), std::string::npos);
  clear_scheduler_env(env);

  // Kubernetes: JOB_COMPLETION_INDEX with the count the manifest sets.
  env.set("JOB_COMPLETION_INDEX", "5");
  EXPECT_NE(usage_error([&] { resolve_shard("", source); }).find("FAIRDIFF_SHARD_COUNT is not"), std::string::npos);
  env.set("FAIRDIFF_SHARD_COUNT", "8");
  shard = resolve_shard("", source);
  EXPECT_EQ(shard.str(), "5/8");
  EXPECT_EQ(source, "JOB_COMPLETION_INDEX");
  env.set("FAIRDIFF_SHARD_COUNT", "5");
  EXPECT_NE(usage_error([&] { resolve_shard("", source); }).find("JOB_COMPLETION_INDEX"), std::string::npos);
}

}  // namespace
}  // namespace fairdiff
