// Batch normalisation on the GPU: the per-channel reductions run one block per channel (threads
// stride over the channel's values, sums in double, a shared-memory tree at the end); the
// elementwise passes are grid-stride loops. Same formulas and shift as the CPU kernels.
#include "kernels/batch_norm.h"
#include "kernels/cuda/common.cuh"

namespace horo::kernels::cuda {
namespace {

#define HORO_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

// The index of the j-th value of channel c.
__device__ int64_t channel_index(const BatchNormShape& s, int64_t c, int64_t j) {
  return ((j / s.plane) * s.channels + c) * s.plane + j % s.plane;
}

// Sums a and b over the block; thread 0 gets the totals.
__device__ void block_sum(double& a, double& b) {
  __shared__ double sa[kThreads], sb[kThreads];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      sa[threadIdx.x] += sa[threadIdx.x + half];
      sb[threadIdx.x] += sb[threadIdx.x + half];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
}

__global__ void stats_kernel(BatchNormShape s, const float* x, float* mean, float* var) {
  const int64_t c = blockIdx.x, count = s.count();
  const double shift = x[c * s.plane];
  double sum = 0.0, squares = 0.0;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const double d = x[channel_index(s, c, j)] - shift;
    sum += d;
    squares += d * d;
  }
  block_sum(sum, squares);
  if (threadIdx.x == 0) {
    const double centred = sum / count;
    mean[c] = static_cast<float>(shift + centred);
    var[c] = static_cast<float>(fmax(0.0, squares / count - centred * centred));
  }
}

__global__ void coefficients_kernel(int64_t channels, const float* mean, const float* var, const float* weight,
                                    const float* bias, float eps, float* invstd, float* scale, float* shift) {
  HORO_GRID_LOOP(c, channels) {
    const double is = 1.0 / sqrt(static_cast<double>(var[c]) + eps);
    const double w = weight ? weight[c] : 1.0, b = bias ? bias[c] : 0.0;
    invstd[c] = static_cast<float>(is);
    scale[c] = static_cast<float>(w * is);
    shift[c] = static_cast<float>(b - mean[c] * w * is);
  }
}

__global__ void update_running_kernel(int64_t channels, const float* mean, const float* var, float momentum,
                                      float unbias, float* running_mean, float* running_var) {
  HORO_GRID_LOOP(c, channels) {
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean[c];
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * var[c] * unbias;
  }
}

__global__ void apply_kernel(BatchNormShape s, const float* x, const float* scale, const float* shift,
                             const float* residual, bool relu, float* y) {
  const int64_t n = s.batch * s.channels * s.plane;
  HORO_GRID_LOOP(i, n) {
    const int64_t c = (i / s.plane) % s.channels;
    const float v = x[i] * scale[c] + shift[c] + (residual ? residual[i] : 0.0f);
    y[i] = relu && v < 0.0f ? 0.0f : v;
  }
}

__global__ void backward_reduce_kernel(BatchNormShape s, const float* x, ReluMask relu, const float* dy,
                                       const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat) {
  const int64_t c = blockIdx.x, count = s.count();
  const float m = mean[c];
  double g_sum = 0.0, gx_sum = 0.0;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t i = channel_index(s, c, j);
    const float g = relu.scale && !(x[i] * relu.scale[c] + relu.shift[c] > 0.0f) ? 0.0f : dy[i];
    g_sum += g;
    gx_sum += static_cast<double>(g) * (x[i] - m);
  }
  block_sum(g_sum, gx_sum);
  if (threadIdx.x == 0) {
    sum_dy[c] = static_cast<float>(g_sum);
    sum_dy_xhat[c] = static_cast<float>(gx_sum * invstd[c]);
  }
}

__global__ void backward_input_kernel(BatchNormShape s, const float* x, ReluMask relu, const float* dy,
                                      const float* mean, const float* invstd, const float* weight, const float* sum_dy,
                                      const float* sum_dy_xhat, double count, float* dx) {
  const int64_t n = s.batch * s.channels * s.plane;
  HORO_GRID_LOOP(i, n) {
    const int64_t c = (i / s.plane) % s.channels;
    const float a = (weight ? weight[c] : 1.0f) * invstd[c];
    float g = relu.scale && !(x[i] * relu.scale[c] + relu.shift[c] > 0.0f) ? 0.0f : dy[i];
    if (sum_dy) {
      const float b = static_cast<float>(-a * invstd[c] * (sum_dy_xhat[c] / count));
      const float d = static_cast<float>(-a * (sum_dy[c] / count));
      dx[i] = a * g + b * (x[i] - mean[c]) + d;
    } else {
      dx[i] = a * g;
    }
  }
}

__global__ void increment_kernel(int64_t* value, int64_t by) { *value += by; }

}  // namespace

void batch_norm_stats(const BatchNormShape& s, const float* x, float* mean, float* var) {
  if (s.channels == 0) return;
  stats_kernel<<<static_cast<unsigned>(s.channels), kThreads, 0, stream()>>>(s, x, mean, var);
  CUDA_CHECK_LAUNCH("batch_norm statistics");
}

void batch_norm_coefficients(int64_t channels, const float* mean, const float* var, const float* weight,
                             const float* bias, float eps, float* invstd, float* scale, float* shift) {
  if (channels == 0) return;
  coefficients_kernel<<<blocks_for(channels), kThreads, 0, stream()>>>(channels, mean, var, weight, bias, eps, invstd,
                                                                       scale, shift);
  CUDA_CHECK_LAUNCH("batch_norm coefficients");
}

void batch_norm_update_running(int64_t channels, const float* mean, const float* var, float momentum, float unbias,
                               float* running_mean, float* running_var) {
  if (channels == 0) return;
  update_running_kernel<<<blocks_for(channels), kThreads, 0, stream()>>>(channels, mean, var, momentum, unbias,
                                                                         running_mean, running_var);
  CUDA_CHECK_LAUNCH("batch_norm running statistics");
}

void batch_norm_apply(const BatchNormShape& s, const float* x, const float* scale, const float* shift,
                      const float* residual, bool relu, float* y) {
  const int64_t n = s.batch * s.channels * s.plane;
  if (n == 0) return;
  apply_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, x, scale, shift, residual, relu, y);
  CUDA_CHECK_LAUNCH("batch_norm");
}

void batch_norm_backward_reduce(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                                const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat) {
  if (s.channels == 0) return;
  backward_reduce_kernel<<<static_cast<unsigned>(s.channels), kThreads, 0, stream()>>>(s, x, relu, dy, mean, invstd,
                                                                                         sum_dy, sum_dy_xhat);
  CUDA_CHECK_LAUNCH("batch_norm backward sums");
}

void batch_norm_backward_input(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                               const float* mean, const float* invstd, const float* weight, const float* sum_dy,
                               const float* sum_dy_xhat, double count, float* dx) {
  const int64_t n = s.batch * s.channels * s.plane;
  if (n == 0) return;
  backward_input_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(s, x, relu, dy, mean, invstd, weight, sum_dy,
                                                                  sum_dy_xhat, count, dx);
  CUDA_CHECK_LAUNCH("batch_norm backward");
}

// The two passes in turn on the stream (the GPU's reductions already read each channel in one block).
void batch_norm_backward(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean,
                         const float* invstd, const float* weight, float* sum_dy, float* sum_dy_xhat, float* dx) {
  batch_norm_backward_reduce(s, x, relu, dy, mean, invstd, sum_dy, sum_dy_xhat);
  batch_norm_backward_input(s, x, relu, dy, mean, invstd, weight, sum_dy, sum_dy_xhat, static_cast<double>(s.count()), dx);
}

void increment_int64(int64_t* value, int64_t by) {
  increment_kernel<<<1, 1, 0, stream()>>>(value, by);
  CUDA_CHECK_LAUNCH("increment");
}

}  // namespace horo::kernels::cuda
