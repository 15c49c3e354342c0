#include "kernels/optim.h"

#include <cmath>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/optim.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

// torch.optim.SGD: g += wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g.
// Explicitly vectorised: the compiler kept the plain loop scalar (the arguments' fields might alias the
// arrays it writes).
void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer) {
  const float lr = a.lr, weight_decay = a.weight_decay, momentum = a.momentum, kept = 1.0f - a.dampening;
  const bool first = a.first_step, nesterov = a.nesterov;
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    simd::for_lanes(b, e, [&](auto d, int64_t i) {
      const auto p = hn::LoadU(d, param + i);
      auto g = hn::MulAdd(hn::Set(d, weight_decay), p, hn::LoadU(d, grad + i));
      if (momentum != 0.0f) {
        const auto m = hn::Set(d, momentum);
        const auto buf = first ? g : hn::MulAdd(m, hn::LoadU(d, momentum_buffer + i), hn::Mul(hn::Set(d, kept), g));
        hn::StoreU(buf, d, momentum_buffer + i);
        g = nesterov ? hn::MulAdd(m, buf, g) : buf;
      }
      hn::StoreU(hn::NegMulAdd(hn::Set(d, lr), g, p), d, param + i);
    });
  });
}

// torch.optim.Adam / AdamW (amsgrad off): bias-corrected moments, eps added after the square root.
// Explicitly vectorised (the plain loop stayed scalar: sqrt's errno and possible aliasing).
void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq) {
  const double step = static_cast<double>(a.step);
  const float bias1 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta1), step));
  const float bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(a.beta2), step)));
  const float step_size = a.lr / bias1;
  const float beta1 = a.beta1, beta2 = a.beta2, eps = a.eps, weight_decay = a.weight_decay;
  const float decay = 1.0f - a.lr * a.weight_decay;
  const bool decoupled = a.decoupled_weight_decay;
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    simd::for_lanes(b, e, [&](auto d, int64_t i) {
      auto p = hn::LoadU(d, param + i);
      auto g = hn::LoadU(d, grad + i);
      if (decoupled) p = hn::Mul(p, hn::Set(d, decay));
      else g = hn::MulAdd(hn::Set(d, weight_decay), p, g);
      const auto m = hn::MulAdd(hn::Set(d, beta1), hn::LoadU(d, exp_avg + i), hn::Mul(hn::Set(d, 1.0f - beta1), g));
      const auto v = hn::MulAdd(hn::Set(d, beta2), hn::LoadU(d, exp_avg_sq + i), hn::Mul(hn::Mul(hn::Set(d, 1.0f - beta2), g), g));
      hn::StoreU(m, d, exp_avg + i);
      hn::StoreU(v, d, exp_avg_sq + i);
      const auto denom = hn::Add(hn::Div(hn::Sqrt(v), hn::Set(d, bias2_sqrt)), hn::Set(d, eps));
      hn::StoreU(hn::Sub(p, hn::Div(hn::Mul(hn::Set(d, step_size), m), denom)), d, param + i);
    });
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(sgd_update);
void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer) { HORO_CPU_DISPATCH(sgd_update)(a, n, param, grad, momentum_buffer); }

HWY_EXPORT(adam_update);
void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq) { HORO_CPU_DISPATCH(adam_update)(a, n, param, grad, exp_avg, exp_avg_sq); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
