// Elementwise kernels: activations, broadcasting arithmetic, affine maps, accumulation, dropout and
// the fused optimizer updates. Grid-stride loops over int64 indices.
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

__global__ void unary_forward_kernel(Unary op, float param, int64_t n, const float* x, float* y) {
  HORO_GRID_LOOP(i, n) y[i] = unary_math::forward(op, param, x[i]);
}

__global__ void unary_backward_kernel(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy,
                                      float* dx) {
  HORO_GRID_LOOP(i, n) dx[i] = dy[i] * unary_math::derivative(op, param, x[i], y[i]);
}

__global__ void binary_kernel(Binary op, BroadcastShape s, int64_t total, const float* a, const float* b, float* out) {
  HORO_GRID_LOOP(i, total) {
    int64_t ia, ib;
    broadcast_offsets(s, i, ia, ib);
    const float x = a[ia], y = b[ib];
    out[i] = op == Binary::Add ? x + y : op == Binary::Sub ? x - y : op == Binary::Mul ? x * y : x / y;
  }
}

__global__ void affine_kernel(int64_t n, float alpha, float beta, const float* x, float* y) {
  HORO_GRID_LOOP(i, n) y[i] = alpha * x[i] + beta;
}

__global__ void accumulate_kernel(int64_t n, const float* x, float* y) {
  HORO_GRID_LOOP(i, n) y[i] += x[i];
}

__global__ void add_relu_kernel(int64_t n, const float* a, const float* b, float* y) {
  HORO_GRID_LOOP(i, n) {
    const float v = a[i] + b[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
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
  unary_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(op, param, n, x, y);
  CUDA_CHECK_LAUNCH(unary_name(op));
}

void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy, float* dx) {
  if (n == 0) return;
  unary_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(op, param, n, x, y, dy, dx);
  CUDA_CHECK_LAUNCH(unary_name(op));
}

void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  int64_t total = 1;
  for (int d = 0; d < s.ndim; ++d) total *= s.out_shape[d];
  if (total == 0) return;
  binary_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(op, s, total, a, b, out);
  CUDA_CHECK_LAUNCH("binary op");
}

void affine(int64_t n, float alpha, float beta, const float* x, float* y) {
  if (n == 0) return;
  affine_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, alpha, beta, x, y);
  CUDA_CHECK_LAUNCH("affine");
}

void accumulate(int64_t n, const float* x, float* y) {
  if (n == 0) return;
  accumulate_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, x, y);
  CUDA_CHECK_LAUNCH("accumulate");
}

void add_relu(int64_t n, const float* a, const float* b, float* y) {
  if (n == 0) return;
  add_relu_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, a, b, y);
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
