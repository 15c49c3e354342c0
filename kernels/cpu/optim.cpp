#include "kernels/optim.h"

#include <cmath>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/optim.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

// torch.optim.SGD: g += wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g.
void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float g = grad[i] + a.weight_decay * param[i];
      if (a.momentum != 0.0f) {
        float& buf = momentum_buffer[i];
        buf = a.first_step ? g : a.momentum * buf + (1.0f - a.dampening) * g;
        g = a.nesterov ? g + a.momentum * buf : buf;
      }
      param[i] -= a.lr * g;
    }
  });
}

// torch.optim.Adam / AdamW (amsgrad off): bias-corrected moments, eps added after the square root.
void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq) {
  const double step = static_cast<double>(a.step);
  const float bias1 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta1), step));
  const float bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(a.beta2), step)));
  const float step_size = a.lr / bias1;
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float g = grad[i];
      if (a.decoupled_weight_decay) param[i] *= 1.0f - a.lr * a.weight_decay;
      else g += a.weight_decay * param[i];
      exp_avg[i] = a.beta1 * exp_avg[i] + (1.0f - a.beta1) * g;
      exp_avg_sq[i] = a.beta2 * exp_avg_sq[i] + (1.0f - a.beta2) * g * g;
      const float denom = std::sqrt(exp_avg_sq[i]) / bias2_sqrt + a.eps;
      param[i] -= step_size * exp_avg[i] / denom;
    }
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
