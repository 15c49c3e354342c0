#include "kernels/activation.h"

#include <cmath>

namespace horo::kernels::ref {
namespace {

// Double-precision textbook definitions, independent of unary_math.h, so a slip there shows up.
double forward_d(Unary op, double param, double x) {
  switch (op) {
    case Unary::ReLU: return x > 0 ? x : 0;
    case Unary::LeakyReLU: return x > 0 ? x : param * x;
    case Unary::Sigmoid: return 1 / (1 + std::exp(-x));
    case Unary::Tanh: return (std::exp(x) - std::exp(-x)) / (std::exp(x) + std::exp(-x));
    case Unary::GELU: return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return std::log(x);
    case Unary::Neg: return -x;
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Abs: return x < 0 ? -x : x;
  }
  return 0;
}

double derivative_d(Unary op, double param, double x) {
  switch (op) {
    case Unary::ReLU: return x > 0 ? 1 : 0;
    case Unary::LeakyReLU: return x > 0 ? 1 : param;
    case Unary::Sigmoid: { const double s = forward_d(op, param, x); return s * (1 - s); }
    case Unary::Tanh: { const double c = std::cosh(x); return 1 / (c * c); }
    case Unary::GELU: return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-x * x / 2) / std::sqrt(2 * M_PI);
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return 1 / x;
    case Unary::Neg: return -1;
    case Unary::Sqrt: return 0.5 / std::sqrt(x);
    case Unary::Abs: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  }
  return 0;
}

}  // namespace

void unary_forward(Unary op, float param, int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(forward_d(op, param, x[i]));
}

void unary_backward(Unary op, float param, int64_t n, const float* x, const float*, const float* dy,
                    float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = static_cast<float>(dy[i] * derivative_d(op, param, x[i]));
}

}  // namespace horo::kernels::ref
