// Adaptive average pooling, planes spread over threads. Global pooling (1x1 output, every ResNet's
// head) is one vectorised sum per plane.
#include "kernels/adaptive_pool.h"

#include <algorithm>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/adaptive_pool.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {
constexpr int64_t kMinValuesPerThread = 1 << 14;
int64_t planes_per_thread(const AdaptivePool2dShape& s) {
  return std::max<int64_t>(1, kMinValuesPerThread / std::max<int64_t>(1, s.in_h * s.in_w));
}
}  // namespace

void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* in = input + p * in_plane;
      float* out = output + p * out_plane;
      if (out_plane == 1) {
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t k = 0; k < in_plane; ++k) sum += in[k];
        out[0] = sum / static_cast<float>(in_plane);
        continue;
      }
      for (int64_t i = 0; i < s.out_h; ++i) {
        const int64_t h0 = adaptive_begin(i, s.in_h, s.out_h), h1 = adaptive_end(i, s.in_h, s.out_h);
        for (int64_t j = 0; j < s.out_w; ++j) {
          const int64_t w0 = adaptive_begin(j, s.in_w, s.out_w), w1 = adaptive_end(j, s.in_w, s.out_w);
          float sum = 0.0f;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += in[h * s.in_w + w];
          out[i * s.out_w + j] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
        }
      }
    }
  });
}

void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* gi = grad_input + p * in_plane;
      const float* go = grad_output + p * out_plane;
      if (out_plane == 1) {
        const float g = go[0] / static_cast<float>(in_plane);
        std::fill(gi, gi + in_plane, g);
        continue;
      }
      std::fill(gi, gi + in_plane, 0.0f);
      for (int64_t i = 0; i < s.out_h; ++i) {
        const int64_t h0 = adaptive_begin(i, s.in_h, s.out_h), h1 = adaptive_end(i, s.in_h, s.out_h);
        for (int64_t j = 0; j < s.out_w; ++j) {
          const int64_t w0 = adaptive_begin(j, s.in_w, s.out_w), w1 = adaptive_end(j, s.in_w, s.out_w);
          const float g = go[i * s.out_w + j] / static_cast<float>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) gi[h * s.in_w + w] += g;
        }
      }
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(adaptive_avgpool2d_forward);
void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output) { HORO_CPU_DISPATCH(adaptive_avgpool2d_forward)(s, input, output); }

HWY_EXPORT(adaptive_avgpool2d_backward);
void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input) { HORO_CPU_DISPATCH(adaptive_avgpool2d_backward)(s, grad_output, grad_input); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
