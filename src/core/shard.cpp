#include "core/shard.h"

#include <cstdlib>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff {

namespace {

// A whole number in [low, high] from `text`, or UsageError naming `what`.
int64_t whole_number(const std::string& text, const std::string& what, int64_t low, int64_t high) {
  const std::string t = trim(text);
  size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (t.empty() || used != t.size() || value < low || value > high) {
    throw UsageError(what + ": '" + text + "' is not a whole number in [" + std::to_string(low) + ", " +
                     std::to_string(high) + "]");
  }
  return value;
}

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

constexpr int64_t kMaxShards = 100000;

}  // namespace

Shard parse_shard(const std::string& text, const std::string& what) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos)
    throw UsageError(what + " '" + text + "': expected K/N, shard K (counted from 0) of N, e.g. 0/4");
  Shard shard;
  shard.count = whole_number(text.substr(slash + 1), what + " N", 1, kMaxShards);
  shard.index = whole_number(text.substr(0, slash), what + " K", 0, kMaxShards - 1);
  if (shard.index >= shard.count)
    throw UsageError(what + " '" + text + "': shard K must be below N (shards are counted from 0)");
  return shard;
}

Shard resolve_shard(const std::string& flag, std::string& source) {
  source.clear();
  if (!flag.empty()) {
    source = "--shard";
    return parse_shard(flag);
  }
  const char* no_shard = env("FAIRDIFF_NO_SHARD");
  if (no_shard && std::string(no_shard) == "1") return Shard();
  if (const char* id = env("SLURM_ARRAY_TASK_ID")) {
    const char* count = env("SLURM_ARRAY_TASK_COUNT");
    if (!count) throw UsageError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    Shard shard;
    shard.count = whole_number(count, "SLURM_ARRAY_TASK_COUNT", 1, kMaxShards);
    const int64_t min = env("SLURM_ARRAY_TASK_MIN")
                            ? whole_number(env("SLURM_ARRAY_TASK_MIN"), "SLURM_ARRAY_TASK_MIN", 0, int64_t{1} << 40)
                            : 0;
    const int64_t step = env("SLURM_ARRAY_TASK_STEP")
                             ? whole_number(env("SLURM_ARRAY_TASK_STEP"), "SLURM_ARRAY_TASK_STEP", 1, int64_t{1} << 40)
                             : 1;
    const int64_t task = whole_number(id, "SLURM_ARRAY_TASK_ID", min, int64_t{1} << 40);
    if ((task - min) % step != 0)
      throw UsageError("SLURM_ARRAY_TASK_ID " + std::string(id) + " is off its array's step");
    shard.index = (task - min) / step;
    if (shard.index >= shard.count) {
      throw UsageError("SLURM_ARRAY_TASK_ID " + std::string(id) + " is task " + std::to_string(shard.index) +
                       " of an array of " + std::to_string(shard.count) +
                       " (fairdiff needs a contiguous array: --array=0-" + std::to_string(shard.count - 1) + ")");
    }
    source = "SLURM_ARRAY_TASK_ID";
    return shard;
  }
  if (const char* index = env("JOB_COMPLETION_INDEX")) {
    const char* count = env("FAIRDIFF_SHARD_COUNT");
    if (!count) {
      throw UsageError(
          "JOB_COMPLETION_INDEX is set (a Kubernetes indexed Job) but FAIRDIFF_SHARD_COUNT is not: set it to the "
          "Job's completions (docs/cluster.md), or pass --shard K/N");
    }
    Shard shard;
    shard.count = whole_number(count, "FAIRDIFF_SHARD_COUNT", 1, kMaxShards);
    shard.index = whole_number(index, "JOB_COMPLETION_INDEX", 0, shard.count - 1);
    source = "JOB_COMPLETION_INDEX";
    return shard;
  }
  return Shard();
}

}  // namespace fairdiff
