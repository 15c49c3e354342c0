// Elementwise kernels: activations, broadcasting arithmetic, affine maps, accumulation, dropout and
// the fused optimizer updates. Grid-stride loops, over 32-bit indices wherever the tensor allows
// (64-bit division and multiplication cost several instructions each); broadcasting has fast paths
// for operands of the same shape and for a scalar operand.
#include "kernels/activation.h"
#include "kernels/binary.h"
#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"
#include "kernels/optim.h"
#include "kernels/philox.h"
#include "kernels/unary_math.h"

namespace horo::kernels::cuda {
namespace {

#define HORO_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)
// The same over an index type I (int32_t where n fits).
#define HORO_GRID_LOOP_T(I, i, n) \
  for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x); i < (n); \
       i += static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x))

inline bool fits_32(int64_t n) { return n < (int64_t{1} << 31) - int64_t{kMaxBlocks} * kThreads; }

__device__ inline float apply(Binary op, float x, float y) {
  return op == Binary::Add ? x + y : op == Binary::Sub ? x - y : op == Binary::Mul ? x * y : x / y;
}

template <typename I>
__global__ void unary_forward_kernel(Unary op, float param, I n, const float* x, float* y) {
  HORO_GRID_LOOP_T(I, i, n) y[i] = unary_math::forward(op, param, x[i]);
}

template <typename I>
__global__ void unary_backward_kernel(Unary op, float param, I n, const float* x, const float* y, const float* dy, float* dx) {
  HORO_GRID_LOOP_T(I, i, n) dx[i] = dy[i] * unary_math::derivative(op, param, x[i], y[i]);
}

// Broadcasting in general: each output element finds its operands' offsets.
template <typename I>
__global__ void binary_kernel(Binary op, BroadcastShape s, I total, const float* a, const float* b, float* out) {
  HORO_GRID_LOOP_T(I, i, total) {
    I ia = 0, ib = 0, rest = i;
    for (int d = s.ndim - 1; d >= 0; --d) {
      const I extent = static_cast<I>(s.out_shape[d]);
      const I idx = rest % extent;
      rest /= extent;
      ia += idx * static_cast<I>(s.a_stride[d]);
      ib += idx * static_cast<I>(s.b_stride[d]);
    }
    out[i] = apply(op, a[ia], b[ib]);
  }
}

// Operands laid out as the output (or one of them a single value): no index arithmetic.
template <typename I>
__global__ void binary_flat_kernel(Binary op, I n, const float* a, bool a_scalar, const float* b, bool b_scalar, float* out) {
  const float a0 = a_scalar ? a[0] : 0.0f, b0 = b_scalar ? b[0] : 0.0f;
  HORO_GRID_LOOP_T(I, i, n) out[i] = apply(op, a_scalar ? a0 : a[i], b_scalar ? b0 : b[i]);
}

template <typename I>
__global__ void affine_kernel(I n, float alpha, float beta, const float* x, float* y) {
  HORO_GRID_LOOP_T(I, i, n) y[i] = alpha * x[i] + beta;
}

template <typename I>
__global__ void accumulate_kernel(I n, const float* x, float* y) {
  HORO_GRID_LOOP_T(I, i, n) y[i] += x[i];
}

template <typename I>
__global__ void add_relu_kernel(I n, const float* a, const float* b, float* y) {
  HORO_GRID_LOOP_T(I, i, n) {
    const float v = a[i] + b[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

// How the operands of a broadcast are laid out: 0 as the output, 1 a single value, -1 otherwise.
int flat_layout(const int64_t* stride, const BroadcastShape& s) {
  bool zero = true, contiguous = true;
  int64_t expected = 1;
  for (int d = s.ndim - 1; d >= 0; --d) {
    zero = zero && (stride[d] == 0 || s.out_shape[d] == 1);
    contiguous = contiguous && (stride[d] == expected || s.out_shape[d] == 1);
    expected *= s.out_shape[d];
  }
  return contiguous ? 0 : zero ? 1 : -1;
}

// The same Philox stream as the CPU kernel: element i keeps when uniform(seed, offset + i) < 1 - p.
__global__ void dropout_kernel(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) {
  const float keep = 1.0f - p, scale = keep > 0.0f ? 1.0f / keep : 0.0f;
  HORO_GRID_LOOP(i, n) {
    const float m = Philox4x32::uniform(seed, offset + static_cast<uint64_t>(i)) < keep ? scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void sgd_kernel(SgdArgs a, int64_t n, float* param, const float* grad, float* buffer) {
  HORO_GRID_LOOP(i, n) {
    float g = grad[i] + a.weight_decay * param[i];
    if (a.momentum != 0.0f) {
      const float b = a.first_step ? g : a.momentum * buffer[i] + (1.0f - a.dampening) * g;
      buffer[i] = b;
      g = a.nesterov ? g + a.momentum * b : b;
    }
    param[i] -= a.lr * g;
  }
}

__global__ void adam_kernel(AdamArgs a, float step_size, float bias2_sqrt, int64_t n, float* param, const float* grad,
                            float* m, float* v) {
  HORO_GRID_LOOP(i, n) {
    float g = grad[i];
    if (a.decoupled_weight_decay) param[i] *= 1.0f - a.lr * a.weight_decay;
    else g += a.weight_decay * param[i];
    m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    param[i] -= step_size * m[i] / (sqrtf(v[i]) / bias2_sqrt + a.eps);
  }
}

}  // namespace

void unary_forward(Unary op, float param, int64_t n, const float* x, float* y) {
  if (n == 0) return;
  if (fits_32(n)) unary_forward_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream()>>>(op, param, static_cast<int32_t>(n), x, y);
  else unary_forward_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream()>>>(op, param, n, x, y);
  CUDA_CHECK_LAUNCH(unary_name(op));
}

void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy, float* dx) {
  if (n == 0) return;
  if (fits_32(n)) {
    unary_backward_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream()>>>(op, param, static_cast<int32_t>(n), x, y, dy, dx);
  } else {
    unary_backward_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream()>>>(op, param, n, x, y, dy, dx);
  }
  CUDA_CHECK_LAUNCH(unary_name(op));
}

void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  int64_t total = 1;
  for (int d = 0; d < s.ndim; ++d) total *= s.out_shape[d];
  if (total == 0) return;
  const int la = flat_layout(s.a_stride, s), lb = flat_layout(s.b_stride, s);
  const bool fits = fits_32(total);
  if (la >= 0 && lb >= 0) {
    if (fits) {
      binary_flat_kernel<int32_t><<<blocks_for(total), kThreads, 0, stream()>>>(op, static_cast<int32_t>(total), a, la == 1, b,
                                                                                lb == 1, out);
    } else {
      binary_flat_kernel<int64_t><<<blocks_for(total), kThreads, 0, stream()>>>(op, total, a, la == 1, b, lb == 1, out);
    }
  } else if (fits) {
    binary_kernel<int32_t><<<blocks_for(total), kThreads, 0, stream()>>>(op, s, static_cast<int32_t>(total), a, b, out);
  } else {
    binary_kernel<int64_t><<<blocks_for(total), kThreads, 0, stream()>>>(op, s, total, a, b, out);
  }
  CUDA_CHECK_LAUNCH("binary op");
}

void affine(int64_t n, float alpha, float beta, const float* x, float* y) {
  if (n == 0) return;
  if (fits_32(n)) affine_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<int32_t>(n), alpha, beta, x, y);
  else affine_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream()>>>(n, alpha, beta, x, y);
  CUDA_CHECK_LAUNCH("affine");
}

void accumulate(int64_t n, const float* x, float* y) {
  if (n == 0) return;
  if (fits_32(n)) accumulate_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<int32_t>(n), x, y);
  else accumulate_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream()>>>(n, x, y);
  CUDA_CHECK_LAUNCH("accumulate");
}

void add_relu(int64_t n, const float* a, const float* b, float* y) {
  if (n == 0) return;
  if (fits_32(n)) add_relu_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<int32_t>(n), a, b, y);
  else add_relu_kernel<int64_t><<<blocks_for(n), kThreads, 0, stream()>>>(n, a, b, y);
  CUDA_CHECK_LAUNCH("add_relu");
}

void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) {
  if (n == 0) return;
  dropout_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(seed, offset, p, n, x, mask, y);
  CUDA_CHECK_LAUNCH("dropout");
}

void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a, n, param, grad, momentum_buffer);
  CUDA_CHECK_LAUNCH("sgd update");
}

void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq) {
  if (n == 0) return;
  const double step = static_cast<double>(a.step);
  const float bias1 = static_cast<float>(1.0 - pow(static_cast<double>(a.beta1), step));
  const float bias2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(a.beta2), step)));
  adam_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a, a.lr / bias1, bias2_sqrt, n, param, grad, exp_avg, exp_avg_sq);
  CUDA_CHECK_LAUNCH("adam update");
}

}  // namespace horo::kernels::cuda
