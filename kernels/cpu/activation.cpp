#include "kernels/activation.h"

#include <type_traits>

#include "kernels/parallel.h"
#include "kernels/unary_math.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/activation.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;
constexpr int64_t kGrain = 1 << 15;

// Instantiates the loop once per op so that the compiler vectorises each body without a switch inside.
// ReLU, the hot one, explicitly vectorised (the plain loops below compiled to scalar code with a branch
// for it: 7% of W5's AVX2 step). Same semantics as unary_math: NaN passes forward; the derivative is 1
// where x > 0, else 0 (so dy's NaN or infinity still propagates through 0 * dy).
template <Unary Op>
void forward_loop(float param, int64_t n, const float* x, float* y) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if constexpr (Op == Unary::ReLU) {
      simd::for_lanes(b, e, [&](auto d, int64_t i) {
        const auto v = hn::LoadU(d, x + i);
        hn::StoreU(hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v), d, y + i);
      });
    } else {
      for (int64_t i = b; i < e; ++i) y[i] = unary_math::forward(Op, param, x[i]);
    }
  });
}

template <Unary Op>
void backward_loop(float param, int64_t n, const float* x, const float* y, const float* dy, float* dx) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if constexpr (Op == Unary::ReLU) {
      simd::for_lanes(b, e, [&](auto d, int64_t i) {
        const auto slope = hn::IfThenElseZero(hn::Gt(hn::LoadU(d, x + i), hn::Zero(d)), hn::Set(d, 1.0f));
        hn::StoreU(hn::Mul(hn::LoadU(d, dy + i), slope), d, dx + i);
      });
    } else {
      for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * unary_math::derivative(Op, param, x[i], y[i]);
    }
  });
}

template <typename F>
void dispatch(Unary op, const F& f) {
  switch (op) {
    case Unary::ReLU: return f(std::integral_constant<Unary, Unary::ReLU>{});
    case Unary::LeakyReLU: return f(std::integral_constant<Unary, Unary::LeakyReLU>{});
    case Unary::Sigmoid: return f(std::integral_constant<Unary, Unary::Sigmoid>{});
    case Unary::Tanh: return f(std::integral_constant<Unary, Unary::Tanh>{});
    case Unary::GELU: return f(std::integral_constant<Unary, Unary::GELU>{});
    case Unary::Exp: return f(std::integral_constant<Unary, Unary::Exp>{});
    case Unary::Log: return f(std::integral_constant<Unary, Unary::Log>{});
    case Unary::Neg: return f(std::integral_constant<Unary, Unary::Neg>{});
    case Unary::Sqrt: return f(std::integral_constant<Unary, Unary::Sqrt>{});
    case Unary::Abs: return f(std::integral_constant<Unary, Unary::Abs>{});
  }
}
}  // namespace

void unary_forward(Unary op, float param, int64_t n, const float* x, float* y) {
  dispatch(op, [&](auto tag) { forward_loop<decltype(tag)::value>(param, n, x, y); });
}

void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy,
                    float* dx) {
  dispatch(op, [&](auto tag) { backward_loop<decltype(tag)::value>(param, n, x, y, dy, dx); });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels {

const char* unary_name(Unary op) {
  switch (op) {
    case Unary::ReLU: return "relu";
    case Unary::LeakyReLU: return "leaky_relu";
    case Unary::Sigmoid: return "sigmoid";
    case Unary::Tanh: return "tanh";
    case Unary::GELU: return "gelu";
    case Unary::Exp: return "exp";
    case Unary::Log: return "log";
    case Unary::Neg: return "neg";
    case Unary::Sqrt: return "sqrt";
    case Unary::Abs: return "abs";
  }
  return "?";
}

}  // namespace horo::kernels

namespace horo::kernels::cpu {

HWY_EXPORT(unary_forward);
void unary_forward(Unary op, float param, int64_t n, const float* x, float* y) { HORO_CPU_DISPATCH(unary_forward)(op, param, n, x, y); }

HWY_EXPORT(unary_backward);
void unary_backward(Unary op, float param, int64_t n, const float* x, const float* y, const float* dy, float* dx) { HORO_CPU_DISPATCH(unary_backward)(op, param, n, x, y, dy, dx); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
