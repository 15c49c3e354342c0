// Fused optimizer updates, one pass over a parameter tensor (PyTorch's torch.optim semantics).
#pragma once

#include <cstdint>

namespace horo::kernels {

struct SgdArgs {
  float lr = 0.01f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
  bool first_step = true;  // the momentum buffer starts as the gradient itself
};

struct AdamArgs {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  bool decoupled_weight_decay = false;  // AdamW
  int64_t step = 1;                     // 1-based, for bias correction
};

namespace cpu {
// momentum_buffer may be null when momentum == 0.
void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer);
void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void sgd_update(const SgdArgs& a, int64_t n, float* param, const float* grad, float* momentum_buffer);
void adam_update(const AdamArgs& a, int64_t n, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq);
}  // namespace cuda

}  // namespace horo::kernels
