// Direct convolution for a single input channel (a network's first layer on grey images, W1's
// conv1): with one channel, im2col + GEMM has K = 9, too short for a GEMM to run well. Here an output
// row (up to 32 cells: two AVX-512 vectors) is 9 fused multiply-adds per vector and output channel,
// the nine shifted input rows held in registers; the weight gradient is accumulated in registers two
// channels at a time. Masked loads and stores cover the row's end. AVX-512 only: with AVX2's 16
// registers the taps would be re-read per channel, and that measured slower than im2col + GEMM (W1
// conv1: 31 against 38 GFLOP/s); other targets and shapes (stride 1, no padding or dilation) use im2col.
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
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

constexpr int kTaps = 9;  // 3x3
constexpr int kMaxWidth = 32;
constexpr int kLanes = HWY_LANES(float);
constexpr int kVectors = kMaxWidth / kLanes;  // vectors per output row

bool fits(const Conv2dShape& s) {
  return s.in_channels == 1 && s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1 && s.out_w() <= kMaxWidth;
}

// The lanes of each of the row's vectors that hold cells (the last ones may hold none).
void row_masks(int64_t ow_n, M* masks) {
  const D d;
  for (int v = 0; v < kVectors; ++v) masks[v] = hn::FirstN(d, static_cast<size_t>(std::clamp<int64_t>(ow_n - v * kLanes, 0, kLanes)));
}

// Vector v of a row of ow_n cells: a plain load when it is whole, a masked one at the row's end.
HWY_INLINE V load(M mask, int v, int64_t ow_n, const float* p) {
  const D d;
  if ((v + 1) * kLanes <= ow_n) return hn::LoadU(d, p);
  return hn::MaskedLoad(mask, d, p);
}

// Input row under output row oh for tap t.
inline const float* tap_row(const Conv2dShape& s, const float* image, int64_t oh, int t) {
  return image + (oh + t / 3) * s.in_w + t % 3;
}
}  // namespace

bool conv_image_forward_single_channel(const Conv2dShape& s, const float* image, const float* weight,
                                       const float* bias, float* out) {
  if (!fits(s)) return false;
  const D d;
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = oh_n * ow_n;
  const int vectors = static_cast<int>((ow_n + kLanes - 1) / kLanes);
  M masks[kVectors];
  row_masks(ow_n, masks);
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    V x[kTaps * kVectors];
    for (int t = 0; t < kTaps; ++t)
      for (int v = 0; v < kVectors; ++v) x[t * kVectors + v] = load(masks[v], v, ow_n, tap_row(s, image, oh, t) + v * kLanes);
    for (int64_t o = 0; o < s.out_channels; ++o) {
      const float* w = weight + o * kTaps;
      V acc[kVectors];
      for (int v = 0; v < kVectors; ++v) acc[v] = hn::Set(d, bias ? bias[o] : 0.0f);
      for (int t = 0; t < kTaps; ++t) {
        const V wt = hn::Set(d, w[t]);
        for (int v = 0; v < vectors; ++v) acc[v] = hn::MulAdd(wt, x[t * kVectors + v], acc[v]);
      }
      float* row = out + o * plane + oh * ow_n;
      for (int v = 0; v < vectors; ++v) {
        if ((v + 1) * kLanes <= ow_n) hn::StoreU(acc[v], d, row + v * kLanes);
        else hn::BlendedStore(acc[v], masks[v], d, row + v * kLanes);
      }
    }
  }
  return true;
}

bool conv_image_accumulate_weight_grad_single_channel(const Conv2dShape& s, const float* image,
                                                      const float* grad_out, float* grad_weight, float* grad_bias) {
  if (!fits(s)) return false;
  const D d;
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = oh_n * ow_n;
  M masks[kVectors];
  row_masks(ow_n, masks);
  constexpr int kChannels = 2;  // output channels per pass
  for (int64_t o = 0; o < s.out_channels; o += kChannels) {
    const int channels = static_cast<int>(std::min<int64_t>(kChannels, s.out_channels - o));
    V acc[kChannels][kTaps];
    for (int c = 0; c < kChannels; ++c)
      for (int t = 0; t < kTaps; ++t) acc[c][t] = hn::Zero(d);
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      V g[kChannels][kVectors];
      for (int c = 0; c < kChannels; ++c) {
        const float* row = grad_out + (o + std::min(c, channels - 1)) * plane + oh * ow_n;
        for (int v = 0; v < kVectors; ++v) g[c][v] = hn::MaskedLoad(masks[v], d, row + v * kLanes);
      }
      for (int t = 0; t < kTaps; ++t) {
        const float* src = tap_row(s, image, oh, t);
        // Every vector, masked (an empty mask reads nothing): no branch in the loop.
        for (int v = 0; v < kVectors; ++v) {
          const V xv = hn::MaskedLoad(masks[v], d, src + v * kLanes);
          for (int c = 0; c < kChannels; ++c) acc[c][t] = hn::MulAdd(g[c][v], xv, acc[c][t]);
        }
      }
    }
    for (int c = 0; c < channels; ++c)
      for (int t = 0; t < kTaps; ++t) grad_weight[(o + c) * kTaps + t] += hn::GetLane(hn::SumOfLanes(d, acc[c][t]));
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
