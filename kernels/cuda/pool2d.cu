// Pooling on the GPU: one thread per output cell forward; backward one thread per input cell,
// gathering from the windows that cover it in a fixed order (no atomics: the same gradients on every
// run, overlapping windows included).
#include <cfloat>

#include "kernels/cuda/common.cuh"
#include "kernels/pool2d.h"

namespace horo::kernels::cuda {
namespace {

__global__ void maxpool_forward_kernel(Pool2dShape s, int64_t oh_n, int64_t ow_n, const float* in, float* out, int32_t* arg) {
  const int64_t total = s.planes * oh_n * ow_n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % ow_n, oh = (i / ow_n) % oh_n, p = i / (ow_n * oh_n);
    const float* plane = in + p * s.in_h * s.in_w;
    float best = -FLT_MAX;
    int32_t best_i = -1;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      const int64_t h = oh * s.stride_h - s.pad_h + ki;
      if (h < 0 || h >= s.in_h) continue;
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        const int64_t w = ow * s.stride_w - s.pad_w + kj;
        if (w < 0 || w >= s.in_w) continue;
        const float v = plane[h * s.in_w + w];
        // First maximum in row-major order; a NaN wins and stays.
        if (best_i < 0 || v > best || (isnan(v) && !isnan(best))) {
          best = v;
          best_i = static_cast<int32_t>(h * s.in_w + w);
        }
      }
    }
    out[i] = best;
    arg[i] = best_i;
  }
}

// The output cells whose windows cover input row h (or column): [first, last] of the output axis.
__device__ inline void covering(int64_t h, int64_t pad, int64_t kernel, int64_t stride, int64_t out, int64_t& first, int64_t& last) {
  const int64_t top = h + pad;  // position in the padded input
  first = top < kernel ? 0 : (top - kernel) / stride + 1;
  last = top / stride;
  if (last > out - 1) last = out - 1;
}

__global__ void maxpool_backward_kernel(Pool2dShape s, int64_t oh_n, int64_t ow_n, const float* grad_out, const int32_t* arg,
                                        float* grad_in) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t w = i % s.in_w, h = (i / s.in_w) % s.in_h, p = i / (s.in_w * s.in_h);
    int64_t oh0, oh1, ow0, ow1;
    covering(h, s.pad_h, s.kernel_h, s.stride_h, oh_n, oh0, oh1);
    covering(w, s.pad_w, s.kernel_w, s.stride_w, ow_n, ow0, ow1);
    const int32_t self = static_cast<int32_t>(h * s.in_w + w);
    const float* g = grad_out + p * oh_n * ow_n;
    const int32_t* a = arg + p * oh_n * ow_n;
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (a[oh * ow_n + ow] == self) acc += g[oh * ow_n + ow];
    grad_in[i] = acc;
  }
}

__global__ void avgpool_forward_kernel(Pool2dShape s, int64_t oh_n, int64_t ow_n, const float* in, float* out) {
  const int64_t total = s.planes * oh_n * ow_n;
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % ow_n, oh = (i / ow_n) % oh_n, p = i / (ow_n * oh_n);
    const float* plane = in + p * s.in_h * s.in_w;
    float acc = 0.0f;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      const int64_t h = oh * s.stride_h - s.pad_h + ki;
      if (h < 0 || h >= s.in_h) continue;
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        const int64_t w = ow * s.stride_w - s.pad_w + kj;
        if (w >= 0 && w < s.in_w) acc += plane[h * s.in_w + w];
      }
    }
    out[i] = acc * inv_area;
  }
}

__global__ void avgpool_backward_kernel(Pool2dShape s, int64_t oh_n, int64_t ow_n, const float* grad_out, float* grad_in) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t w = i % s.in_w, h = (i / s.in_w) % s.in_h, p = i / (s.in_w * s.in_h);
    int64_t oh0, oh1, ow0, ow1;
    covering(h, s.pad_h, s.kernel_h, s.stride_h, oh_n, oh0, oh1);
    covering(w, s.pad_w, s.kernel_w, s.stride_w, ow_n, ow0, ow1);
    const float* g = grad_out + p * oh_n * ow_n;
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) acc += g[oh * ow_n + ow];
    grad_in[i] = acc * inv_area;
  }
}

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) {
  const int64_t n = s.planes * s.out_h() * s.out_w();
  if (n == 0) return;
  maxpool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), input, output, argmax);
  CUDA_CHECK_LAUNCH("max_pool2d");
}

void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax, float* grad_input) {
  const int64_t n = s.planes * s.in_h * s.in_w;
  if (n == 0) return;
  maxpool_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), grad_output, argmax, grad_input);
  CUDA_CHECK_LAUNCH("max_pool2d backward");
}

void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output) {
  const int64_t n = s.planes * s.out_h() * s.out_w();
  if (n == 0) return;
  avgpool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), input, output);
  CUDA_CHECK_LAUNCH("avg_pool2d");
}

void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t n = s.planes * s.in_h * s.in_w;
  if (n == 0) return;
  avgpool_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), grad_output, grad_input);
  CUDA_CHECK_LAUNCH("avg_pool2d backward");
}

}  // namespace horo::kernels::cuda
