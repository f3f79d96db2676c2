#include "diffusion/cuda/captured_work.h"

#include <optional>
#include <stdexcept>

#include "diffusion/cuda/unet_graphs.h"

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace fairdiff {

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS

struct CapturedWork::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

struct SideStream::Impl {
  std::optional<c10::cuda::CUDAStream> stream;
};

struct SideStream::Use::Impl {
  std::optional<c10::cuda::CUDAStream> previous;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

CapturedWork::CapturedWork() : impl_(std::make_unique<Impl>()) {}
CapturedWork::~CapturedWork() = default;

bool CapturedWork::available() {
  return cuda_graphs_enabled();
}

void CapturedWork::capture(const torch::Device& device, const std::function<void()>& work) {
  if (!device.is_cuda()) throw std::logic_error("CapturedWork: capture needs a CUDA device");
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  const c10::cuda::CUDAGuard device_guard(index);
  if (c10::cuda::getCurrentCUDAStream(index) == c10::cuda::getDefaultCUDAStream(index)) {
    throw std::logic_error("CapturedWork: capture on a side stream, not the default stream");
  }
  c10::cuda::getCurrentCUDAStream(index).synchronize();
  impl_->graph = std::make_unique<at::cuda::CUDAGraph>();
  impl_->graph->capture_begin();
  try {
    work();
  } catch (...) {
    try {
      impl_->graph->capture_end();  // ends the capture so the stream is usable again
    } catch (...) {
      // An invalidated capture also fails to end; the first error is the one to report.
    }
    impl_->graph.reset();
    throw;
  }
  try {
    impl_->graph->capture_end();
  } catch (...) {
    impl_->graph.reset();  // not captured: replay() refuses, captured() says so
    throw;
  }
  c10::cuda::CUDACachingAllocator::emptyCache();
}

void CapturedWork::replay() {
  if (!impl_->graph) throw std::logic_error("CapturedWork: replay before capture");
  impl_->graph->replay();
}

bool CapturedWork::captured() const {
  return impl_->graph != nullptr;
}

SideStream::SideStream(const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  if (device.is_cuda()) {
    impl_->stream =
        c10::cuda::getStreamFromPool(false, device.has_index() ? device.index() : c10::cuda::current_device());
  }
}
SideStream::~SideStream() = default;

SideStream::Use::Use(SideStream& side) : impl_(std::make_unique<Impl>()) {
  if (!side.impl_->stream) return;
  const c10::cuda::CUDAStream stream = *side.impl_->stream;
  impl_->previous = c10::cuda::getCurrentCUDAStream(stream.device_index());
  at::cuda::CUDAEvent ready;
  ready.record(*impl_->previous);
  ready.block(stream);
  impl_->guard.emplace(stream);
}

SideStream::Use::~Use() {
  if (!impl_->previous) return;
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(impl_->previous->device_index());
  impl_->guard.reset();
  at::cuda::CUDAEvent done;
  done.record(stream);
  done.block(*impl_->previous);
}

#else

struct CapturedWork::Impl {};
struct SideStream::Impl {};
struct SideStream::Use::Impl {};

CapturedWork::CapturedWork() : impl_(std::make_unique<Impl>()) {}
CapturedWork::~CapturedWork() = default;

bool CapturedWork::available() {
  return false;
}

void CapturedWork::capture(const torch::Device&, const std::function<void()>&) {
  throw std::logic_error("CapturedWork: this build cannot capture CUDA graphs");
}

void CapturedWork::replay() {
  throw std::logic_error("CapturedWork: this build cannot capture CUDA graphs");
}

bool CapturedWork::captured() const {
  return false;
}

SideStream::SideStream(const torch::Device&) : impl_(std::make_unique<Impl>()) {}
SideStream::~SideStream() = default;
SideStream::Use::Use(SideStream&) : impl_(std::make_unique<Impl>()) {}
SideStream::Use::~Use() = default;

#endif

}  // namespace fairdiff
