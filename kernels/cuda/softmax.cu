// Softmax, sums and the fused cross-entropy on the GPU. One thread per softmax line; one block per
// reduced output, threads striding over the reduced axis and combining in shared memory.
#include <cfloat>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace horo::kernels::cuda {
namespace {

__global__ void softmax_kernel(SoftmaxShape s, bool log, const float* x, float* y) {
  const int64_t lines = s.outer * s.inner;
  for (int64_t line = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; line < lines; line += int64_t{gridDim.x} * blockDim.x) {
    const int64_t base = (line / s.inner) * s.axis * s.inner + line % s.inner;
    float max_value = -FLT_MAX;
    for (int64_t a = 0; a < s.axis; ++a) max_value = fmaxf(max_value, x[base + a * s.inner]);
    float sum = 0.0f;
    for (int64_t a = 0; a < s.axis; ++a) sum += expf(x[base + a * s.inner] - max_value);
    const float log_sum = logf(sum) + max_value;
    for (int64_t a = 0; a < s.axis; ++a) {
      const float v = x[base + a * s.inner] - log_sum;
      y[base + a * s.inner] = log ? v : expf(v);
    }
  }
}

__global__ void softmax_backward_kernel(SoftmaxShape s, bool log, const float* y, const float* dy, float* dx) {
  const int64_t lines = s.outer * s.inner;
  for (int64_t line = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; line < lines; line += int64_t{gridDim.x} * blockDim.x) {
    const int64_t base = (line / s.inner) * s.axis * s.inner + line % s.inner;
    float dot = 0.0f;
    for (int64_t a = 0; a < s.axis; ++a) {
      const int64_t i = base + a * s.inner;
      dot += log ? dy[i] : dy[i] * y[i];
    }
    for (int64_t a = 0; a < s.axis; ++a) {
      const int64_t i = base + a * s.inner;
      dx[i] = log ? dy[i] - expf(y[i]) * dot : y[i] * (dy[i] - dot);
    }
  }
}

// Block b sums x[o, :, i] for output b = o * inner + i.
__global__ void sum_kernel(ReduceShape s, const float* x, float* out) {
  __shared__ float partial[kThreads];
  const int64_t o = blockIdx.x / s.inner, i = blockIdx.x % s.inner;
  float acc = 0.0f;
  for (int64_t a = threadIdx.x; a < s.axis; a += blockDim.x) acc += x[(o * s.axis + a) * s.inner + i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Per sample: the weighted NLL term, the smoothing term and the target's weight (summed afterwards).
__global__ void cross_entropy_terms_kernel(CrossEntropyArgs a, const float* log_probs, const int64_t* labels, float* terms) {
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < a.n; r += int64_t{gridDim.x} * blockDim.x) {
    const float* lp = log_probs + r * a.classes;
    const int64_t y = labels[r];
    const float wy = a.weight ? a.weight[y] : 1.0f;
    float smooth = 0.0f;
    for (int64_t c = 0; c < a.classes; ++c) smooth -= (a.weight ? a.weight[c] : 1.0f) * lp[c];
    terms[r] = -wy * lp[y];
    terms[a.n + r] = smooth;
    terms[2 * a.n + r] = wy;
  }
}

__global__ void cross_entropy_backward_kernel(CrossEntropyArgs a, const float* log_probs, const int64_t* labels,
                                              const float* total_weight, float grad_loss, float* grad) {
  const float eps = a.label_smoothing, share = eps / static_cast<float>(a.classes);
  const float scale = grad_loss / *total_weight;
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < a.n; r += int64_t{gridDim.x} * blockDim.x) {
    const float* lp = log_probs + r * a.classes;
    float* g = grad + r * a.classes;
    const int64_t y = labels[r];
    float smooth_sum = 0.0f;
    for (int64_t c = 0; c < a.classes; ++c) smooth_sum += share * (a.weight ? a.weight[c] : 1.0f);
    const float target = (1.0f - eps) * (a.weight ? a.weight[y] : 1.0f);
    for (int64_t c = 0; c < a.classes; ++c) {
      const float coeff = share * (a.weight ? a.weight[c] : 1.0f) + (c == y ? target : 0.0f);
      g[c] = scale * (expf(lp[c]) * (target + smooth_sum) - coeff);
    }
  }
}

}  // namespace

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y) {
  softmax_kernel<<<blocks_for(s.outer * s.inner), kThreads, 0, stream()>>>(s, log, x, y);
  CUDA_CHECK_LAUNCH(log ? "log_softmax" : "softmax");
}

void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx) {
  softmax_backward_kernel<<<blocks_for(s.outer * s.inner), kThreads, 0, stream()>>>(s, log, y, dy, dx);
  CUDA_CHECK_LAUNCH(log ? "log_softmax backward" : "softmax backward");
}

void sum(const ReduceShape& s, const float* x, float* out) {
  if (s.outer * s.inner == 0) return;
  sum_kernel<<<static_cast<unsigned>(s.outer * s.inner), kThreads, 0, stream()>>>(s, x, out);
  CUDA_CHECK_LAUNCH("sum");
}

float cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels, float* log_probs) {
  softmax_forward({.outer = a.n, .axis = a.classes, .inner = 1}, true, logits, log_probs);
  DeviceBuffer terms(static_cast<size_t>(3 * a.n) * sizeof(float)), sums(3 * sizeof(float));
  cross_entropy_terms_kernel<<<blocks_for(a.n), kThreads, 0, stream()>>>(a, log_probs, labels, terms.data);
  CUDA_CHECK_LAUNCH("cross_entropy");
  sum({.outer = 3, .axis = a.n, .inner = 1}, terms.data, sums.data);
  float host[3];
  copy(host, sums.data, sizeof host, Copy::DeviceToHost);
  const float eps = a.label_smoothing;
  // Without smoothing the smoothing sum is not part of the loss (and may be -inf * 0 for masked logits).
  if (eps == 0.0f) return host[0] / host[2];
  return ((1.0f - eps) * host[0] + eps / static_cast<float>(a.classes) * host[1]) / host[2];
}

void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels, float grad_loss,
                            float* grad_logits) {
  DeviceBuffer terms(static_cast<size_t>(3 * a.n) * sizeof(float)), sums(3 * sizeof(float));
  cross_entropy_terms_kernel<<<blocks_for(a.n), kThreads, 0, stream()>>>(a, log_probs, labels, terms.data);
  CUDA_CHECK_LAUNCH("cross_entropy");
  sum({.outer = 3, .axis = a.n, .inner = 1}, terms.data, sums.data);
  cross_entropy_backward_kernel<<<blocks_for(a.n), kThreads, 0, stream()>>>(a, log_probs, labels, sums.data + 2, grad_loss,
                                                                           grad_logits);
  CUDA_CHECK_LAUNCH("cross_entropy backward");
}

}  // namespace horo::kernels::cuda
