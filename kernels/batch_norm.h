// Batch normalisation over NCHW activations ([N, C] for BatchNorm1d: a plane of 1), split into the
// steps that BatchNorm and SyncBatchNorm share: local per-channel statistics, the per-channel
// coefficients, the normalisation (optionally fused with the ReLU that follows it in every ResNet),
// and the two backward passes. SyncBatchNorm sums the statistics and the backward sums over ranks
// between the steps; nothing else differs.
//
// Per-channel vectors have length C; `weight` and `bias` may be null (affine=False: 1 and 0).
//  batch_norm_stats:          mean[c] and the biased variance var[c] of x over the batch and the plane.
//  batch_norm_coefficients:   invstd = 1 / sqrt(var + eps), scale = weight * invstd, shift = bias - mean * scale.
//  batch_norm_update_running: running = (1 - momentum) * running + momentum * batch value, the batch
//                             variance multiplied by `unbias` (count / (count - 1)) first.
//  batch_norm_apply:          y = x * scale[c] + shift[c] (+ residual, a residual block's shortcut, when
//                             not null), then max(y, 0) when relu (a NaN stays a NaN).
//  batch_norm_backward_reduce: with g = dy (or, after a fused ReLU, dy where the forward pass's
//                             x * scale[c] + shift[c] was positive: the mask recomputed from x, so the
//                             output need not be read) and xhat = (x - mean) * invstd: sum_dy[c] =
//                             sum of g and sum_dy_xhat[c] = sum of g * xhat.
//  batch_norm_backward_input: dx = weight * invstd * (g - sum_dy / count - xhat * sum_dy_xhat / count),
//                             `count` being the values per channel over every rank that contributed to
//                             the statistics; with null sums (running statistics, constants) dx = weight * invstd * g.
//  batch_norm_backward:       both of the above with this process's sums (no SyncBatchNorm between them):
//                             sum_dy, sum_dy_xhat and dx (count = batch * plane); on the CPU in one pass per
//                             block of channels, whose x and dy are read again from the cache.
#pragma once

#include <cstdint>

namespace horo::kernels {

// The forward pass's coefficients when a ReLU was fused after the normalisation; null: no ReLU.
struct ReluMask {
  const float* scale = nullptr;
  const float* shift = nullptr;
};

struct BatchNormShape {
  int64_t batch = 1, channels = 1, plane = 1;  // plane: H * W (1 for BatchNorm1d)
  constexpr int64_t count() const { return batch * plane; }  // values per channel
};

#define HORO_DECLARE_BATCH_NORM_KERNELS                                                                            \
  void batch_norm_stats(const BatchNormShape& s, const float* x, float* mean, float* var);                          \
  void batch_norm_coefficients(int64_t channels, const float* mean, const float* var, const float* weight,        \
                               const float* bias, float eps, float* invstd, float* scale, float* shift);          \
  void batch_norm_update_running(int64_t channels, const float* mean, const float* var, float momentum,           \
                                 float unbias, float* running_mean, float* running_var);                          \
  void batch_norm_apply(const BatchNormShape& s, const float* x, const float* scale, const float* shift,          \
                        const float* residual, bool relu, float* y);                                              \
  void batch_norm_backward_reduce(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,       \
                                  const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat);     \
  void batch_norm_backward_input(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,        \
                                 const float* mean, const float* invstd, const float* weight, const float* sum_dy, \
                                 const float* sum_dy_xhat, double count, float* dx);                            \
  void batch_norm_backward(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,               \
                           const float* mean, const float* invstd, const float* weight, float* sum_dy,            \
                           float* sum_dy_xhat, float* dx);

namespace cpu { HORO_DECLARE_BATCH_NORM_KERNELS }
// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
HORO_DECLARE_BATCH_NORM_KERNELS
// value[0] += by on the device (num_batches_tracked, without a round trip to the host).
void increment_int64(int64_t* value, int64_t by);
}  // namespace cuda
namespace ref { HORO_DECLARE_BATCH_NORM_KERNELS }

#undef HORO_DECLARE_BATCH_NORM_KERNELS

}  // namespace horo::kernels
