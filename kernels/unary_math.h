// The scalar definition of each unary op and its derivative, shared by the CPU and CUDA kernels (C
// maths functions, which exist on both sides; the reference kernels have their own, in double).
#pragma once

#include <math.h>

#include "kernels/activation.h"
#include "kernels/philox.h"  // HORO_HOST_DEVICE

namespace horo::kernels::unary_math {

HORO_HOST_DEVICE inline float forward(Unary op, float param, float x) {
  switch (op) {
    case Unary::ReLU: return x < 0.0f ? 0.0f : x;  // NaN passes through, as in PyTorch
    case Unary::LeakyReLU: return x < 0.0f ? param * x : x;
    case Unary::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case Unary::Tanh: return tanhf(x);
    case Unary::GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case Unary::Exp: return expf(x);
    case Unary::Log: return logf(x);
    case Unary::Neg: return -x;
    case Unary::Sqrt: return sqrtf(x);
    case Unary::Abs: return fabsf(x);
  }
  return 0.0f;
}

// d f / d x at x, given y = f(x).
HORO_HOST_DEVICE inline float derivative(Unary op, float param, float x, float y) {
  switch (op) {
    case Unary::ReLU: return x > 0.0f ? 1.0f : 0.0f;
    case Unary::LeakyReLU: return x > 0.0f ? 1.0f : param;
    case Unary::Sigmoid: return y * (1.0f - y);
    case Unary::Tanh: return 1.0f - y * y;
    case Unary::GELU: {
      const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case Unary::Exp: return y;
    case Unary::Log: return 1.0f / x;
    case Unary::Neg: return -1.0f;
    case Unary::Sqrt: return 0.5f / y;
    case Unary::Abs: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  }
  return 0.0f;
}

}  // namespace horo::kernels::unary_math
