// Adaptive average pooling on the GPU: one thread per output cell forward; backward one thread per
// input cell, gathering from the (possibly overlapping) windows that contain it, so no atomics.
#include "kernels/adaptive_pool.h"
#include "kernels/cuda/common.cuh"

namespace horo::kernels::cuda {
namespace {

__global__ void forward_kernel(AdaptivePool2dShape s, const float* in, float* out) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < total; k += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = k % s.out_w, i = (k / s.out_w) % s.out_h, p = k / (s.out_w * s.out_h);
    const int64_t h0 = adaptive_begin(i, s.in_h, s.out_h), h1 = adaptive_end(i, s.in_h, s.out_h);
    const int64_t w0 = adaptive_begin(j, s.in_w, s.out_w), w1 = adaptive_end(j, s.in_w, s.out_w);
    const float* plane = in + p * s.in_h * s.in_w;
    float sum = 0.0f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) sum += plane[h * s.in_w + w];
    out[k] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

__global__ void backward_kernel(AdaptivePool2dShape s, const float* grad_out, float* grad_in) {
  const int64_t total = s.planes * s.in_h * s.in_w;
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < total; k += int64_t{gridDim.x} * blockDim.x) {
    const int64_t w = k % s.in_w, h = (k / s.in_w) % s.in_h, p = k / (s.in_w * s.in_h);
    const float* plane = grad_out + p * s.out_h * s.out_w;
    float sum = 0.0f;
    // Output rows whose window holds row h: begin(i) <= h < end(i).
    for (int64_t i = (h * s.out_h) / s.in_h; i < s.out_h && adaptive_begin(i, s.in_h, s.out_h) <= h; ++i) {
      if (h >= adaptive_end(i, s.in_h, s.out_h)) continue;
      const int64_t rows = adaptive_end(i, s.in_h, s.out_h) - adaptive_begin(i, s.in_h, s.out_h);
      for (int64_t j = (w * s.out_w) / s.in_w; j < s.out_w && adaptive_begin(j, s.in_w, s.out_w) <= w; ++j) {
        if (w >= adaptive_end(j, s.in_w, s.out_w)) continue;
        const int64_t cols = adaptive_end(j, s.in_w, s.out_w) - adaptive_begin(j, s.in_w, s.out_w);
        sum += plane[i * s.out_w + j] / static_cast<float>(rows * cols);
      }
    }
    grad_in[k] = sum;
  }
}

}  // namespace

void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output) {
  const int64_t n = s.planes * s.out_h * s.out_w;
  if (n == 0) return;
  forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, input, output);
  CUDA_CHECK_LAUNCH("adaptive_avg_pool2d");
}

void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t n = s.planes * s.in_h * s.in_w;
  if (n == 0) return;
  backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, grad_output, grad_input);
  CUDA_CHECK_LAUNCH("adaptive_avg_pool2d backward");
}

}  // namespace horo::kernels::cuda
