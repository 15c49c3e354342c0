// Elementwise binary ops with NumPy/PyTorch broadcasting: out[i] = a[i·sa] op b[i·sb], where sa/sb
// are the operands' element strides in the output's index space (0 along broadcast dimensions).
#pragma once

#include <cstdint>

#include "kernels/philox.h"  // HORO_HOST_DEVICE

namespace horo::kernels {

enum class Binary { Add, Sub, Mul, Div };

constexpr int kMaxDims = 8;

struct BroadcastShape {
  int ndim = 0;
  int64_t out_shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};

// The operands' element offsets for output element i.
HORO_HOST_DEVICE inline void broadcast_offsets(const BroadcastShape& s, int64_t i, int64_t& a, int64_t& b) {
  a = b = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    const int64_t idx = i % s.out_shape[d];
    i /= s.out_shape[d];
    a += idx * s.a_stride[d];
    b += idx * s.b_stride[d];
  }
}

namespace cpu {
void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out);
// y = alpha * x + beta (a scalar affine map; covers scaling and adding a constant).
void affine(int64_t n, float alpha, float beta, const float* x, float* y);
// y += x, for gradient accumulation.
void accumulate(int64_t n, const float* x, float* y);
// y = max(a + b, 0): a residual connection and its ReLU in one pass (a NaN stays a NaN).
void add_relu(int64_t n, const float* a, const float* b, float* y);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out);
void affine(int64_t n, float alpha, float beta, const float* x, float* y);
void accumulate(int64_t n, const float* x, float* y);
void add_relu(int64_t n, const float* a, const float* b, float* y);
}  // namespace cuda

namespace ref {
void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out);
void add_relu(int64_t n, const float* a, const float* b, float* y);
}  // namespace ref

}  // namespace horo::kernels
