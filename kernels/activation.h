// Pointwise activations and unary maths: y = f(x) and dx = dy * f'(x).
#pragma once

#include <cstdint>

namespace horo::kernels {

enum class Unary { ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Exp, Log, Neg, Sqrt, Abs };

const char* unary_name(Unary op);

namespace cpu {
// param is LeakyReLU's negative slope; other ops ignore it.
void unary_forward(Unary op, float param, int64_t n, const float* x, float* y);
// Needs x and y of the forward pass (each op reads the one its derivative is cheaper from).
void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy,
                    float* dx);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void unary_forward(Unary op, float param, int64_t n, const float* x, float* y);
void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy,
                    float* dx);
}  // namespace cuda

namespace ref {
void unary_forward(Unary op, float param, int64_t n, const float* x, float* y);
void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy,
                    float* dx);
}  // namespace ref

}  // namespace horo::kernels
