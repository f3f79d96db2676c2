// One shard of a run's work, for a cluster array job (docs/cluster.md): shard K of N owns the work items whose
// ordinal (their position in the run's own order: prompts in order, images by index) is K modulo N, so every
// shard gets its share of every prompt and the shards' union is the whole run, each item once.
#pragma once

#include <cstdint>
#include <string>

namespace fairdiff {

struct Shard {
  int64_t index = 0;
  int64_t count = 1;

  bool sharded() const { return count > 1; }
  bool owns(int64_t ordinal) const { return ordinal % count == index; }
  std::string str() const { return std::to_string(index) + "/" + std::to_string(count); }  // "K/N"
};

// "K/N" with 0 <= K < N <= 100000; UsageError naming `what` otherwise.
Shard parse_shard(const std::string& text, const std::string& what = "--shard");

// The shard this process runs: `flag` ("K/N") when given, else from a scheduler's environment: a Slurm job array
// (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, divided by SLURM_ARRAY_TASK_STEP, of SLURM_ARRAY_TASK_COUNT), else a
// Kubernetes indexed Job (JOB_COMPLETION_INDEX of FAIRDIFF_SHARD_COUNT, which the Job's manifest sets to its
// completions), else the whole run. `source` says which ("--shard", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"
// or ""). FAIRDIFF_NO_SHARD=1 ignores the environment. A malformed variable is a UsageError naming it.
Shard resolve_shard(const std::string& flag, std::string& source);

}  // namespace fairdiff
