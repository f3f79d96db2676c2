// `generate --gpus all|N` and `generate --workers N`: one worker process per GPU of this host (or N processes on
// --device), each running `fairdiff generate --shard k/N` into OUT.shards/k-of-N with its output in k-of-N.log,
// their combined progress and ETA shown from the shards' manifests; when every worker has finished, the shards are
// merged into OUT (diffusion/generation_job.h merge_generation_shards) and the shard folders removed. A failed or
// interrupted worker leaves its shard to resume: the same command again continues every shard.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff::cli {

// `argv` without the options the launcher sets for each worker: --gpus, --workers, --shard, --device and --out
// (both `--name value` and `--name=value`).
std::vector<std::string> worker_base_arguments(const std::vector<std::string>& argv);

// Runs one worker per entry of `devices` and merges their shards into `out`; `total_images` sizes the progress bar.
// Returns the number of images merged; InputError naming the failed workers and their logs when any fails.
int64_t run_generation_workers(const std::vector<std::string>& base_arguments, const std::vector<std::string>& devices,
                               const std::filesystem::path& out, int64_t total_images);

}  // namespace fairdiff::cli
