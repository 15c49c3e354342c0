// The scalar definition of each unary op and its derivative, shared by the CPU and reference
// kernels (the reference runs it plainly; the CPU kernel runs it in threaded, vectorisable loops).
#pragma once

#include <cmath>

#include "kernels/activation.h"

namespace horo::kernels::unary_math {

inline float forward(Unary op, float param, float x) {
  switch (op) {
    case Unary::ReLU: return x < 0.0f ? 0.0f : x;  // NaN passes through, as in PyTorch
    case Unary::LeakyReLU: return x < 0.0f ? param * x : x;
    case Unary::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Unary::Tanh: return std::tanh(x);
    case Unary::GELU: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return std::log(x);
    case Unary::Neg: return -x;
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Abs: return std::fabs(x);
  }
  return 0.0f;
}

// d f / d x at x, given y = f(x).
inline float derivative(Unary op, float param, float x, float y) {
  switch (op) {
    case Unary::ReLU: return x > 0.0f ? 1.0f : 0.0f;
    case Unary::LeakyReLU: return x > 0.0f ? 1.0f : param;
    case Unary::Sigmoid: return y * (1.0f - y);
    case Unary::Tanh: return 1.0f - y * y;
    case Unary::GELU: {
      const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
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
