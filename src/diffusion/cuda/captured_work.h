// GPU work recorded once as a CUDA graph and replayed, and a side stream to run it on (issue 17: the DreamBooth
// step). A training step of SD 2.1's UNet launches several thousand small kernels through autograd; the CPU's
// launch rate, not the GPU, sets its pace (bench/RESULTS.md, "DreamBooth step"), and one graph launch removes it.
//
// Capture records the kernels that `work` launches on the current stream without running them; replay() runs them
// again on the tensors they were recorded on (static inputs: copy new values into them before each replay). Only
// builds with the CUDA kernels (FAIRDIFF_HAVE_CUDA_KERNELS) capture; elsewhere available() is false and the
// classes do nothing.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

namespace fairdiff {

class CapturedWork {
 public:
  CapturedWork();
  ~CapturedWork();
  CapturedWork(const CapturedWork&) = delete;
  CapturedWork& operator=(const CapturedWork&) = delete;

  // This build can capture, and CUDA graphs are switched on (FAIRDIFF_CUDA_GRAPHS, set_cuda_graphs).
  static bool available();
  // Records `work` on the current CUDA stream of `device`, which must not be the default stream (SideStream).
  // `work` must be capture-safe: no host synchronisation (.item()), no copies from host memory, and every
  // lazily initialised library state (cuBLAS handles, cuDNN plans) created by running it eagerly before.
  // Frees the allocator's cached blocks afterwards: the graph keeps its own pool.
  void capture(const torch::Device& device, const std::function<void()>& work);
  void replay();
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A stream of the pool of `device`'s streams, kept for the object's lifetime (CUDA devices in CUDA builds only).
class SideStream {
 public:
  explicit SideStream(const torch::Device& device);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  // While a Use lives the side stream is current: it first waits for the work queued on the stream that was
  // current, and that stream waits for the side stream's work when the Use ends.
  class Use {
   public:
    explicit Use(SideStream& stream);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fairdiff
