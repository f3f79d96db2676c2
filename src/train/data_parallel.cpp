#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/error.h"
#include "core/strings.h"

#if FAIRDIFF_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if FAIRDIFF_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace fairdiff::train {

struct ProcessGroupHandle {
  virtual ~ProcessGroupHandle() = default;
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
};

namespace {

// One interface over the process-group classes: LibTorch 1.x's derive from c10d::ProcessGroup, 2.x's from
// c10d::Backend; both have the same allreduce.
template <class Group>
struct C10dGroup : ProcessGroupHandle {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> group;

  void all_reduce_sum(torch::Tensor& tensor) override {
    std::vector<at::Tensor> tensors{tensor};
    group->allreduce(tensors, c10d::AllreduceOptions())->wait();  // the default op is SUM
  }
};

// Collectives wait this long for the slowest rank (class images are generated before training starts).
std::chrono::milliseconds collective_timeout() {
  long long seconds = 1800;
  if (const char* env = std::getenv("FAIRDIFF_DIST_TIMEOUT")) {
    if (!parse_int64(env, seconds) || seconds < 1)
      throw UsageError("FAIRDIFF_DIST_TIMEOUT='" + std::string(env) + "': expected seconds >= 1");
  }
  return std::chrono::milliseconds(seconds * 1000);
}

std::unique_ptr<ProcessGroupHandle> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                               const std::string& device_type, const std::string& host,
                                               std::string& backend) {
  const auto timeout = collective_timeout();
  // FAIRDIFF_DIST_BACKEND=gloo: Gloo for CUDA tensors too (staged through the CPU), e.g. for ranks that share
  // one GPU, which NCCL refuses.
  const char* forced = std::getenv("FAIRDIFF_DIST_BACKEND");
  const std::string wanted = forced ? forced : "";
  if (!wanted.empty() && wanted != "gloo" && wanted != "nccl")
    throw UsageError("FAIRDIFF_DIST_BACKEND='" + wanted + "': expected gloo or nccl");
  if (wanted == "nccl" && device_type != "cuda") throw UsageError("FAIRDIFF_DIST_BACKEND=nccl needs CUDA devices");
  if (device_type == "cuda" && wanted != "gloo") {
#if FAIRDIFF_NCCL
    auto handle = std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>();
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    handle->store = store;
    handle->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
    backend = "nccl";
    return handle;
#endif
  }
#if FAIRDIFF_GLOO
  // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; a loopback master stays on the loopback
  // (a sandbox's host name may not resolve); otherwise the address this host's name resolves to.
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else if (host.empty() || host == "127.0.0.1" || host == "localhost") {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto handle = std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>();
  handle->store = store;
  handle->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
  backend = "gloo";
  return handle;
#else
  (void)store, (void)rank, (void)world_size, (void)host, (void)timeout;
  throw UnsupportedError(
      "data-parallel training on " + device_type + " needs a LibTorch built with " +
      (device_type == "cuda" ? "NCCL or " : "") + "Gloo and its headers (Debian: libgloo-dev); this build has " +
      (data_parallel_backends().empty() ? std::string("neither") : join(data_parallel_backends(), ", ")));
#endif
}

int cuda_devices() {
  return std::max<int>(1, static_cast<int>(torch::cuda::device_count()));
}

int env_int(const char* name, long long low, long long high, long long fallback) {
  const char* env = std::getenv(name);
  if (!env || !*env) return static_cast<int>(fallback);
  long long value = 0;
  if (!parse_int64(env, value) || value < low || value > high) {
    throw UsageError(std::string(name) + "='" + env + "': expected an integer in [" + std::to_string(low) + ", " +
                     std::to_string(high) + "]");
  }
  return static_cast<int>(value);
}

}  // namespace

std::vector<std::string> data_parallel_backends() {
  std::vector<std::string> out;
#if FAIRDIFF_GLOO
  out.push_back("gloo");
#endif
#if FAIRDIFF_NCCL
  out.push_back("nccl");
#endif
  return out;
}

DataParallel::DataParallel() = default;
DataParallel::~DataParallel() = default;
DataParallel::DataParallel(DataParallel&&) noexcept = default;
DataParallel& DataParallel::operator=(DataParallel&&) noexcept = default;

DataParallel DataParallel::from_environment(const std::string& device_type) {
  DataParallel dp;
  dp.world_size_ = env_int("WORLD_SIZE", 1, 1 << 20, 1);
  if (dp.world_size_ == 1) return dp;
  if (!std::getenv("RANK")) throw UsageError("WORLD_SIZE=" + std::to_string(dp.world_size_) + " but RANK is unset");
  dp.rank_ = env_int("RANK", 0, dp.world_size_ - 1, 0);
  dp.local_rank_ = env_int("LOCAL_RANK", 0, dp.world_size_ - 1, dp.rank_);
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr)
    throw UsageError("WORLD_SIZE=" + std::to_string(dp.world_size_) + " but MASTER_ADDR is unset (rank 0's host)");
  if (!std::getenv("MASTER_PORT"))
    throw UsageError("WORLD_SIZE=" + std::to_string(dp.world_size_) + " but MASTER_PORT is unset");
  const int port = env_int("MASTER_PORT", 1, 65535, 0);
  if (device_type == "cuda")
    dp.device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(dp.local_rank_ % cuda_devices()));

  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = dp.rank_ == 0;
  options.numWorkers = static_cast<size_t>(dp.world_size_);
  options.waitWorkers = true;
  options.timeout = collective_timeout();
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), options);
  } catch (const std::exception& e) {
    throw InputError("rank " + std::to_string(dp.rank_) + " could not meet the others at MASTER_ADDR=" + addr +
                     " MASTER_PORT=" + std::to_string(port) + ": " +
                     std::string(e.what()).substr(0, std::string(e.what()).find('\n')));
  }
  dp.group_ = make_group(store, dp.rank_, dp.world_size_, device_type, addr, dp.backend_);
  return dp;
}

DataParallel DataParallel::over_file(const std::filesystem::path& file, int rank, int world_size,
                                     const std::string& device_type) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("DataParallel::over_file: rank " + std::to_string(rank) + " of " +
                                std::to_string(world_size));
  DataParallel dp;
  dp.rank_ = dp.local_rank_ = rank;
  dp.world_size_ = world_size;
  if (world_size == 1) return dp;
  if (device_type == "cuda")
    dp.device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(rank % cuda_devices()));
  auto store = c10::make_intrusive<c10d::FileStore>(file.string(), world_size);
  dp.group_ = make_group(store, rank, world_size, device_type, "", dp.backend_);
  return dp;
}

void DataParallel::all_reduce_sum(torch::Tensor& tensor) {
  if (!group_) return;
  // Gloo reduces CPU tensors of the standard float types; others travel as fp32 copies.
  const bool copy =
      backend_ == "gloo" &&
      (tensor.is_cuda() || (tensor.scalar_type() != torch::kFloat32 && tensor.scalar_type() != torch::kFloat64));
  if (!copy) {
    group_->all_reduce_sum(tensor);
    return;
  }
  torch::Tensor staged = tensor.to(torch::kCPU, torch::kFloat32).contiguous();
  group_->all_reduce_sum(staged);
  tensor.copy_(staged);
}

void DataParallel::barrier() {
  if (!group_) return;
  torch::Tensor token = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  all_reduce_sum(token);
  (void)token.item<float>();  // waits for the device too
}

bool DataParallel::any(bool flag) {
  if (!group_) return flag;
  torch::Tensor votes = torch::full({1}, flag ? 1.0f : 0.0f, torch::TensorOptions().device(device_));
  all_reduce_sum(votes);
  return votes.item<float>() > 0.5f;
}

std::pair<int64_t, int64_t> row_slice(int64_t count, int rank, int world_size) {
  const int64_t r = rank, w = world_size;
  return {count * r / w, count * (r + 1) / w};
}

}  // namespace fairdiff::train
