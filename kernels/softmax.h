// Softmax and log-softmax along one axis of a tensor viewed as [outer, axis, inner].
#pragma once

#include <cstdint>

namespace horo::kernels {

struct SoftmaxShape {
  int64_t outer = 1, axis = 1, inner = 1;
};

namespace cpu {
void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y);
// From the forward output y: softmax dx = y * (dy - sum(dy * y)); log-softmax dx = dy - exp(y) * sum(dy).
void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y);
void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx);
}  // namespace cuda

namespace ref {
void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y);
void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx);
}  // namespace ref

}  // namespace horo::kernels
