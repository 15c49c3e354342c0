// Convolution on the GPU: through cuDNN where this build has it (kernels/cuda/cudnn_conv.h; the
// algorithm chosen once per shape), else, and as the oracle cuDNN is tested against, im2col +
// cuBLAS. The im2col path works on chunks of images whose column buffer fits a bounded workspace
// (from the caching allocator): per chunk, the forward and input-gradient products run as one
// strided-batched GEMM, and the weight gradient as one GEMM over every image of the chunk.
#include <algorithm>

#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/device.h"
#include "kernels/gemm.h"

namespace horo::kernels::cuda {
namespace {

constexpr size_t kColumnBytes = size_t{256} << 20;  // the im2col workspace bound

// Images per chunk: as many as keep the column buffer within kColumnBytes (one at least).
int64_t chunk_images(const Conv2dShape& s, int64_t patch, int64_t spatial) {
  const int64_t per_image = std::max<int64_t>(1, patch * spatial * static_cast<int64_t>(sizeof(float)));
  return std::clamp<int64_t>(static_cast<int64_t>(kColumnBytes) / per_image, 1, std::max<int64_t>(1, s.batch));
}

// Columns of images [n0, n0 + count): image-major ([n][row][p]) or, for the weight gradient,
// row-major across the chunk ([row][n][p]), so that the chunk is one matrix of patch rows.
__global__ void im2col_kernel(Conv2dShape s, int64_t oh_n, int64_t ow_n, int64_t n0, int64_t count, bool rows_across_images,
                              const float* input, float* col) {
  const int64_t patch = s.in_channels * s.kernel_h * s.kernel_w, spatial = oh_n * ow_n;
  const int64_t total = count * patch * spatial;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i % spatial, row = (i / spatial) % patch, n = i / (spatial * patch);
    const int64_t kj = row % s.kernel_w, ki = (row / s.kernel_w) % s.kernel_h, c = row / (s.kernel_w * s.kernel_h);
    const int64_t ih = (p / ow_n) * s.stride_h - s.pad_h + ki * s.dilation_h;
    const int64_t iw = (p % ow_n) * s.stride_w - s.pad_w + kj * s.dilation_w;
    const float v = (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w)
                        ? input[(((n0 + n) * s.in_channels + c) * s.in_h + ih) * s.in_w + iw] : 0.0f;
    col[rows_across_images ? (row * count + n) * spatial + p : i] = v;
  }
}

// The adjoint of im2col for images [n0, n0 + count), gathered per input cell (no atomics): each
// cell sums the column entries that read it.
__global__ void col2im_kernel(Conv2dShape s, int64_t oh_n, int64_t ow_n, int64_t n0, int64_t count, const float* col,
                              float* grad_input) {
  const int64_t patch = s.in_channels * s.kernel_h * s.kernel_w, spatial = oh_n * ow_n;
  const int64_t total = count * s.in_channels * s.in_h * s.in_w;
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
    grad_input[n0 * s.in_channels * s.in_h * s.in_w + i] = acc;
  }
}

// grad_output of images [n0, n0 + count) as [channel][n][p]: the chunk as one matrix of out rows.
__global__ void channels_first_kernel(int64_t channels, int64_t spatial, int64_t n0, int64_t count, const float* grad_output,
                                      float* out) {
  const int64_t total = count * channels * spatial;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i % spatial, c = (i / spatial) % channels, n = i / (spatial * channels);
    out[(c * count + n) * spatial + p] = grad_output[((n0 + n) * channels + c) * spatial + p];
  }
}

__global__ void add_bias_kernel(int64_t batch, int64_t channels, int64_t spatial, const float* bias, float* out) {
  const int64_t total = batch * channels * spatial;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] += bias[(i / spatial) % channels];
  }
}

// A block per output channel (grid-stride): the sum of its gradient over batch and positions.
__global__ void bias_grad_kernel(int64_t batch, int64_t channels, int64_t spatial, const float* grad, float* out) {
  __shared__ float partial[kThreads];
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < batch * spatial; i += blockDim.x) acc += grad[((i / spatial) * channels + c) * spatial + i % spatial];
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[c] = partial[0];
    __syncthreads();
  }
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

bool empty(const Conv2dShape& s) { return s.batch == 0 || s.out_channels == 0 || s.out_h() <= 0 || s.out_w() <= 0; }

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) {
  if (empty(s)) return;
  if (cudnn_conv_forward(s, input, weight, bias, output)) return;
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow, patch = s.in_channels * s.kernel_h * s.kernel_w;
  const int64_t chunk = chunk_images(s, patch, spatial);
  DeviceBuffer col(static_cast<size_t>(chunk * patch * spatial) * sizeof(float));
  for (int64_t n0 = 0; n0 < s.batch; n0 += chunk) {
    const int64_t count = std::min(chunk, s.batch - n0);
    im2col_kernel<<<blocks_for(count * patch * spatial), kThreads, 0, stream()>>>(s, oh, ow, n0, count, false, input, col.data);
    CUDA_CHECK_LAUNCH("conv2d im2col");
    batched_gemm(false, false, s.out_channels, spatial, patch, weight, patch, 0, col.data, spatial, patch * spatial, 0.0f,
                 output + n0 * s.out_channels * spatial, spatial, s.out_channels * spatial, count);
  }
  if (bias) {
    add_bias_kernel<<<blocks_for(s.batch * s.out_channels * spatial), kThreads, 0, stream()>>>(s.batch, s.out_channels, spatial,
                                                                                               bias, output);
    CUDA_CHECK_LAUNCH("conv2d bias");
  }
}

void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) {
  if (s.batch == 0) return;
  if (empty(s)) {
    zero(grad_input, static_cast<size_t>(s.batch * s.in_channels * s.in_h * s.in_w) * sizeof(float));
    return;
  }
  if (cudnn_conv_backward_input(s, grad_output, weight, grad_input)) return;
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow, patch = s.in_channels * s.kernel_h * s.kernel_w;
  const int64_t chunk = chunk_images(s, patch, spatial);
  DeviceBuffer col(static_cast<size_t>(chunk * patch * spatial) * sizeof(float));
  for (int64_t n0 = 0; n0 < s.batch; n0 += chunk) {
    const int64_t count = std::min(chunk, s.batch - n0);
    batched_gemm(true, false, patch, spatial, s.out_channels, weight, patch, 0, grad_output + n0 * s.out_channels * spatial,
                 spatial, s.out_channels * spatial, 0.0f, col.data, spatial, patch * spatial, count);
    col2im_kernel<<<blocks_for(count * s.in_channels * s.in_h * s.in_w), kThreads, 0, stream()>>>(s, oh, ow, n0, count, col.data,
                                                                                                    grad_input);
    CUDA_CHECK_LAUNCH("conv2d col2im");
  }
}

void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                            float* grad_bias) {
  const int64_t patch = s.in_channels * s.kernel_h * s.kernel_w;
  if (empty(s)) {
    zero(grad_weight, static_cast<size_t>(s.out_channels * patch) * sizeof(float));
    if (grad_bias) zero(grad_bias, static_cast<size_t>(s.out_channels) * sizeof(float));
    return;
  }
  if (cudnn_conv_backward_weight(s, input, grad_output, grad_weight, grad_bias)) return;
  const int64_t oh = s.out_h(), ow = s.out_w(), spatial = oh * ow;
  const int64_t chunk = chunk_images(s, patch + s.out_channels, spatial);
  DeviceBuffer col(static_cast<size_t>(chunk * patch * spatial) * sizeof(float));
  DeviceBuffer grad_rows(static_cast<size_t>(chunk * s.out_channels * spatial) * sizeof(float));
  for (int64_t n0 = 0; n0 < s.batch; n0 += chunk) {
    const int64_t count = std::min(chunk, s.batch - n0);
    im2col_kernel<<<blocks_for(count * patch * spatial), kThreads, 0, stream()>>>(s, oh, ow, n0, count, true, input, col.data);
    CUDA_CHECK_LAUNCH("conv2d im2col");
    channels_first_kernel<<<blocks_for(count * s.out_channels * spatial), kThreads, 0, stream()>>>(
        s.out_channels, spatial, n0, count, grad_output, grad_rows.data);
    CUDA_CHECK_LAUNCH("conv2d weight gradient");
    // grad_weight (out x patch) += grad_rows (out x count*spatial) @ col^T (count*spatial x patch): one GEMM per chunk.
    gemm({.trans_b = true, .m = s.out_channels, .n = patch, .k = count * spatial, .a = grad_rows.data, .lda = count * spatial,
          .b = col.data, .ldb = count * spatial, .beta = n0 == 0 ? 0.0f : 1.0f, .c = grad_weight, .ldc = patch});
  }
  if (grad_bias) {
    bias_grad_kernel<<<blocks_for(s.out_channels, 1), kThreads, 0, stream()>>>(s.batch, s.out_channels, spatial, grad_output,
                                                                               grad_bias);
    CUDA_CHECK_LAUNCH("conv2d bias gradient");
  }
}

}  // namespace horo::kernels::cuda
