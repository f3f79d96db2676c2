#include "diffusion/cuda/unet_graphs.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace fairdiff {

namespace {

std::atomic<bool>& graphs_switch() {
  static std::atomic<bool> enabled{[] {
    const char* env = std::getenv("FAIRDIFF_CUDA_GRAPHS");
    return !(env && std::string(env) == "0");
  }()};
  return enabled;
}

}  // namespace

void set_cuda_graphs(bool enabled) {
  graphs_switch() = enabled;
}

bool cuda_graphs_enabled() {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  return graphs_switch();
#else
  return false;
#endif
}

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS

namespace {

// What a captured graph is valid for: shapes, dtypes and layouts of the three inputs, and the device.
std::vector<int64_t> graph_key(const torch::Tensor& sample, const torch::Tensor& timesteps,
                               const torch::Tensor& context) {
  std::vector<int64_t> key = {sample.device().index(), static_cast<int64_t>(sample.scalar_type()),
                              static_cast<int64_t>(context.scalar_type()),
                              sample.is_contiguous(torch::MemoryFormat::ChannelsLast) ? 1 : 0};
  for (const torch::Tensor* t : {&sample, &timesteps, &context}) {
    key.push_back(t->dim());
    for (int64_t s : t->sizes()) key.push_back(s);
  }
  return key;
}

std::vector<const void*> weight_pointers(UNet2DConditionModel& unet) {
  std::vector<const void*> pointers;
  for (const auto& p : unet->parameters()) pointers.push_back(p.data_ptr());
  for (const auto& b : unet->buffers()) pointers.push_back(b.data_ptr());
  return pointers;
}

}  // namespace

struct UNetGraphs::Impl {
  struct Entry {
    torch::Tensor sample, timesteps, context, out;  // the graph's static inputs and output
    std::unique_ptr<at::cuda::CUDAGraph> graph;
  };
  const void* unet = nullptr;
  std::vector<const void*> weights;
  std::map<std::vector<int64_t>, Entry> entries;
};

UNetGraphs::UNetGraphs() : impl_(std::make_unique<Impl>()) {}
UNetGraphs::~UNetGraphs() = default;

int64_t UNetGraphs::captured() const {
  return static_cast<int64_t>(impl_->entries.size());
}

void UNetGraphs::clear() {
  impl_->entries.clear();
  impl_->weights.clear();
  impl_->unet = nullptr;
}

torch::Tensor UNetGraphs::forward(UNet2DConditionModel& unet, const torch::Tensor& sample,
                                  const torch::Tensor& timesteps, const torch::Tensor& context) {
  if (!cuda_graphs_enabled() || !sample.is_cuda() || unet->is_training() || torch::GradMode::is_enabled())
    return unet->forward(sample, timesteps, context);
  const torch::Tensor t = timesteps.to(sample.device());
  std::vector<const void*> weights = weight_pointers(unet);
  if (impl_->unet != unet.get() || weights != impl_->weights) {
    clear();
    impl_->unet = unet.get();
    impl_->weights = std::move(weights);
  }
  const std::vector<int64_t> key = graph_key(sample, t, context);
  auto it = impl_->entries.find(key);
  if (it == impl_->entries.end()) {
    const c10::DeviceIndex device = sample.device().index();
    const c10::cuda::CUDAGuard device_guard(device);
    Impl::Entry entry;
    entry.sample = sample.clone();  // keeps the layout
    entry.timesteps = t.clone();
    entry.context = context.clone();
    // Warm-up and capture on a side stream, as capture requires; lazy initialisation (cuBLAS handles, cuDNN
    // plans, the attention backend's choice) happens in the warm-up passes, outside the capture.
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device);
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device);
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(current);
    inputs_ready.block(side);
    {
      const c10::cuda::CUDAStreamGuard stream_guard(side);
      for (int i = 0; i < 2; ++i) unet->forward(entry.sample, entry.timesteps, entry.context);
      side.synchronize();
      entry.graph = std::make_unique<at::cuda::CUDAGraph>();
      entry.graph->capture_begin();
      entry.out = unet->forward(entry.sample, entry.timesteps, entry.context);
      entry.graph->capture_end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(current);
    it = impl_->entries.emplace(key, std::move(entry)).first;
  }
  Impl::Entry& entry = it->second;
  entry.sample.copy_(sample);
  entry.timesteps.copy_(t);
  entry.context.copy_(context);
  entry.graph->replay();  // on the current stream, after the copies
  return entry.out.clone();
}

#else

struct UNetGraphs::Impl {};

UNetGraphs::UNetGraphs() : impl_(std::make_unique<Impl>()) {}
UNetGraphs::~UNetGraphs() = default;

int64_t UNetGraphs::captured() const {
  return 0;
}

void UNetGraphs::clear() {}

torch::Tensor UNetGraphs::forward(UNet2DConditionModel& unet, const torch::Tensor& sample,
                                  const torch::Tensor& timesteps, const torch::Tensor& context) {
  return unet->forward(sample, timesteps, context);
}

#endif

}  // namespace fairdiff
