// Softmax, sums and the fused cross-entropy on the GPU.
//  - Softmax over the last axis (rows): a warp per row for short rows, a block per row for rows of
//    1,024 values and more; lanes stride along the row (coalesced) and combine with shuffles.
//  - Softmax over another axis: a thread per line; neighbouring threads read neighbouring lines.
//  - Sums: a block per output in a grid-stride loop, threads striding over the reduced axis.
//  - Cross-entropy: per-row terms with a warp per row, the loss finished on the device (no host
//    wait), the backward pass elementwise; labels are checked on the device (kernels/device.h).
#include <cfloat>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"
#include "kernels/device.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace horo::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int64_t kBlockRowMin = 1024;  // rows at least this long get a block each

__device__ inline float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ inline float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
// Combines one value per thread of the block (blockDim.x a multiple of 32, at most 1024); every
// thread receives the result.
template <bool kMax>
__device__ float block_reduce(float v) {
  __shared__ float partial[32];
  __shared__ float result;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < warps ? partial[lane] : (kMax ? -FLT_MAX : 0.0f);
    w = kMax ? warp_max(w) : warp_sum(w);
    if (lane == 0) result = w;
  }
  __syncthreads();
  const float out = result;
  __syncthreads();  // `result` may be written again by a next call
  return out;
}

// Row `row` of x [rows, axis] by `lanes` threads from `lane`; kBlock: the whole block on one row.
template <bool kBlock>
__device__ void softmax_row(const float* x, float* y, int64_t axis, bool log, int lane, int lanes) {
  float m = -FLT_MAX;
  for (int64_t a = lane; a < axis; a += lanes) m = fmaxf(m, x[a]);
  m = kBlock ? block_reduce<true>(m) : warp_max(m);
  float sum = 0.0f;
  for (int64_t a = lane; a < axis; a += lanes) sum += expf(x[a] - m);
  sum = kBlock ? block_reduce<false>(sum) : warp_sum(sum);
  const float log_sum = logf(sum) + m;
  for (int64_t a = lane; a < axis; a += lanes) {
    const float v = x[a] - log_sum;
    y[a] = log ? v : expf(v);
  }
}

template <bool kBlock>
__device__ void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t axis, bool log, int lane, int lanes) {
  float dot = 0.0f;
  for (int64_t a = lane; a < axis; a += lanes) dot += log ? dy[a] : dy[a] * y[a];
  dot = kBlock ? block_reduce<false>(dot) : warp_sum(dot);
  for (int64_t a = lane; a < axis; a += lanes) dx[a] = log ? dy[a] - expf(y[a]) * dot : y[a] * (dy[a] - dot);
}

__global__ void softmax_rows_warp_kernel(int64_t rows, int64_t axis, bool log, const float* x, float* y) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  for (int64_t r = blockIdx.x * int64_t{blockDim.x / kWarp} + threadIdx.x / kWarp; r < rows; r += warps) {
    softmax_row<false>(x + r * axis, y + r * axis, axis, log, lane, kWarp);
  }
}

__global__ void softmax_rows_block_kernel(int64_t rows, int64_t axis, bool log, const float* x, float* y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) softmax_row<true>(x + r * axis, y + r * axis, axis, log, threadIdx.x, blockDim.x);
}

__global__ void softmax_backward_rows_warp_kernel(int64_t rows, int64_t axis, bool log, const float* y, const float* dy, float* dx) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  for (int64_t r = blockIdx.x * int64_t{blockDim.x / kWarp} + threadIdx.x / kWarp; r < rows; r += warps) {
    softmax_backward_row<false>(y + r * axis, dy + r * axis, dx + r * axis, axis, log, lane, kWarp);
  }
}

__global__ void softmax_backward_rows_block_kernel(int64_t rows, int64_t axis, bool log, const float* y, const float* dy, float* dx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    softmax_backward_row<true>(y + r * axis, dy + r * axis, dx + r * axis, axis, log, threadIdx.x, blockDim.x);
  }
}

// Softmax along a middle axis: a thread per line (outer, inner); neighbouring threads, neighbouring lines.
__global__ void softmax_lines_kernel(SoftmaxShape s, bool log, const float* x, float* y) {
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

__global__ void softmax_backward_lines_kernel(SoftmaxShape s, bool log, const float* y, const float* dy, float* dx) {
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

// Output b = o * inner + i sums x[o, :, i]; blocks stride over the outputs.
__global__ void sum_kernel(ReduceShape s, const float* x, float* out) {
  const int64_t outputs = s.outer * s.inner;
  for (int64_t b = blockIdx.x; b < outputs; b += gridDim.x) {
    const int64_t o = b / s.inner, i = b % s.inner;
    float acc = 0.0f;
    for (int64_t a = threadIdx.x; a < s.axis; a += blockDim.x) acc += x[(o * s.axis + a) * s.inner + i];
    acc = block_reduce<false>(acc);
    if (threadIdx.x == 0) out[b] = acc;
  }
}

// Per sample, a warp each: the weighted NLL term, the smoothing term and the target's weight, into
// terms[0 .. n), [n .. 2n), [2n .. 3n); a label out of range is reported and counts nothing.
__global__ void cross_entropy_terms_kernel(CrossEntropyArgs a, const float* log_probs, const int64_t* labels, float* terms,
                                           DeviceErrorRecord* errors) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  for (int64_t r = blockIdx.x * int64_t{blockDim.x / kWarp} + threadIdx.x / kWarp; r < a.n; r += warps) {
    const float* lp = log_probs + r * a.classes;
    const int64_t y = labels[r];
    const bool valid = y >= 0 && y < a.classes;
    if (!valid && lane == 0) report_device_error(errors, kLabelOutOfRange, y, r, a.classes);
    float smooth = 0.0f;
    for (int64_t c = lane; c < a.classes; c += kWarp) smooth -= (a.weight ? a.weight[c] : 1.0f) * lp[c];
    smooth = warp_sum(smooth);
    if (lane == 0) {
      const float wy = valid ? (a.weight ? a.weight[y] : 1.0f) : 0.0f;
      terms[r] = valid ? -wy * lp[y] : 0.0f;
      terms[a.n + r] = valid ? smooth : 0.0f;
      terms[2 * a.n + r] = wy;
    }
  }
}

// sums = (nll, smoothing, total target weight, total class weight): the mean loss, PyTorch's weighting.
__global__ void cross_entropy_loss_kernel(CrossEntropyArgs a, const float* sums, float* loss) {
  const float eps = a.label_smoothing;
  // Without smoothing the smoothing sum is not part of the loss (and may be -inf * 0 for masked logits).
  *loss = eps == 0.0f ? sums[0] / sums[2] : ((1.0f - eps) * sums[0] + eps / static_cast<float>(a.classes) * sums[1]) / sums[2];
}

// Element (r, c) of the gradient: grad_loss / total_weight * (p_c * (target + smoothing) - coeff_c).
__global__ void cross_entropy_backward_kernel(CrossEntropyArgs a, const float* log_probs, const int64_t* labels,
                                              const float* sums, const float* grad_loss, float* grad) {
  const float eps = a.label_smoothing, share = eps / static_cast<float>(a.classes);
  const float scale = *grad_loss / sums[2], smooth_sum = share * sums[3];
  const int64_t total = a.n * a.classes;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / a.classes, c = i % a.classes, y = labels[r];
    if (y < 0 || y >= a.classes) {  // reported by the forward pass; no gradient from it
      grad[i] = 0.0f;
      continue;
    }
    const float target = (1.0f - eps) * (a.weight ? a.weight[y] : 1.0f);
    const float coeff = share * (a.weight ? a.weight[c] : 1.0f) + (c == y ? target : 0.0f);
    grad[i] = scale * (expf(log_probs[i]) * (target + smooth_sum) - coeff);
  }
}

__global__ void fill_value_kernel(float* out, float value) { *out = value; }

// The per-row terms summed into sums[0..2], and the sum of the class weights (or the class count) into sums[3].
void cross_entropy_sums(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels, float* sums) {
  DeviceBuffer terms(static_cast<size_t>(3 * a.n) * sizeof(float));
  cross_entropy_terms_kernel<<<blocks_for(a.n * kWarp), kThreads, 0, stream()>>>(a, log_probs, labels, terms.data,
                                                                                device_error_record());
  CUDA_CHECK_LAUNCH("cross_entropy");
  sum({.outer = 3, .axis = a.n, .inner = 1}, terms.data, sums);
  if (a.weight) {
    sum({.outer = 1, .axis = a.classes, .inner = 1}, a.weight, sums + 3);
  } else {
    fill_value_kernel<<<1, 1, 0, stream()>>>(sums + 3, static_cast<float>(a.classes));
    CUDA_CHECK_LAUNCH("cross_entropy");
  }
}

}  // namespace

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y) {
  if (s.outer * s.inner * s.axis == 0) return;
  if (s.inner == 1 && s.axis >= kBlockRowMin) {
    softmax_rows_block_kernel<<<blocks_for(s.outer, 1), kThreads, 0, stream()>>>(s.outer, s.axis, log, x, y);
  } else if (s.inner == 1) {
    softmax_rows_warp_kernel<<<blocks_for(s.outer * kWarp), kThreads, 0, stream()>>>(s.outer, s.axis, log, x, y);
  } else {
    softmax_lines_kernel<<<blocks_for(s.outer * s.inner), kThreads, 0, stream()>>>(s, log, x, y);
  }
  CUDA_CHECK_LAUNCH(log ? "log_softmax" : "softmax");
}

void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx) {
  if (s.outer * s.inner * s.axis == 0) return;
  if (s.inner == 1 && s.axis >= kBlockRowMin) {
    softmax_backward_rows_block_kernel<<<blocks_for(s.outer, 1), kThreads, 0, stream()>>>(s.outer, s.axis, log, y, dy, dx);
  } else if (s.inner == 1) {
    softmax_backward_rows_warp_kernel<<<blocks_for(s.outer * kWarp), kThreads, 0, stream()>>>(s.outer, s.axis, log, y, dy, dx);
  } else {
    softmax_backward_lines_kernel<<<blocks_for(s.outer * s.inner), kThreads, 0, stream()>>>(s, log, y, dy, dx);
  }
  CUDA_CHECK_LAUNCH(log ? "log_softmax backward" : "softmax backward");
}

void sum(const ReduceShape& s, const float* x, float* out) {
  const int64_t outputs = s.outer * s.inner;
  if (outputs == 0) return;
  if (s.axis == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(outputs) * sizeof(float), stream()));
    return;
  }
  sum_kernel<<<blocks_for(outputs, 1), kThreads, 0, stream()>>>(s, x, out);
  CUDA_CHECK_LAUNCH("sum");
}

void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels, float* log_probs, float* loss) {
  softmax_forward({.outer = a.n, .axis = a.classes, .inner = 1}, true, logits, log_probs);
  DeviceBuffer sums(4 * sizeof(float));
  cross_entropy_sums(a, log_probs, labels, sums.data);
  cross_entropy_loss_kernel<<<1, 1, 0, stream()>>>(a, sums.data, loss);
  CUDA_CHECK_LAUNCH("cross_entropy");
}

void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels, const float* grad_loss,
                            float* grad_logits) {
  DeviceBuffer sums(4 * sizeof(float));
  cross_entropy_sums(a, log_probs, labels, sums.data);
  cross_entropy_backward_kernel<<<blocks_for(a.n * a.classes), kThreads, 0, stream()>>>(a, log_probs, labels, sums.data, grad_loss,
                                                                                       grad_logits);
  CUDA_CHECK_LAUNCH("cross_entropy backward");
}

}  // namespace horo::kernels::cuda
