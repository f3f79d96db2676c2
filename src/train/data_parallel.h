// Data-parallel fine-tuning over LibTorch's c10d process groups (NCCL on CUDA, Gloo on the CPU).
//
// Every process (a "rank") holds the whole model and the whole dataset; each micro-batch's rows are split over
// the ranks in contiguous slices, each rank runs forward and backward on its slice with its loss weighted by its
// share of the rows, and the gradients are summed over the ranks before the optimizer step. The random draws of a
// micro-batch (noise, timesteps, data order) are the whole global batch's on every rank, each rank using its
// rows: so --train-batch-size is the global batch and a run gives the same weights (within float tolerance)
// whatever the number of processes, and a checkpoint resumes at any world size.
//
// The processes meet through torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// (Slurm, Kubernetes and `fairdiff finetune --workers/--gpus` set them). Files are written by rank 0 only;
// the ranks share the output's file system.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fairdiff::train {

// Rank `rank`'s contiguous slice [begin, end) of `count` rows over `world_size` ranks: slices differ in size by at
// most one, are in rank order, and cover the rows once.
std::pair<int64_t, int64_t> row_slice(int64_t count, int rank, int world_size);

// The collectives of a c10d process group (data_parallel.cpp: Gloo and NCCL behind one interface).
struct ProcessGroupHandle;

class DataParallel {
 public:
  DataParallel();  // one process: every collective is the identity
  ~DataParallel();
  DataParallel(DataParallel&&) noexcept;
  DataParallel& operator=(DataParallel&&) noexcept;

  // From torchrun's environment; one process when WORLD_SIZE is unset or 1. `device_type` ("cpu" or "cuda")
  // picks the backend: NCCL for CUDA, Gloo for the CPU. UsageError naming the variable when one is malformed
  // or missing; UnsupportedError when this build has no backend for the device.
  static DataParallel from_environment(const std::string& device_type);
  // Ranks that meet through a file (c10d's FileStore) instead of a TCP address: ranks as threads of one
  // process in tests, or processes on one host.
  static DataParallel over_file(const std::filesystem::path& file, int rank, int world_size,
                                const std::string& device_type);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  // The CUDA device of this rank: LOCAL_RANK, modulo the devices this host has (ranks may share one).
  int cuda_index() const { return device_.is_cuda() ? device_.index() : local_rank_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return world_size_ > 1; }
  const std::string& backend() const { return backend_; }  // "none", "gloo" or "nccl"

  // In place: the sum of `tensor` over the ranks (the same shape, dtype and device on each).
  void all_reduce_sum(torch::Tensor& tensor);
  // Waits until every rank has reached it.
  void barrier();
  // True on every rank when `flag` is true on any: ranks agree to stop at the same step.
  bool any(bool flag);
  // This rank's row_slice of `count` rows (empty for some ranks when count < world size).
  std::pair<int64_t, int64_t> rows(int64_t count) const { return row_slice(count, rank_, world_size_); }

 private:
  int rank_ = 0, world_size_ = 1, local_rank_ = 0;
  std::string backend_ = "none";
  torch::Device device_ = torch::kCPU;  // where the scalars of any() and barrier() live
  std::unique_ptr<ProcessGroupHandle> group_;
};

// Backends this build has: "gloo", "nccl" (either may be absent).
std::vector<std::string> data_parallel_backends();

}  // namespace fairdiff::train
