// Launchers for the fused inference kernels of fused_kernels.cu. Plain pointers and sizes, no LibTorch types,
// so that nvcc never compiles LibTorch's headers; fused_ops.cpp checks shapes, dtypes and alignment and calls
// these on the current stream. Every tensor is contiguous, in NCHW unless `channels_last` says NHWC; `vectorized`
// promises 16-byte aligned pointers and row lengths (HW, F; C for NHWC) divisible by the 16-byte vector width (8
// halves or 4 floats).
//
// Shape legend: N batch, C channels, G groups, HW spatial positions, F GEGLU features.
// Each launcher returns nullptr on success, else the CUDA error string.
#pragma once

#include <cstdint>

namespace fairdiff::cuda_kernels {

enum class DType { kFloat32, kFloat16, kBFloat16 };

struct GroupNormArgs {
  const void* x = nullptr;              // [N, C, HW]
  void* out = nullptr;                  // [N, C, HW], or [N, HW, C] when `tokens_out`
  const void* weight = nullptr;         // [C]
  const void* bias = nullptr;           // [C]
  const void* channel_shift = nullptr;  // optional: added to x before normalising, [C] or [N, C]
  int64_t shift_batch_stride = 0;       // 0 for a [C] shift, C for [N, C]
  int64_t n = 0, c = 0, hw = 0, groups = 0;
  float eps = 1e-5f;
  bool silu = false;
  bool tokens_out = false;  // no channel_shift and no silu with this
  // x and out are [N, HW, C] (channels-last memory); `tokens_out` is then the same layout. Needs C / W <= 256.
  bool channels_last = false;
  bool vectorized = false;
  DType dtype = DType::kFloat32;
  float* workspace = nullptr;  // group_norm_workspace_floats(n, c, groups) floats
  void* stream = nullptr;      // cudaStream_t
};

int64_t group_norm_workspace_floats(int64_t n, int64_t c, int64_t groups, bool channels_last = false);
const char* group_norm(const GroupNormArgs& args);

// out [R, F] = proj[:, :F] * gelu(proj[:, F:]) (exact erf GELU), proj [R, 2F].
const char* geglu(const void* proj, void* out, int64_t rows, int64_t features, bool vectorized, DType dtype,
                  void* stream);

// out [N, C, HW] = (shortcut + shortcut_bias[c]) + (h + h_bias[c]), divided by `output_scale` unless it is 1;
// either bias may be null. Rounds where the unfused LibTorch sequence rounds. With `channels_last` the three
// tensors are [N, HW, C].
const char* bias_residual_add(const void* shortcut, const void* h, const void* h_bias, const void* shortcut_bias,
                              void* out, int64_t n, int64_t c, int64_t hw, float output_scale, bool vectorized,
                              DType dtype, void* stream, bool channels_last = false);

// out [N, C, HW] = x [N, C, HW] + tokens [N, HW, C] (the transpose through shared memory).
const char* add_tokens_to_nchw(const void* x, const void* tokens, void* out, int64_t n, int64_t c, int64_t hw,
                               DType dtype, void* stream);

}  // namespace fairdiff::cuda_kernels
