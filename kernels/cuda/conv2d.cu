// Convolution on the GPU as im2col + cuBLAS: the column buffers of the whole batch come from the
// caching allocator, the per-image products run as one strided-batched GEMM.
#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/gemm.h"

namespace horo::kernels::cuda {
namespace {

__global__ void im2col_kernel(Conv2dShape s, int64_t oh_n, int64_t ow_n, const float* input, float* col) {
  const int64_t patch = s.in_channels * s.kernel_h * s.kernel_w, spatial = oh_n * ow_n;
  const int64_t total = s.batch * patch * spatial;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i % spatial, row = (i / spatial) % patch, n = i / (spatial * patch);
    const int64_t kj = row % s.kernel_w, ki = (row / s.kernel_w) % s.kernel_h, c = row / (s.kernel_w * s.kernel_h);
    const int64_t ih = (p / ow_n) * s.stride_h - s.pad_h + ki * s.dilation_h;
    const int64_t iw = (p % ow_n) * s.stride_w - s.pad_w + kj * s.dilation_w;
    col[i] = (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w)
                 ? input[((n * s.in_channels + c) * s.in_h + ih) * s.in_w + iw] : 0.0f;
  }
}

// The adjoint of im2col, gathered per input cell (no atomics): each cell sums the column entries
// that read it.
__global__ void col2im_kernel(Conv2dShape s, int64_t oh_n, int64_t ow_n, const float* col, float* grad_input) {
  const int64_t patch = s.in_channels * s.kernel_h * s.kernel_w, spatial = oh_n * ow_n;
  const int64_t total = s.batch * s.in_channels * s.in_h * s.in_w;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t w = i % s.in_w, h = (i / s.in_w) % s.in_h, c = (i / (s.in_w * s.in_h)) % s.in_channels;
    const int64_t n = i / (s.in_w * s.in_h * s.in_channels);
    float acc = 0.0f;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      const int64_t y = h + s.pad_h - ki * s.dilation_h;
      if (y < 0 || y % s.stride_h != 0 || y / s.stride_h >= oh_n) continue;
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        const int64_t x = w + s.pad_w - kj * s.dilation_w;
        if (x < 0 || x % s.stride_w != 0 || x / s.stride_w >= ow_n) continue;
        const int64_t row = (c * s.kernel_h + ki) * s.kernel_w + kj;
        acc += col[(n * patch + row) * spatial + (y / s.stride_h) * ow_n + x / s.stride_w];
      }
    }
    grad_input[i] = acc;
  }
}

__global__ void add_bias_kernel(int64_t batch, int64_t channels, int64_t spatial, const float* bias, float* out) {
  const int64_t total = batch * channels * spatial;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] += bias[(i / spatial) % channels];
  }
}

// One block per output channel: the sum of its gradient over batch and positions.
__global__ void bias_grad_kernel(int64_t batch, int64_t channels, int64_t spatial, const float* grad, float* out) {
  __shared__ float partial[kThreads];
  const int64_t c = blockIdx.x;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < batch * spatial; i += blockDim.x) {
    acc += grad[((i / spatial) * channels + c) * spatial + i % spatial];
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[c] = partial[0];
}

void batched_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, int64_t stride_a,
                  const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                  int64_t batch) {
  const float alpha = 1.0f;
  // Row-major through column-major cuBLAS, operands swapped (see gemm.cu).
  CUBLAS_CHECK(cublasSgemmStridedBatched(blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
                                         static_cast<int>(ldb), stride_b, a, static_cast<int>(lda), stride_a, &beta, c,
                                         static_cast<int>(ldc), stride_c, static_cast<int>(batch)));
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) {
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow, patch = s.in_channels * s.kernel_h * s.kernel_w;
  DeviceBuffer col(static_cast<size_t>(s.batch * patch * spatial) * sizeof(float));
  im2col_kernel<<<blocks_for(s.batch * patch * spatial), kThreads, 0, stream()>>>(s, oh, ow, input, col.data);
  CUDA_CHECK_LAUNCH("conv2d im2col");
  batched_gemm(false, false, s.out_channels, spatial, patch, weight, patch, 0, col.data, spatial, patch * spatial, 0.0f, output,
               spatial, s.out_channels * spatial, s.batch);
  if (bias) {
    add_bias_kernel<<<blocks_for(s.batch * s.out_channels * spatial), kThreads, 0, stream()>>>(s.batch, s.out_channels, spatial,
                                                                                               bias, output);
    CUDA_CHECK_LAUNCH("conv2d bias");
  }
}

void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) {
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow, patch = s.in_channels * s.kernel_h * s.kernel_w;
  DeviceBuffer col(static_cast<size_t>(s.batch * patch * spatial) * sizeof(float));
  batched_gemm(true, false, patch, spatial, s.out_channels, weight, patch, 0, grad_output, spatial, s.out_channels * spatial,
               0.0f, col.data, spatial, patch * spatial, s.batch);
  col2im_kernel<<<blocks_for(s.batch * s.in_channels * s.in_h * s.in_w), kThreads, 0, stream()>>>(s, oh, ow, col.data,
                                                                                                    grad_input);
  CUDA_CHECK_LAUNCH("conv2d col2im");
}

void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                            float* grad_bias) {
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow, patch = s.in_channels * s.kernel_h * s.kernel_w;
  DeviceBuffer col(static_cast<size_t>(s.batch * patch * spatial) * sizeof(float));
  im2col_kernel<<<blocks_for(s.batch * patch * spatial), kThreads, 0, stream()>>>(s, oh, ow, input, col.data);
  CUDA_CHECK_LAUNCH("conv2d im2col");
  // grad_weight = sum over images of grad_output[n] (out x spatial) @ col[n]^T (spatial x patch).
  for (int64_t n = 0; n < s.batch; ++n) {
    gemm({.trans_b = true, .m = s.out_channels, .n = patch, .k = spatial, .a = grad_output + n * s.out_channels * spatial,
          .lda = spatial, .b = col.data + n * patch * spatial, .ldb = spatial, .beta = n == 0 ? 0.0f : 1.0f, .c = grad_weight,
          .ldc = patch});
  }
  if (s.batch == 0) CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, static_cast<size_t>(s.out_channels * patch) * sizeof(float), stream()));
  if (grad_bias && s.out_channels > 0) {
    bias_grad_kernel<<<static_cast<unsigned>(s.out_channels), kThreads, 0, stream()>>>(s.batch, s.out_channels, spatial,
                                                                                      grad_output, grad_bias);
    CUDA_CHECK_LAUNCH("conv2d bias gradient");
  }
}

}  // namespace horo::kernels::cuda
