// Launchers for the fused kernels of fused_kernels.cu (inference, and the training step's AdamW update). Plain pointers
// and sizes, no LibTorch types, so that nvcc never compiles LibTorch's headers; fused_ops.cpp checks shapes, dtypes and
// alignment and calls these on the current stream. Every tensor is contiguous, in NCHW unless `channels_last` says
// NHWC; `vectorized` promises 16-byte aligned pointers and row lengths (HW, F; C for NHWC) divisible by the 16-byte
// vector width (8 halves or 4 floats).
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
  // x and out are [N, HW, C] (channels-last memory); `tokens_out` is then the same layout. Needs C / W <= 512.
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

// out [N, 2H, 2W, C] = x [N, H, W, C] repeated 2x2 (nearest upsampling, channels-last memory); any 2- or 4-byte
// element type, since it only copies. `vectorized`: 16-byte aligned pointers (16-byte pixels are then moved whole).
const char* upsample_nearest2x_nhwc(const void* x, void* out, int64_t n, int64_t c, int64_t h, int64_t w,
                                    int64_t element_bytes, bool vectorized, void* stream);

// LayerNorm over rows of C: sum_out = x + delta (when delta is not null; rounded to the dtype), out =
// layer_norm(sum) * weight + bias, all [R, C], weight and bias [C]. C at most layer_norm_max_channels.
struct LayerNormArgs {
  const void* x = nullptr;      // [R, C]
  const void* delta = nullptr;  // [R, C] or null
  void* sum_out = nullptr;      // [R, C]; needed with delta
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* out = nullptr;  // [R, C]
  int64_t rows = 0, c = 0;
  float eps = 1e-5f;
  bool vectorized = false;
  DType dtype = DType::kFloat32;
  void* stream = nullptr;  // cudaStream_t
};
int64_t layer_norm_max_channels(bool vectorized, DType dtype);
const char* layer_norm(const LayerNormArgs& args);

// One AdamW step over flat fp32 buffers (training): g = grad * *multiplier; master *= decay; exp_avg lerps to g;
// exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) g^2; master += neg_step_size * exp_avg / (sqrt(exp_avg_sq) /
// bias_correction2_sqrt + eps); model (if not null) = master in model_dtype. The kernel's only argument struct.
struct AdamWStepArgs {
  void* master = nullptr;            // [n] fp32
  void* exp_avg = nullptr;           // [n] fp32
  void* exp_avg_sq = nullptr;        // [n] fp32
  const void* grad = nullptr;        // [n] grad_dtype
  void* model = nullptr;             // [n] model_dtype, or null
  const void* multiplier = nullptr;  // 0-d fp32 on the device
  int64_t n = 0;
  float decay = 1, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0, bias_correction2_sqrt = 1, eps = 0,
        neg_step_size = 0;
  DType grad_dtype = DType::kFloat32;
  DType model_dtype = DType::kFloat32;
  void* stream = nullptr;  // cudaStream_t
};
const char* adamw_step(const AdamWStepArgs& args);

}  // namespace fairdiff::cuda_kernels
