// Direct convolution for a single input channel (a network's first layer on grey images, W1's
// conv1): with one channel, im2col + GEMM has K = 9, too short for a GEMM to run well. Here the
// 3x3 taps of an output row sit in registers, each output channel is 9 fused multiply-adds per 16
// outputs, and the weight gradient is accumulated in registers two channels at a time.
// Stride 1, no padding or dilation, output rows up to 32 wide; other shapes use im2col.
#include <algorithm>

// Compiled once per SIMD target (hwy/foreach_target.h); called from the other kernels of the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_direct.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/conv_image.h"


HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HORO_TARGET_AVX512
namespace {
constexpr int kTaps = 9;  // 3x3

bool fits(const Conv2dShape& s) {
  return s.in_channels == 1 && s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1 && s.out_w() <= 32;
}

// The nine shifted input rows under output row oh, in two 16-lane halves.
inline void load_taps(const Conv2dShape& s, const float* image, int64_t oh, __mmask16 m0, __mmask16 m1, __m512* x0,
                      __m512* x1) {
  for (int t = 0; t < kTaps; ++t) {
    const float* src = image + (oh + t / 3) * s.in_w + t % 3;
    x0[t] = _mm512_maskz_loadu_ps(m0, src);
    x1[t] = _mm512_maskz_loadu_ps(m1, src + 16);
  }
}
}  // namespace

bool conv_image_forward_single_channel(const Conv2dShape& s, const float* image, const float* weight,
                                       const float* bias, float* out) {
  if (!fits(s)) return false;
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = oh_n * ow_n;
  const __mmask16 m0 = simd::tail_mask(ow_n), m1 = simd::tail_mask(std::max<int64_t>(0, ow_n - 16));
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    __m512 x0[kTaps], x1[kTaps];
    load_taps(s, image, oh, m0, m1, x0, x1);
    for (int64_t o = 0; o < s.out_channels; ++o) {
      const float* w = weight + o * kTaps;
      __m512 a0 = _mm512_set1_ps(bias ? bias[o] : 0.0f), a1 = a0;
      for (int t = 0; t < kTaps; ++t) {
        const __m512 wt = _mm512_set1_ps(w[t]);
        a0 = _mm512_fmadd_ps(wt, x0[t], a0);
        a1 = _mm512_fmadd_ps(wt, x1[t], a1);
      }
      float* row = out + o * plane + oh * ow_n;
      _mm512_mask_storeu_ps(row, m0, a0);
      _mm512_mask_storeu_ps(row + 16, m1, a1);
    }
  }
  return true;
}

bool conv_image_accumulate_weight_grad_single_channel(const Conv2dShape& s, const float* image,
                                                      const float* grad_out, float* grad_weight, float* grad_bias) {
  if (!fits(s)) return false;
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = oh_n * ow_n;
  const __mmask16 m0 = simd::tail_mask(ow_n), m1 = simd::tail_mask(std::max<int64_t>(0, ow_n - 16));
  for (int64_t o = 0; o < s.out_channels; o += 2) {
    const bool pair = o + 1 < s.out_channels;
    __m512 acc_a[kTaps], acc_b[kTaps];
    for (int t = 0; t < kTaps; ++t) acc_a[t] = acc_b[t] = _mm512_setzero_ps();
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const float* ga = grad_out + o * plane + oh * ow_n;
      const float* gb = pair ? ga + plane : ga;
      const __m512 ga0 = _mm512_maskz_loadu_ps(m0, ga), ga1 = _mm512_maskz_loadu_ps(m1, ga + 16);
      const __m512 gb0 = _mm512_maskz_loadu_ps(m0, gb), gb1 = _mm512_maskz_loadu_ps(m1, gb + 16);
      for (int t = 0; t < kTaps; ++t) {
        const float* src = image + (oh + t / 3) * s.in_w + t % 3;
        const __m512 x0 = _mm512_maskz_loadu_ps(m0, src), x1 = _mm512_maskz_loadu_ps(m1, src + 16);
        acc_a[t] = _mm512_fmadd_ps(ga1, x1, _mm512_fmadd_ps(ga0, x0, acc_a[t]));
        acc_b[t] = _mm512_fmadd_ps(gb1, x1, _mm512_fmadd_ps(gb0, x0, acc_b[t]));
      }
    }
    for (int t = 0; t < kTaps; ++t) {
      grad_weight[o * kTaps + t] += _mm512_reduce_add_ps(acc_a[t]);
      if (pair) grad_weight[(o + 1) * kTaps + t] += _mm512_reduce_add_ps(acc_b[t]);
    }
  }
  if (grad_bias) {
    for (int64_t o = 0; o < s.out_channels; ++o) grad_bias[o] += simd::sum(grad_out + o * plane, plane);
  }
  return true;
}
bool single_channel_fits(const Conv2dShape& s) { return fits(s); }
#else
bool single_channel_fits(const Conv2dShape&) { return false; }
bool conv_image_forward_single_channel(const Conv2dShape&, const float*, const float*, const float*, float*) {
  return false;
}
bool conv_image_accumulate_weight_grad_single_channel(const Conv2dShape&, const float*, const float*, float*, float*) {
  return false;
}
#endif

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

