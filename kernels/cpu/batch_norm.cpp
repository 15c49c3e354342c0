// Batch normalisation on the CPU. Each pass is one sweep over the activations, planes (one image's
// channel) split over threads; the reductions run per channel, each plane summed in float lanes
// (a few hundred values) and the planes in double, so a 6 MB activation keeps its digits.
// Statistics are taken about a per-channel shift (the channel's first value): the sum of squares of
// x - shift does not cancel catastrophically when the mean is large against the spread.
#include "kernels/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/batch_norm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

constexpr int64_t kMinValuesPerThread = 1 << 14;

// Runs body(c) for every channel, channels spread over threads when there is enough work.
template <typename Body>
void for_channels(const BatchNormShape& s, const Body& body) {
  parallel_for(s.channels, std::max<int64_t>(1, kMinValuesPerThread / std::max<int64_t>(1, s.count())),
               [&](int64_t begin, int64_t end) {
                 for (int64_t c = begin; c < end; ++c) body(c);
               });
}

// Runs body(c, offset) for every (image, channel) plane, planes spread over threads.
template <typename Body>
void for_planes(const BatchNormShape& s, const Body& body) {
  parallel_for(s.batch * s.channels, std::max<int64_t>(1, kMinValuesPerThread / std::max<int64_t>(1, s.plane)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t i = begin; i < end; ++i) body(i % s.channels, i * s.plane);
               });
}

// One plane's sums of g and of g * (x - m), g being dy or, after a fused ReLU (a, b: its coefficients),
// dy where x * a + b > 0: float lanes over the plane (a few hundred values).
inline void plane_backward_sums(int64_t plane, const float* xp, const float* gp, float m, const float* relu_a,
                                const float* relu_b, double& g_total, double& gx_total) {
  float g_sum = 0.0f, gx_sum = 0.0f;
  if (relu_a) {
    const float a = *relu_a, b = *relu_b;
#pragma omp simd reduction(+ : g_sum, gx_sum)
    for (int64_t i = 0; i < plane; ++i) {
      const float g = xp[i] * a + b > 0.0f ? gp[i] : 0.0f;
      g_sum += g;
      gx_sum += g * (xp[i] - m);
    }
  } else {
#pragma omp simd reduction(+ : g_sum, gx_sum)
    for (int64_t i = 0; i < plane; ++i) {
      g_sum += gp[i];
      gx_sum += gp[i] * (xp[i] - m);
    }
  }
  g_total += g_sum;
  gx_total += gx_sum;
}

// dx = a * g + b * (x - mean) + d over one plane of channel c, with a = weight * invstd,
// b = -a * invstd * sum_dy_xhat / count and d = -a * sum_dy / count (b = d = 0 without sums).
inline void plane_input_grad(const BatchNormShape& s, int64_t c, const float* xp, ReluMask relu, const float* gp,
                             const float* mean, const float* invstd, const float* weight, const float* sum_dy,
                             const float* sum_dy_xhat, double count, float* out) {
  const float a = static_cast<float>((weight ? weight[c] : 1.0f) * invstd[c]);
  const float b = sum_dy ? static_cast<float>(-a * invstd[c] * (sum_dy_xhat[c] / count)) : 0.0f;
  const float d = sum_dy ? static_cast<float>(-a * (sum_dy[c] / count)) : 0.0f;
  const float m = mean[c];
  if (relu.scale) {
    const float ra = relu.scale[c], rb = relu.shift[c];
#pragma omp simd
    for (int64_t i = 0; i < s.plane; ++i) out[i] = a * (xp[i] * ra + rb > 0.0f ? gp[i] : 0.0f) + b * (xp[i] - m) + d;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < s.plane; ++i) out[i] = a * gp[i] + b * (xp[i] - m) + d;
  }
}

}  // namespace

void batch_norm_stats(const BatchNormShape& s, const float* x, float* mean, float* var) {
  const int64_t stride = s.channels * s.plane;
  for_channels(s, [&](int64_t c) {
    const float shift = x[c * s.plane];
    double sum = 0.0, squares = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* p = x + n * stride + c * s.plane;
      float plane_sum = 0.0f, plane_squares = 0.0f;
#pragma omp simd reduction(+ : plane_sum, plane_squares)
      for (int64_t i = 0; i < s.plane; ++i) {
        const float d = p[i] - shift;
        plane_sum += d;
        plane_squares += d * d;
      }
      sum += plane_sum;
      squares += plane_squares;
    }
    const double count = static_cast<double>(s.count()), centred = sum / count;
    mean[c] = static_cast<float>(shift + centred);
    var[c] = static_cast<float>(std::max(0.0, squares / count - centred * centred));
  });
}

// The per-channel vectors (C numbers) need no speed of their own: the reference's double-precision
// formulas serve.
void batch_norm_coefficients(int64_t channels, const float* mean, const float* var, const float* weight,
                             const float* bias, float eps, float* invstd, float* scale, float* shift) {
  ref::batch_norm_coefficients(channels, mean, var, weight, bias, eps, invstd, scale, shift);
}

void batch_norm_update_running(int64_t channels, const float* mean, const float* var, float momentum, float unbias,
                               float* running_mean, float* running_var) {
  ref::batch_norm_update_running(channels, mean, var, momentum, unbias, running_mean, running_var);
}

void batch_norm_apply(const BatchNormShape& s, const float* x, const float* scale, const float* shift,
                      const float* residual, bool relu, float* y) {
  for_planes(s, [&](int64_t c, int64_t offset) {
    const float a = scale[c], b = shift[c];
    const float* in = x + offset;
    float* out = y + offset;
    if (residual) {
      const float* r = residual + offset;
#pragma omp simd
      for (int64_t i = 0; i < s.plane; ++i) {
        const float v = in[i] * a + b + r[i];
        out[i] = relu && v < 0.0f ? 0.0f : v;
      }
    } else if (relu) {
#pragma omp simd
      for (int64_t i = 0; i < s.plane; ++i) {
        const float v = in[i] * a + b;
        out[i] = v < 0.0f ? 0.0f : v;
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < s.plane; ++i) out[i] = in[i] * a + b;
    }
  });
}

void batch_norm_backward_reduce(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                                const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat) {
  // Images spread over threads, each summing every channel of its images in memory order (one plane
  // after the other) into its own partial sums, which are added in image order at the end.
  const int64_t stride = s.channels * s.plane;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(
                                      std::max<int64_t>(1, s.batch * stride / kMinValuesPerThread))));
  const int64_t workers = std::min<int64_t>(threads, s.batch);
  std::vector<double> partial(static_cast<size_t>(2 * s.channels * std::max<int64_t>(1, workers)), 0.0);
  parallel_for(workers, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      double* g_total = partial.data() + 2 * s.channels * t;
      double* gx_total = g_total + s.channels;
      for (int64_t n = s.batch * t / workers; n < s.batch * (t + 1) / workers; ++n) {
        for (int64_t c = 0; c < s.channels; ++c) {
          const int64_t offset = n * stride + c * s.plane;
          plane_backward_sums(s.plane, x + offset, dy + offset, mean[c], relu.scale ? relu.scale + c : nullptr,
                              relu.shift ? relu.shift + c : nullptr, g_total[c], gx_total[c]);
        }
      }
    }
  });
  for (int64_t c = 0; c < s.channels; ++c) {
    double g = 0.0, gx = 0.0;
    for (int64_t t = 0; t < workers; ++t) {
      g += partial[static_cast<size_t>(2 * s.channels * t + c)];
      gx += partial[static_cast<size_t>(2 * s.channels * t + s.channels + c)];
    }
    sum_dy[c] = static_cast<float>(g);
    sum_dy_xhat[c] = static_cast<float>(gx * invstd[c]);
  }
}

void batch_norm_backward_input(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                               const float* mean, const float* invstd, const float* weight, const float* sum_dy,
                               const float* sum_dy_xhat, double count, float* dx) {
  for_planes(s, [&](int64_t c, int64_t offset) {
    plane_input_grad(s, c, x + offset, relu, dy + offset, mean, invstd, weight, sum_dy, sum_dy_xhat, count, dx + offset);
  });
}

void batch_norm_backward(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean,
                         const float* invstd, const float* weight, float* sum_dy, float* sum_dy_xhat, float* dx) {
  // Blocks of channels whose x and dy over the whole batch take about 1 MB (half a 2 MB L2), at most
  // 64 channels and at least four blocks a thread when there are channels enough: each block's sums,
  // then its dx, re-reading x and dy from the cache. The separate passes stream both tensors twice
  // (W5's first stage at batch 256: 2 x 12.8 MB, well past L2). Each channel is summed in image order,
  // whatever the thread count.
  constexpr int64_t kMaxBlock = 64;
  const int64_t stride = s.channels * s.plane, channel_bytes = 2 * s.count() * static_cast<int64_t>(sizeof(float));
  const int64_t threads = std::max(1, get_num_threads());
  const int64_t block = std::clamp<int64_t>(std::min((int64_t{1} << 20) / std::max<int64_t>(1, channel_bytes),
                                                     s.channels / (4 * threads)),
                                            1, kMaxBlock);
  const int64_t blocks = (s.channels + block - 1) / block;
  const double count = static_cast<double>(s.count());
  parallel_for(blocks, std::max<int64_t>(1, kMinValuesPerThread / std::max<int64_t>(1, block * s.count())),
               [&](int64_t b_begin, int64_t b_end) {
    double g_total[kMaxBlock], gx_total[kMaxBlock];
    for (int64_t blk = b_begin; blk < b_end; ++blk) {
      const int64_t c0 = blk * block, c1 = std::min(s.channels, c0 + block);
      std::fill(g_total, g_total + (c1 - c0), 0.0);
      std::fill(gx_total, gx_total + (c1 - c0), 0.0);
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t offset = n * stride + c * s.plane;
          plane_backward_sums(s.plane, x + offset, dy + offset, mean[c], relu.scale ? relu.scale + c : nullptr,
                              relu.shift ? relu.shift + c : nullptr, g_total[c - c0], gx_total[c - c0]);
        }
      for (int64_t c = c0; c < c1; ++c) {
        sum_dy[c] = static_cast<float>(g_total[c - c0]);
        sum_dy_xhat[c] = static_cast<float>(gx_total[c - c0] * invstd[c]);
      }
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t offset = n * stride + c * s.plane;
          plane_input_grad(s, c, x + offset, relu, dy + offset, mean, invstd, weight, sum_dy, sum_dy_xhat, count,
                           dx + offset);
        }
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(batch_norm_stats);
void batch_norm_stats(const BatchNormShape& s, const float* x, float* mean, float* var) { HORO_CPU_DISPATCH(batch_norm_stats)(s, x, mean, var); }

HWY_EXPORT(batch_norm_coefficients);
void batch_norm_coefficients(int64_t channels, const float* mean, const float* var, const float* weight, const float* bias, float eps, float* invstd, float* scale, float* shift) { HORO_CPU_DISPATCH(batch_norm_coefficients)(channels, mean, var, weight, bias, eps, invstd, scale, shift); }

HWY_EXPORT(batch_norm_update_running);
void batch_norm_update_running(int64_t channels, const float* mean, const float* var, float momentum, float unbias, float* running_mean, float* running_var) { HORO_CPU_DISPATCH(batch_norm_update_running)(channels, mean, var, momentum, unbias, running_mean, running_var); }

HWY_EXPORT(batch_norm_apply);
void batch_norm_apply(const BatchNormShape& s, const float* x, const float* scale, const float* shift, const float* residual, bool relu, float* y) { HORO_CPU_DISPATCH(batch_norm_apply)(s, x, scale, shift, residual, relu, y); }

HWY_EXPORT(batch_norm_backward_reduce);
void batch_norm_backward_reduce(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat) { HORO_CPU_DISPATCH(batch_norm_backward_reduce)(s, x, relu, dy, mean, invstd, sum_dy, sum_dy_xhat); }

HWY_EXPORT(batch_norm_backward);
void batch_norm_backward(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean, const float* invstd, const float* weight, float* sum_dy, float* sum_dy_xhat, float* dx) { HORO_CPU_DISPATCH(batch_norm_backward)(s, x, relu, dy, mean, invstd, weight, sum_dy, sum_dy_xhat, dx); }

HWY_EXPORT(batch_norm_backward_input);
void batch_norm_backward_input(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean, const float* invstd, const float* weight, const float* sum_dy, const float* sum_dy_xhat, double count, float* dx) { HORO_CPU_DISPATCH(batch_norm_backward_input)(s, x, relu, dy, mean, invstd, weight, sum_dy, sum_dy_xhat, count, dx); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
