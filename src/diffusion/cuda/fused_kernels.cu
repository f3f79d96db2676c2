// Fused element-wise kernels for UNet and VAE inference (contracts in fused_kernels.h).
//
// Why they exist: at batch 32 the UNet spends ~40% of a step in LibTorch's element-wise passes, each one a
// full read and write of an activation far larger than L2. These kernels do in one pass what LibTorch does
// in two to five: GroupNorm (+ a per-channel shift before it, + SiLU after it), GEGLU, the ResNet block's
// conv biases plus residual add, the Transformer2D's token <-> NCHW transposes, and the transformer blocks'
// residual adds with the LayerNorm that follows each.
//
// Numerics: statistics in float32; every place where the unfused LibTorch sequence stores an intermediate in
// the activation dtype is rounded the same way here (`round_to`), so the fused results differ from LibTorch
// only through the order of the GroupNorm reductions.
//
// Shape legend: N batch, C channels, G groups, Cg = C / G, HW spatial positions, F GEGLU features,
// W elements per memory access (16 bytes when vectorised, else 1).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "diffusion/cuda/fused_kernels.h"

namespace fairdiff::cuda_kernels {
namespace {

constexpr int kMaxSplits = 32;       // blocks that share one group's statistics in the split path
constexpr int kMaxSplitsNhwc = 128;  // blocks that share one image's channel statistics in the NHWC path
constexpr int kMaxNhwcPacks = 512;   // channels-last GroupNorm: C / W at most this
constexpr int kUnroll = 4;           // independent 16-byte loads in flight per thread
constexpr float kSqrtHalf = 0.70710678118654752440f;

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Where the unfused sequence stores an intermediate tensor in T, round the same way.
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_float(from_float<T>(v));
}

template <typename T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block whose size is a multiple of 32, returned to every thread; `scratch` holds 32 floats.
__device__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // earlier readers of scratch are done
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x + 31) >> 5;
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

template <typename T>
__device__ __forceinline__ float silu(float y) {
  // LibTorch applies SiLU to the stored (rounded) GroupNorm output.
  y = round_to<T>(y);
  return y / (1.f + expf(-y));
}

// ---- GroupNorm, group resident in shared memory: one block per (n, g), one read and one write. ----

template <typename T, int W, bool kSilu>
__global__ void __launch_bounds__(512)
    group_norm_resident_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                               const T* __restrict__ bias, const T* __restrict__ shift, int64_t shift_stride, int c,
                               int hw, int groups, float eps) {
  using P = Pack<T, W>;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  __shared__ float scratch[32];
  P* tile = reinterpret_cast<P*>(smem_bytes);
  const int ng = blockIdx.x, n = ng / groups, g = ng % groups;
  const int cg = c / groups, c0 = g * cg;
  const int len = cg * hw, packs = len / W, packs_per_row = hw / W;
  const int64_t base = static_cast<int64_t>(ng) * len;
  const P* src = reinterpret_cast<const P*>(x + base);
  P* dst = reinterpret_cast<P*>(out + base);
  const T* shift_row = shift ? shift + n * shift_stride : nullptr;

  float sum = 0.f;
  for (int i0 = threadIdx.x; i0 < packs; i0 += kUnroll * blockDim.x) {
    P p[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i < packs) p[u] = src[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i >= packs) continue;
      if (shift_row) {
        const float s = to_float(shift_row[c0 + i / packs_per_row]);
#pragma unroll
        for (int k = 0; k < W; ++k) p[u].v[k] = from_float<T>(to_float(p[u].v[k]) + s);
      }
#pragma unroll
      for (int k = 0; k < W; ++k) sum += to_float(p[u].v[k]);
      tile[i] = p[u];
    }
  }
  const float mean = block_sum(sum, scratch) / static_cast<float>(len);
  // Each thread reads back only the packs it wrote, so no barrier is needed before these loops.
  float squares = 0.f;
  for (int i = threadIdx.x; i < packs; i += blockDim.x) {
    const P p = tile[i];
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float d = to_float(p.v[k]) - mean;
      squares += d * d;
    }
  }
  const float rstd = rsqrtf(block_sum(squares, scratch) / static_cast<float>(len) + eps);
  for (int i = threadIdx.x; i < packs; i += blockDim.x) {
    const int ch = c0 + i / packs_per_row;
    const float a = rstd * to_float(weight[ch]);
    const float b = to_float(bias[ch]) - mean * a;
    const P p = tile[i];
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      float y = to_float(p.v[k]) * a + b;
      if (kSilu) y = silu<T>(y);
      o.v[k] = from_float<T>(y);
    }
    dst[i] = o;
  }
}

// ---- GroupNorm, split path (groups too large for shared memory, or token output). ----
// Sums are taken about a pivot (the group's first shifted element) so that E[d^2] - E[d]^2 does not cancel
// when the mean is large against the spread; every block of a group uses the same pivot, so partial sums add.

template <typename T>
__device__ __forceinline__ float group_pivot(const T* xg, const T* shift_row, int c0) {
  return shift_row ? round_to<T>(to_float(xg[0]) + to_float(shift_row[c0])) : to_float(xg[0]);
}

template <typename T, int W>
__global__ void __launch_bounds__(256)
    group_norm_stats_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                            float* __restrict__ partial, int c, int64_t hw, int groups, int64_t chunk) {
  using P = Pack<T, W>;
  __shared__ float scratch[32];
  const int ng = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int n = ng / groups, g = ng % groups, cg = c / groups, c0 = g * cg;
  const int64_t len = cg * hw, packs_per_row = hw / W;
  const T* xg = x + static_cast<int64_t>(ng) * len;
  const T* shift_row = shift ? shift + n * shift_stride : nullptr;
  const float pivot = group_pivot(xg, shift_row, c0);
  const int64_t stop = (split + 1) * chunk < len ? (split + 1) * chunk : len;
  const int64_t begin = split * chunk / W, end = stop / W;
  const P* src = reinterpret_cast<const P*>(xg);
  float s1 = 0.f, s2 = 0.f;
  for (int64_t i0 = begin + threadIdx.x; i0 < end; i0 += kUnroll * blockDim.x) {
    P p[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * blockDim.x;
      if (i < end) p[u] = src[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * blockDim.x;
      if (i >= end) continue;
      const float s = shift_row ? to_float(shift_row[c0 + i / packs_per_row]) : 0.f;
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const float v = shift_row ? round_to<T>(to_float(p[u].v[k]) + s) : to_float(p[u].v[k]);
        const float d = v - pivot;
        s1 += d;
        s2 += d * d;
      }
    }
  }
  s1 = block_sum(s1, scratch);
  s2 = block_sum(s2, scratch);
  if (threadIdx.x == 0) {
    partial[(static_cast<int64_t>(ng) * splits + split) * 2] = s1;
    partial[(static_cast<int64_t>(ng) * splits + split) * 2 + 1] = s2;
  }
}

// Per (n, c): y = x * scale + offset, folding the group's mean and rstd with the affine weight and bias.
template <typename T>
__global__ void group_norm_finalize_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                                           const float* __restrict__ partial, const T* __restrict__ weight,
                                           const T* __restrict__ bias, float* __restrict__ scale,
                                           float* __restrict__ offset, int64_t rows, int c, int64_t hw, int groups,
                                           int splits, float eps) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  const int n = static_cast<int>(row / c), ch = static_cast<int>(row % c);
  const int cg = c / groups, g = ch / cg;
  const int64_t ng = static_cast<int64_t>(n) * groups + g, len = cg * hw;
  float s1 = 0.f, s2 = 0.f;
  for (int s = 0; s < splits; ++s) {
    s1 += partial[(ng * splits + s) * 2];
    s2 += partial[(ng * splits + s) * 2 + 1];
  }
  const float inv_len = 1.f / static_cast<float>(len);
  const float mean_about_pivot = s1 * inv_len;
  const float var = fmaxf(s2 * inv_len - mean_about_pivot * mean_about_pivot, 0.f);
  const float mean = group_pivot(x + ng * len, shift ? shift + n * shift_stride : nullptr, g * cg) + mean_about_pivot;
  const float a = rsqrtf(var + eps) * to_float(weight[ch]);
  scale[row] = a;
  offset[row] = to_float(bias[ch]) - mean * a;
}

template <typename T, int W, bool kSilu>
__global__ void __launch_bounds__(256)
    group_norm_apply_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                            const float* __restrict__ scale, const float* __restrict__ offset, T* __restrict__ out,
                            int c, int64_t hw, int64_t packs) {
  using P = Pack<T, W>;
  const P* src = reinterpret_cast<const P*>(x);
  P* dst = reinterpret_cast<P*>(out);
  const int64_t packs_per_row = hw / W;
  const int64_t i0 = blockIdx.x * static_cast<int64_t>(blockDim.x) * kUnroll + threadIdx.x;
  P p[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i < packs) p[u] = src[i];
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    const int64_t row = i / packs_per_row;
    const float a = scale[row], b = offset[row];
    const float s = shift ? to_float(shift[(row / c) * shift_stride + row % c]) : 0.f;
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      float v = to_float(p[u].v[k]);
      if (shift) v = round_to<T>(v + s);
      float y = v * a + b;
      if (kSilu) y = silu<T>(y);
      o.v[k] = from_float<T>(y);
    }
    dst[i] = o;
  }
}

// [N, C, HW] normalised into [N, HW, C] through a 32x32 shared-memory tile: both sides coalesced.
template <typename T>
__global__ void group_norm_tokens_kernel(const T* __restrict__ x, const float* __restrict__ scale,
                                         const float* __restrict__ offset, T* __restrict__ out, int c, int hw) {
  __shared__ float tile[32][33];
  const int n = blockIdx.z, c_base = blockIdx.y * 32, hw_base = blockIdx.x * 32;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int ch = c_base + j, pos = hw_base + threadIdx.x;
    if (ch < c && pos < hw) {
      const int64_t row = static_cast<int64_t>(n) * c + ch;
      tile[j][threadIdx.x] = to_float(x[row * hw + pos]) * scale[row] + offset[row];
    }
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int pos = hw_base + j, ch = c_base + threadIdx.x;
    if (pos < hw && ch < c) out[(static_cast<int64_t>(n) * hw + pos) * c + ch] = from_float<T>(tile[threadIdx.x][j]);
  }
}

// ---- GroupNorm on channels-last activations [N, HW, C]. ----
// A group's elements are Cg consecutive channels of every pixel, so a block reads whole pixel rows (coalesced):
// blocks split an image's pixels, each thread keeps per-channel sums of the W channels of its pack, and the sums
// of the block's threads go to a workspace row per (n, split, channel). The finalize kernel adds a group's
// channels over the splits. Sums are about the group's first element (pixel 0, channel c0), as in the NCHW path.

template <typename T>
__device__ __forceinline__ float group_pivot_nhwc(const T* x_image, const T* shift_row, int c0) {
  return shift_row ? round_to<T>(to_float(x_image[c0]) + to_float(shift_row[c0])) : to_float(x_image[c0]);
}

template <typename T, int W>
__global__ void __launch_bounds__(512)
    group_norm_nhwc_stats_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                                 float* __restrict__ partial, int c, int hw, int groups, int pixels_per_split) {
  using P = Pack<T, W>;
  extern __shared__ float sums[];  // [rows][c] first sums, then [rows][c] second sums
  const int n = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int packs = c / W, rows = static_cast<int>(blockDim.x) / packs, cg = c / groups;
  const int pack = static_cast<int>(threadIdx.x) % packs, row = static_cast<int>(threadIdx.x) / packs;
  const T* image = x + static_cast<int64_t>(n) * hw * c;
  const T* shift_row = shift ? shift + n * shift_stride : nullptr;
  float s1[W], s2[W], pivot[W], sh[W];
#pragma unroll
  for (int k = 0; k < W; ++k) {
    const int ch = pack * W + k;
    s1[k] = s2[k] = 0.f;
    pivot[k] = group_pivot_nhwc(image, shift_row, ch / cg * cg);
    sh[k] = shift_row ? to_float(shift_row[ch]) : 0.f;
  }
  const int begin = split * pixels_per_split, end = min(hw, begin + pixels_per_split);
  if (row < rows) {
    const P* src = reinterpret_cast<const P*>(image);
    for (int p = begin + row; p < end; p += rows) {
      const P v = src[static_cast<int64_t>(p) * packs + pack];
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const float value = shift_row ? round_to<T>(to_float(v.v[k]) + sh[k]) : to_float(v.v[k]);
        const float d = value - pivot[k];
        s1[k] += d;
        s2[k] += d * d;
      }
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      sums[row * c + pack * W + k] = s1[k];
      sums[(rows + row) * c + pack * W + k] = s2[k];
    }
  }
  __syncthreads();
  float* out = partial + (static_cast<int64_t>(n) * splits + split) * 2 * c;
  for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
    float a = 0.f, b = 0.f;
    for (int r = 0; r < rows; ++r) {
      a += sums[r * c + ch];
      b += sums[(rows + r) * c + ch];
    }
    out[ch] = a;
    out[c + ch] = b;
  }
}

// One block per (n, g): the group's Cg channels over every split, summed by the block (a thread per (n, c) adding
// Cg x splits partials one after another made this the slowest kernel of a batch-1 step).
template <typename T>
__global__ void __launch_bounds__(256)
    group_norm_nhwc_finalize_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                                    const float* __restrict__ partial, const T* __restrict__ weight,
                                    const T* __restrict__ bias, float* __restrict__ scale, float* __restrict__ offset,
                                    int c, int hw, int groups, int splits, float eps) {
  __shared__ float scratch[32];
  const int n = blockIdx.x / groups, g = blockIdx.x % groups;
  const int cg = c / groups, c0 = g * cg;
  float s1 = 0.f, s2 = 0.f;
  for (int i = threadIdx.x; i < splits * cg; i += blockDim.x) {
    const float* p = partial + (static_cast<int64_t>(n) * splits + i / cg) * 2 * c + c0 + i % cg;
    s1 += p[0];
    s2 += p[c];
  }
  s1 = block_sum(s1, scratch);
  s2 = block_sum(s2, scratch);
  const float inv_len = 1.f / (static_cast<float>(cg) * static_cast<float>(hw));
  const float mean_about_pivot = s1 * inv_len;
  const float var = fmaxf(s2 * inv_len - mean_about_pivot * mean_about_pivot, 0.f);
  const float mean =
      group_pivot_nhwc(x + static_cast<int64_t>(n) * hw * c, shift ? shift + n * shift_stride : nullptr, c0) +
      mean_about_pivot;
  const float rstd = rsqrtf(var + eps);
  for (int k = threadIdx.x; k < cg; k += blockDim.x) {
    const int ch = c0 + k;
    const float a = rstd * to_float(weight[ch]);
    scale[static_cast<int64_t>(n) * c + ch] = a;
    offset[static_cast<int64_t>(n) * c + ch] = to_float(bias[ch]) - mean * a;
  }
}

template <typename T, int W, bool kSilu>
__global__ void __launch_bounds__(256)
    group_norm_nhwc_apply_kernel(const T* __restrict__ x, const T* __restrict__ shift, int64_t shift_stride,
                                 const float* __restrict__ scale, const float* __restrict__ offset, T* __restrict__ out,
                                 int c, int64_t image_elements, int64_t packs) {
  using P = Pack<T, W>;
  const P* src = reinterpret_cast<const P*>(x);
  P* dst = reinterpret_cast<P*>(out);
  const int64_t i0 = blockIdx.x * static_cast<int64_t>(blockDim.x) * kUnroll + threadIdx.x;
  P p[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i < packs) p[u] = src[i];
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    const int64_t e = i * W;
    const int64_t n = e / image_elements;
    const int ch0 = static_cast<int>(e % c);
    const float* sc = scale + n * c + ch0;
    const float* of = offset + n * c + ch0;
    const T* sh = shift ? shift + n * shift_stride + ch0 : nullptr;
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      float v = to_float(p[u].v[k]);
      if (sh) v = round_to<T>(v + to_float(sh[k]));
      float y = v * sc[k] + of[k];
      if (kSilu) y = silu<T>(y);
      o.v[k] = from_float<T>(y);
    }
    dst[i] = o;
  }
}

// ---- GEGLU, residual, token add. ----

template <typename T, int W>
__global__ void __launch_bounds__(256)
    geglu_kernel(const T* __restrict__ proj, T* __restrict__ out, int64_t features, int64_t packs) {
  using P = Pack<T, W>;
  const P* src = reinterpret_cast<const P*>(proj);
  P* dst = reinterpret_cast<P*>(out);
  const int64_t packs_per_row = features / W;
  const int64_t i0 = blockIdx.x * static_cast<int64_t>(blockDim.x) * 2 + threadIdx.x;
  P value[2], gate[2];
#pragma unroll
  for (int u = 0; u < 2; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    const int64_t row = i / packs_per_row, col = i % packs_per_row;
    value[u] = src[row * 2 * packs_per_row + col];
    gate[u] = src[row * 2 * packs_per_row + packs_per_row + col];
  }
#pragma unroll
  for (int u = 0; u < 2; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float g = to_float(gate[u].v[k]);
      // LibTorch's exact GELU, stored in T, then the product.
      const float gelu = round_to<T>(g * 0.5f * (1.f + erff(g * kSqrtHalf)));
      o.v[k] = from_float<T>(to_float(value[u].v[k]) * gelu);
    }
    dst[i] = o;
  }
}

template <typename T, int W, bool kChannelsLast>
__global__ void __launch_bounds__(256)
    bias_residual_kernel(const T* __restrict__ shortcut, const T* __restrict__ h, const T* __restrict__ h_bias,
                         const T* __restrict__ shortcut_bias, T* __restrict__ out, int c, int64_t hw, int64_t packs,
                         float inv_scale, bool scaled) {
  using P = Pack<T, W>;
  const P* sc = reinterpret_cast<const P*>(shortcut);
  const P* hp = reinterpret_cast<const P*>(h);
  P* dst = reinterpret_cast<P*>(out);
  const int64_t packs_per_row = hw / W;
  const int64_t i0 = blockIdx.x * static_cast<int64_t>(blockDim.x) * 2 + threadIdx.x;
  P a[2], b[2];
#pragma unroll
  for (int u = 0; u < 2; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    a[u] = sc[i];
    b[u] = hp[i];
  }
#pragma unroll
  for (int u = 0; u < 2; ++u) {
    const int64_t i = i0 + u * blockDim.x;
    if (i >= packs) continue;
    // NCHW: a pack lies in one channel's row; NHWC: its W elements are channels ch .. ch + W - 1 of one pixel.
    const int ch = kChannelsLast ? static_cast<int>((i * W) % c) : static_cast<int>((i / packs_per_row) % c);
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const int channel = kChannelsLast ? ch + k : ch;
      const float hb = h_bias ? to_float(h_bias[channel]) : 0.f;
      const float sb = shortcut_bias ? to_float(shortcut_bias[channel]) : 0.f;
      float hv = to_float(b[u].v[k]);
      if (h_bias) hv = round_to<T>(hv + hb);
      float sv = to_float(a[u].v[k]);
      if (shortcut_bias) sv = round_to<T>(sv + sb);
      float y = sv + hv;
      if (scaled) y = round_to<T>(y) * inv_scale;
      o.v[k] = from_float<T>(y);
    }
    dst[i] = o;
  }
}

template <typename T>
__global__ void add_tokens_kernel(const T* __restrict__ x, const T* __restrict__ tokens, T* __restrict__ out, int c,
                                  int hw) {
  __shared__ float tile[32][33];
  const int n = blockIdx.z, c_base = blockIdx.y * 32, hw_base = blockIdx.x * 32;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int pos = hw_base + j, ch = c_base + threadIdx.x;
    if (pos < hw && ch < c) tile[j][threadIdx.x] = to_float(tokens[(static_cast<int64_t>(n) * hw + pos) * c + ch]);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int ch = c_base + j, pos = hw_base + threadIdx.x;
    if (ch < c && pos < hw) {
      const int64_t idx = (static_cast<int64_t>(n) * c + ch) * hw + pos;
      out[idx] = from_float<T>(to_float(x[idx]) + tile[threadIdx.x][j]);
    }
  }
}

// ---- LayerNorm over the last dimension, after a residual add: one warp per row, the row in registers. ----
// sum = x + delta, stored in T as LibTorch stores the add's result, then normalised from those stored values:
// mean, then the variance about it, in float32 (two passes over the registers, no Welford needed).
template <typename T, int W, int kPacks>
__global__ void __launch_bounds__(256)
    layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ delta, T* __restrict__ sum_out,
                      const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ out, int64_t rows,
                      int c, float eps) {
  using P = Pack<T, W>;
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int packs = c / W;
  const int64_t base = row * packs;
  const P* xp = reinterpret_cast<const P*>(x) + base;
  const P* dp = delta ? reinterpret_cast<const P*>(delta) + base : nullptr;
  float v[kPacks][W];
  float total = 0.f;
#pragma unroll
  for (int p = 0; p < kPacks; ++p) {
    const int i = lane + p * 32;
    if (i >= packs) continue;
    P a = xp[i];
    if (dp) {
      const P d = dp[i];
#pragma unroll
      for (int k = 0; k < W; ++k) a.v[k] = from_float<T>(to_float(a.v[k]) + to_float(d.v[k]));
      reinterpret_cast<P*>(sum_out)[base + i] = a;
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      v[p][k] = to_float(a.v[k]);
      total += v[p][k];
    }
  }
  const float mean = warp_sum(total) / static_cast<float>(c);
  float squares = 0.f;
#pragma unroll
  for (int p = 0; p < kPacks; ++p) {
    if (lane + p * 32 >= packs) continue;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float d = v[p][k] - mean;
      squares += d * d;
    }
  }
  const float rstd = rsqrtf(warp_sum(squares) / static_cast<float>(c) + eps);
  const P* wp = reinterpret_cast<const P*>(weight);
  const P* bp = reinterpret_cast<const P*>(bias);
  P* op = reinterpret_cast<P*>(out) + base;
#pragma unroll
  for (int p = 0; p < kPacks; ++p) {
    const int i = lane + p * 32;
    if (i >= packs) continue;
    const P w = wp[i], b = bp[i];
    P o;
#pragma unroll
    for (int k = 0; k < W; ++k) o.v[k] = from_float<T>((v[p][k] - mean) * rstd * to_float(w.v[k]) + to_float(b.v[k]));
    op[i] = o;
  }
}

// ---- Nearest 2x upsampling of channels-last activations: every output pack copies one input pack. ----
template <int W>
__global__ void __launch_bounds__(256)
    upsample_nearest2x_nhwc_kernel(const uint16_t* __restrict__ x, uint16_t* __restrict__ out, int64_t packs,
                                   int packs_per_pixel, int out_w, int out_h) {
  using P = Pack<uint16_t, W>;
  const P* src = reinterpret_cast<const P*>(x);
  P* dst = reinterpret_cast<P*>(out);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < packs; i += stride) {
    const int64_t pixel = i / packs_per_pixel;
    const int pack = static_cast<int>(i % packs_per_pixel);
    const int ox = static_cast<int>(pixel % out_w);
    const int64_t rest = pixel / out_w;
    const int oy = static_cast<int>(rest % out_h);
    const int64_t n = rest / out_h;
    const int64_t in_pixel = (n * (out_h / 2) + oy / 2) * (out_w / 2) + ox / 2;
    dst[i] = src[in_pixel * packs_per_pixel + pack];
  }
}

// ---- Host side. ----

const char* launch_error() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

int device_attribute(cudaDeviceAttr attribute) {
  int device = 0, value = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&value, attribute, device);
  return value;
}

int sm_count() {
  static const int count = std::max(1, device_attribute(cudaDevAttrMultiProcessorCount));
  return count;
}

// Shared memory one block may hold, less room for the kernel's static reduction scratch.
int64_t resident_smem_limit() {
  static const int64_t limit = std::max(0, device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin) - 1024);
  return limit;
}

template <typename T, int W, bool kSilu>
const char* group_norm_resident(const GroupNormArgs& a, int64_t bytes, cudaStream_t stream) {
  auto kernel = group_norm_resident_kernel<T, W, kSilu>;
  static int64_t configured = 48 * 1024;
  if (bytes > configured) {
    const cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(resident_smem_limit()));
    if (error != cudaSuccess) return cudaGetErrorString(error);
    configured = resident_smem_limit();
  }
  const int64_t packs = a.c / a.groups * a.hw / W;
  const int threads = packs >= 4096 ? 512 : packs >= 1024 ? 256 : 128;
  kernel<<<static_cast<unsigned>(a.n * a.groups), threads, bytes, stream>>>(
      static_cast<const T*>(a.x), static_cast<T*>(a.out), static_cast<const T*>(a.weight),
      static_cast<const T*>(a.bias), static_cast<const T*>(a.channel_shift), a.shift_batch_stride,
      static_cast<int>(a.c), static_cast<int>(a.hw), static_cast<int>(a.groups), a.eps);
  return launch_error();
}

template <typename T, int W>
const char* group_norm_split(const GroupNormArgs& a, cudaStream_t stream) {
  const int64_t ng = a.n * a.groups, len = a.c / a.groups * a.hw;
  // Enough blocks to cover every SM several times, each with at least 4096 elements.
  const int64_t target_blocks = 4 * static_cast<int64_t>(sm_count());
  int64_t splits = ng < target_blocks ? std::min<int64_t>(kMaxSplits, (target_blocks + ng - 1) / ng) : 1;
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, len / 4096));
  int64_t chunk = (len + splits - 1) / splits;
  chunk = (chunk + W - 1) / W * W;
  splits = (len + chunk - 1) / chunk;
  float* partial = a.workspace;
  float* scale = partial + ng * kMaxSplits * 2;
  float* offset = scale + a.n * a.c;
  const T* x = static_cast<const T*>(a.x);
  const T* shift = static_cast<const T*>(a.channel_shift);
  group_norm_stats_kernel<T, W><<<dim3(static_cast<unsigned>(ng), static_cast<unsigned>(splits)), 256, 0, stream>>>(
      x, shift, a.shift_batch_stride, partial, static_cast<int>(a.c), a.hw, static_cast<int>(a.groups), chunk);
  const int64_t rows = a.n * a.c;
  group_norm_finalize_kernel<T><<<static_cast<unsigned>((rows + 255) / 256), 256, 0, stream>>>(
      x, shift, a.shift_batch_stride, partial, static_cast<const T*>(a.weight), static_cast<const T*>(a.bias), scale,
      offset, rows, static_cast<int>(a.c), a.hw, static_cast<int>(a.groups), static_cast<int>(splits), a.eps);
  if (a.tokens_out) {
    const dim3 grid(static_cast<unsigned>((a.hw + 31) / 32), static_cast<unsigned>((a.c + 31) / 32),
                    static_cast<unsigned>(a.n));
    group_norm_tokens_kernel<T><<<grid, dim3(32, 8), 0, stream>>>(x, scale, offset, static_cast<T*>(a.out),
                                                                  static_cast<int>(a.c), static_cast<int>(a.hw));
    return launch_error();
  }
  const int64_t packs = rows * a.hw / W;
  const unsigned blocks = static_cast<unsigned>((packs + 256 * kUnroll - 1) / (256 * kUnroll));
  auto apply = a.silu ? group_norm_apply_kernel<T, W, true> : group_norm_apply_kernel<T, W, false>;
  apply<<<blocks, 256, 0, stream>>>(x, shift, a.shift_batch_stride, scale, offset, static_cast<T*>(a.out),
                                    static_cast<int>(a.c), a.hw, packs);
  return launch_error();
}

template <typename T, int W>
const char* group_norm_nhwc(const GroupNormArgs& a, cudaStream_t stream) {
  const int packs_per_pixel = static_cast<int>(a.c / W);
  if (packs_per_pixel > kMaxNhwcPacks) return "group_norm: channels-last needs C / W <= 512";
  // A thread per pack of a pixel, `rows` pixels at a time: 512 threads where a pixel has more than 256 packs (the
  // UNet's 2560-channel concatenations).
  const int threads = packs_per_pixel > 256 ? 512 : 256;
  // Blocks over each image's pixels: every SM several times, at least 16 pixels each.
  const int64_t target_blocks = 4 * static_cast<int64_t>(sm_count());
  int64_t splits = std::min<int64_t>(kMaxSplitsNhwc, (target_blocks + a.n - 1) / a.n);
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, a.hw / 16));
  const int64_t per_split = (a.hw + splits - 1) / splits;
  splits = (a.hw + per_split - 1) / per_split;
  float* partial = a.workspace;
  float* scale = partial + a.n * kMaxSplitsNhwc * 2 * a.c;
  float* offset = scale + a.n * a.c;
  const T* x = static_cast<const T*>(a.x);
  const T* shift = static_cast<const T*>(a.channel_shift);
  const int rows = threads / packs_per_pixel;
  const size_t smem = static_cast<size_t>(2 * rows * a.c) * sizeof(float);
  group_norm_nhwc_stats_kernel<T, W>
      <<<dim3(static_cast<unsigned>(a.n), static_cast<unsigned>(splits)), threads, smem, stream>>>(
          x, shift, a.shift_batch_stride, partial, static_cast<int>(a.c), static_cast<int>(a.hw),
          static_cast<int>(a.groups), static_cast<int>(per_split));
  const int64_t rows_nc = a.n * a.c;
  group_norm_nhwc_finalize_kernel<T><<<static_cast<unsigned>(a.n * a.groups), 256, 0, stream>>>(
      x, shift, a.shift_batch_stride, partial, static_cast<const T*>(a.weight), static_cast<const T*>(a.bias), scale,
      offset, static_cast<int>(a.c), static_cast<int>(a.hw), static_cast<int>(a.groups), static_cast<int>(splits),
      a.eps);
  const int64_t packs = rows_nc * a.hw / W;
  const unsigned blocks = static_cast<unsigned>((packs + 256 * kUnroll - 1) / (256 * kUnroll));
  auto apply = a.silu ? group_norm_nhwc_apply_kernel<T, W, true> : group_norm_nhwc_apply_kernel<T, W, false>;
  apply<<<blocks, 256, 0, stream>>>(x, shift, a.shift_batch_stride, scale, offset, static_cast<T*>(a.out),
                                    static_cast<int>(a.c), a.hw * a.c, packs);
  return launch_error();
}

template <typename T, int W>
const char* group_norm_typed(const GroupNormArgs& a) {
  auto stream = static_cast<cudaStream_t>(a.stream);
  if (a.channels_last) return group_norm_nhwc<T, W>(a, stream);
  const int64_t bytes = a.c / a.groups * a.hw * static_cast<int64_t>(sizeof(T));
  if (!a.tokens_out && bytes <= resident_smem_limit()) {
    return a.silu ? group_norm_resident<T, W, true>(a, bytes, stream)
                  : group_norm_resident<T, W, false>(a, bytes, stream);
  }
  return group_norm_split<T, W>(a, stream);
}

template <typename T>
const char* group_norm_dispatch(const GroupNormArgs& a) {
  return a.vectorized ? group_norm_typed<T, 16 / sizeof(T)>(a) : group_norm_typed<T, 1>(a);
}

template <typename T, int W>
const char* geglu_typed(const void* proj, void* out, int64_t rows, int64_t features, cudaStream_t stream) {
  const int64_t packs = rows * features / W;
  const unsigned blocks = static_cast<unsigned>((packs + 511) / 512);
  geglu_kernel<T, W><<<blocks, 256, 0, stream>>>(static_cast<const T*>(proj), static_cast<T*>(out), features, packs);
  return launch_error();
}

template <typename T, int W>
const char* residual_typed(const void* shortcut, const void* h, const void* h_bias, const void* shortcut_bias,
                           void* out, int64_t n, int64_t c, int64_t hw, float output_scale, cudaStream_t stream,
                           bool channels_last) {
  const int64_t packs = n * c * hw / W;
  const unsigned blocks = static_cast<unsigned>((packs + 511) / 512);
  auto kernel = channels_last ? bias_residual_kernel<T, W, true> : bias_residual_kernel<T, W, false>;
  kernel<<<blocks, 256, 0, stream>>>(static_cast<const T*>(shortcut), static_cast<const T*>(h),
                                     static_cast<const T*>(h_bias), static_cast<const T*>(shortcut_bias),
                                     static_cast<T*>(out), static_cast<int>(c), hw, packs, 1.f / output_scale,
                                     output_scale != 1.f);
  return launch_error();
}

template <typename T>
const char* add_tokens_typed(const void* x, const void* tokens, void* out, int64_t n, int64_t c, int64_t hw,
                             cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((hw + 31) / 32), static_cast<unsigned>((c + 31) / 32),
                  static_cast<unsigned>(n));
  add_tokens_kernel<T><<<grid, dim3(32, 8), 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(tokens),
                                                         static_cast<T*>(out), static_cast<int>(c),
                                                         static_cast<int>(hw));
  return launch_error();
}

template <typename T, int W, int kPacks>
const char* layer_norm_launch(const LayerNormArgs& a, cudaStream_t stream) {
  constexpr int64_t kRowsPerBlock = 256 / 32;
  const unsigned blocks = static_cast<unsigned>((a.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  layer_norm_kernel<T, W, kPacks><<<blocks, 256, 0, stream>>>(
      static_cast<const T*>(a.x), static_cast<const T*>(a.delta), static_cast<T*>(a.sum_out),
      static_cast<const T*>(a.weight), static_cast<const T*>(a.bias), static_cast<T*>(a.out), a.rows,
      static_cast<int>(a.c), a.eps);
  return launch_error();
}

template <typename T, int W>
const char* layer_norm_packs(const LayerNormArgs& a, cudaStream_t stream) {
  const int64_t per_lane = (a.c / W + 31) / 32;
  if (per_lane <= 1) return layer_norm_launch<T, W, 1>(a, stream);
  if (per_lane <= 2) return layer_norm_launch<T, W, 2>(a, stream);
  if (per_lane <= 4) return layer_norm_launch<T, W, 4>(a, stream);
  if (per_lane <= 8) return layer_norm_launch<T, W, 8>(a, stream);
  return "layer_norm: row longer than layer_norm_max_channels";
}

template <typename T>
const char* layer_norm_typed(const LayerNormArgs& a, cudaStream_t stream) {
  return a.vectorized ? layer_norm_packs<T, 16 / sizeof(T)>(a, stream) : layer_norm_packs<T, 1>(a, stream);
}

// One AdamW update over flat buffers (train/flat_adamw.h), every element once: the operations and their order
// are torch.optim.AdamW's single-tensor path, which FlatAdamW's LibTorch fallback also runs.
template <typename G, typename W>
__global__ void __launch_bounds__(256)
    adamw_kernel(float* __restrict__ master, float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq,
                 const G* __restrict__ grad, W* __restrict__ model, const float* __restrict__ multiplier, int64_t n,
                 AdamWStepArgs a) {
  const float mult = *multiplier;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = to_float(grad[i]) * mult;
    float p = master[i] * a.decay;
    float m = exp_avg[i];
    m = m + a.one_minus_beta1 * (g - m);  // lerp with weight < 0.5
    float v = exp_avg_sq[i] * a.beta2;
    v = v + a.one_minus_beta2 * (g * g);
    const float denom = sqrtf(v) / a.bias_correction2_sqrt + a.eps;
    p = p + a.neg_step_size * (m / denom);
    master[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (model != nullptr) model[i] = from_float<W>(p);
  }
}

template <typename G, typename W>
const char* adamw_typed(const AdamWStepArgs& a, cudaStream_t stream) {
  if (a.n == 0) return nullptr;
  const int64_t blocks = std::min<int64_t>((a.n + 255) / 256, int64_t{132} * 16);
  adamw_kernel<G, W><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      static_cast<float*>(a.master), static_cast<float*>(a.exp_avg), static_cast<float*>(a.exp_avg_sq),
      static_cast<const G*>(a.grad), static_cast<W*>(a.model), static_cast<const float*>(a.multiplier), a.n, a);
  return launch_error();
}

template <typename G>
const char* adamw_model_dispatch(const AdamWStepArgs& a, cudaStream_t stream) {
  if (a.model == nullptr) return adamw_typed<G, float>(a, stream);
  switch (a.model_dtype) {
    case DType::kFloat32:
      return adamw_typed<G, float>(a, stream);
    case DType::kFloat16:
      return adamw_typed<G, __half>(a, stream);
    case DType::kBFloat16:
      return adamw_typed<G, __nv_bfloat16>(a, stream);
  }
  return "adamw_step: unknown model dtype";
}

}  // namespace

int64_t group_norm_workspace_floats(int64_t n, int64_t c, int64_t groups, bool channels_last) {
  return (channels_last ? n * kMaxSplitsNhwc * 2 * c : n * groups * kMaxSplits * 2) + 2 * n * c;
}

const char* group_norm(const GroupNormArgs& args) {
  switch (args.dtype) {
    case DType::kFloat32:
      return group_norm_dispatch<float>(args);
    case DType::kFloat16:
      return group_norm_dispatch<__half>(args);
    case DType::kBFloat16:
      return group_norm_dispatch<__nv_bfloat16>(args);
  }
  return "group_norm: unknown dtype";
}

const char* geglu(const void* proj, void* out, int64_t rows, int64_t features, bool vectorized, DType dtype,
                  void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::kFloat32:
      return vectorized ? geglu_typed<float, 4>(proj, out, rows, features, s)
                        : geglu_typed<float, 1>(proj, out, rows, features, s);
    case DType::kFloat16:
      return vectorized ? geglu_typed<__half, 8>(proj, out, rows, features, s)
                        : geglu_typed<__half, 1>(proj, out, rows, features, s);
    case DType::kBFloat16:
      return vectorized ? geglu_typed<__nv_bfloat16, 8>(proj, out, rows, features, s)
                        : geglu_typed<__nv_bfloat16, 1>(proj, out, rows, features, s);
  }
  return "geglu: unknown dtype";
}

const char* bias_residual_add(const void* shortcut, const void* h, const void* h_bias, const void* shortcut_bias,
                              void* out, int64_t n, int64_t c, int64_t hw, float output_scale, bool vectorized,
                              DType dtype, void* stream, bool channels_last) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::kFloat32:
      return vectorized ? residual_typed<float, 4>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw, output_scale, s,
                                                   channels_last)
                        : residual_typed<float, 1>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw, output_scale, s,
                                                   channels_last);
    case DType::kFloat16:
      return vectorized ? residual_typed<__half, 8>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw, output_scale, s,
                                                    channels_last)
                        : residual_typed<__half, 1>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw, output_scale, s,
                                                    channels_last);
    case DType::kBFloat16:
      return vectorized ? residual_typed<__nv_bfloat16, 8>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw,
                                                           output_scale, s, channels_last)
                        : residual_typed<__nv_bfloat16, 1>(shortcut, h, h_bias, shortcut_bias, out, n, c, hw,
                                                           output_scale, s, channels_last);
  }
  return "bias_residual_add: unknown dtype";
}

const char* add_tokens_to_nchw(const void* x, const void* tokens, void* out, int64_t n, int64_t c, int64_t hw,
                               DType dtype, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::kFloat32:
      return add_tokens_typed<float>(x, tokens, out, n, c, hw, s);
    case DType::kFloat16:
      return add_tokens_typed<__half>(x, tokens, out, n, c, hw, s);
    case DType::kBFloat16:
      return add_tokens_typed<__nv_bfloat16>(x, tokens, out, n, c, hw, s);
  }
  return "add_tokens_to_nchw: unknown dtype";
}

const char* upsample_nearest2x_nhwc(const void* x, void* out, int64_t n, int64_t c, int64_t h, int64_t w,
                                    int64_t element_bytes, bool vectorized, void* stream) {
  const int64_t row_bytes = c * element_bytes;
  if (n == 0 || c == 0 || h == 0 || w == 0) return nullptr;
  if (element_bytes != 2 && element_bytes != 4) return "upsample_nearest2x: element size must be 2 or 4 bytes";
  // Moved as 16-bit words: 8 per 16-byte pack when vectorised, else one.
  const int width = vectorized && row_bytes % 16 == 0 ? 8 : 1;
  const int64_t packs_per_pixel = row_bytes / 2 / width;
  const int64_t packs = n * (2 * h) * (2 * w) * packs_per_pixel;
  const int64_t blocks = std::min<int64_t>((packs + 255) / 256, int64_t{sm_count()} * 32);
  auto s = static_cast<cudaStream_t>(stream);
  auto kernel = width == 8 ? upsample_nearest2x_nhwc_kernel<8> : upsample_nearest2x_nhwc_kernel<1>;
  kernel<<<static_cast<unsigned>(blocks), 256, 0, s>>>(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(out),
                                                       packs, static_cast<int>(packs_per_pixel),
                                                       static_cast<int>(2 * w), static_cast<int>(2 * h));
  return launch_error();
}

int64_t layer_norm_max_channels(bool vectorized, DType dtype) {
  const int64_t width = !vectorized ? 1 : dtype == DType::kFloat32 ? 4 : 8;
  return 32 * 8 * width;
}

const char* layer_norm(const LayerNormArgs& args) {
  if (args.c <= 0 || args.c > layer_norm_max_channels(args.vectorized, args.dtype)) {
    return "layer_norm: row length out of range";
  }
  if (args.rows == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(args.stream);
  switch (args.dtype) {
    case DType::kFloat32:
      return layer_norm_typed<float>(args, s);
    case DType::kFloat16:
      return layer_norm_typed<__half>(args, s);
    case DType::kBFloat16:
      return layer_norm_typed<__nv_bfloat16>(args, s);
  }
  return "layer_norm: unknown dtype";
}

const char* adamw_step(const AdamWStepArgs& args) {
  auto s = static_cast<cudaStream_t>(args.stream);
  switch (args.grad_dtype) {
    case DType::kFloat32:
      return adamw_model_dispatch<float>(args, s);
    case DType::kFloat16:
      return adamw_model_dispatch<__half>(args, s);
    case DType::kBFloat16:
      return adamw_model_dispatch<__nv_bfloat16>(args, s);
  }
  return "adamw_step: unknown gradient dtype";
}

}  // namespace fairdiff::cuda_kernels
