// `finetune --gpus all|N` and `finetune --workers N`: data-parallel fine-tuning (train/data_parallel.h) with one
// rank per GPU (NCCL) or N ranks on --device (Gloo on the CPU), each a process of this binary started with
// torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT: a free port). Rank 0
// writes to this terminal (its progress bar and summary), the others to <out>.work/logs/rank-K.log. When a rank
// fails the others are stopped; on Ctrl-C every rank stops after the same step, whose checkpoint is saved, and
// the same command with --resume continues (at any number of ranks: --train-batch-size is the global batch).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff::cli {

// Runs `fairdiff finetune base_arguments --device D` once per entry D of `devices`, as ranks 0..N-1.
// InputError naming the failed ranks and their logs; InterruptedError when the ranks stopped on Ctrl-C.
void run_finetune_workers(const std::vector<std::string>& base_arguments, const std::vector<std::string>& devices,
                          const std::filesystem::path& work_dir);

}  // namespace fairdiff::cli
