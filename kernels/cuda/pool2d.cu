// Pooling on the GPU: one thread per output cell; backward scatters with atomics (windows may overlap).
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

__global__ void maxpool_backward_kernel(int64_t planes, int64_t in_plane, int64_t out_plane, const float* grad_out,
                                        const int32_t* arg, float* grad_in) {
  const int64_t total = planes * out_plane;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    atomicAdd(grad_in + (i / out_plane) * in_plane + arg[i], grad_out[i]);
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
  const int64_t total = s.planes * oh_n * ow_n;
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % ow_n, oh = (i / ow_n) % oh_n, p = i / (ow_n * oh_n);
    float* plane = grad_in + p * s.in_h * s.in_w;
    const float g = grad_out[i] * inv_area;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      const int64_t h = oh * s.stride_h - s.pad_h + ki;
      if (h < 0 || h >= s.in_h) continue;
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        const int64_t w = ow * s.stride_w - s.pad_w + kj;
        if (w >= 0 && w < s.in_w) atomicAdd(plane + h * s.in_w + w, g);
      }
    }
  }
}

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) {
  const int64_t n = s.planes * s.out_h() * s.out_w();
  maxpool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), input, output, argmax);
  CUDA_CHECK_LAUNCH("max_pool2d");
}

void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax, float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  CUDA_CHECK(cudaMemsetAsync(grad_input, 0, static_cast<size_t>(s.planes * in_plane) * sizeof(float), stream()));
  maxpool_backward_kernel<<<blocks_for(s.planes * out_plane), kThreads, 0, stream()>>>(s.planes, in_plane, out_plane,
                                                                                      grad_output, argmax, grad_input);
  CUDA_CHECK_LAUNCH("max_pool2d backward");
}

void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output) {
  const int64_t n = s.planes * s.out_h() * s.out_w();
  avgpool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), input, output);
  CUDA_CHECK_LAUNCH("avg_pool2d");
}

void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) {
  CUDA_CHECK(cudaMemsetAsync(grad_input, 0, static_cast<size_t>(s.planes * s.in_h * s.in_w) * sizeof(float), stream()));
  const int64_t n = s.planes * s.out_h() * s.out_w();
  avgpool_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), grad_output, grad_input);
  CUDA_CHECK_LAUNCH("avg_pool2d backward");
}

}  // namespace horo::kernels::cuda
