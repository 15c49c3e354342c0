// Shared by the direct convolution kernels (conv_padded.cpp, conv_transposed.cpp): zero-padded
// image planes, their geometry, and the store of a channel-vectorised output tile into NCHW (with the
// BatchNorm statistics it can gather on the way). Internal to the CPU kernels.
// A per-target header: included from kernel files compiled once per SIMD target.
#if defined(HORO_KERNELS_CPU_CONV_PADDED_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HORO_KERNELS_CPU_CONV_PADDED_H_
#undef HORO_KERNELS_CPU_CONV_PADDED_H_
#else
#define HORO_KERNELS_CPU_CONV_PADDED_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE::padded {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

constexpr int kTaps = 9;  // 3x3
constexpr bool kWide = HWY_LANES(float) >= 16;  // AVX-512: 32 vector registers (AVX2 and NEON: 16)

inline int64_t lanes() { return static_cast<int64_t>(hn::Lanes(D())); }
// Channels rounded up to whole vectors.
inline int64_t padded_channels(int64_t channels) { return (channels + lanes() - 1) / lanes() * lanes(); }

// The padded-plane geometry of one convolution.
struct Geometry {
  int64_t stride = 1;      // 1 or 2, the same along both axes
  int64_t hp = 0, wp = 0;  // padded input height and width
  int64_t out_h = 0, out_w = 0;
  int64_t plane = 0;  // floats per padded input plane (a multiple of 16, for alignment)
  int64_t offsets[kTaps] = {};  // tap (ky, kx) reads at q + ky * wp + kx
};

inline Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.stride = s.stride_h;
  g.hp = s.in_h + 2 * s.pad_h;
  g.wp = s.in_w + 2 * s.pad_w;
  g.out_h = s.out_h();
  g.out_w = s.out_w();
  g.plane = (g.hp * g.wp + 15) / 16 * 16;
  for (int t = 0; t < kTaps; ++t) g.offsets[t] = (t / 3) * g.wp + t % 3;
  return g;
}

// Copies an image [channels, h, w] into the interiors of padded planes (`plane` floats apart, rows
// `stride` floats apart) whose borders are zero (the buffer is zeroed once per call and only interiors
// are written after that).
inline void pad_image(const float* image, int64_t channels, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w,
                      int64_t plane, int64_t stride, float* padded) {
  for (int64_t c = 0; c < channels; ++c) {
    simd::copy_rows(image + c * h * w, w, padded + c * plane + pad_h * stride + pad_w, stride, h, w);
  }
}
inline void pad_image(const float* image, int64_t channels, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w,
                      const Geometry& g, float* padded) {
  pad_image(image, channels, h, w, pad_h, pad_w, g.plane, g.wp, padded);
}

// Per-channel sums of one image's output about a shift, for conv2d_forward_stats: `sums` holds, per
// output channel, a vector of partial sums and one of partial sums of squares.
struct Stats {
  const float* shift = nullptr;
  float* sums = nullptr;  // [channels][2][lanes]
};

// Adds one image's vector partial sums (stats.sums) into a thread's double sums [2][channels].
inline void add_image_stats(const Stats& stats, int64_t channels, double* thread_sums) {
  const int64_t n = lanes();
  for (int64_t o = 0; o < channels; ++o)
    for (int64_t i = 0; i < n; ++i) {
      thread_sums[o] += stats.sums[o * 2 * n + i];
      thread_sums[channels + o] += stats.sums[o * 2 * n + n + i];
    }
}

// sums[2][channels] = the threads' sums added up (thread_sums: [threads][2][channels]).
inline void add_thread_stats(const double* thread_sums, int threads, int64_t channels, double* sums) {
  std::fill(sums, sums + 2 * channels, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < 2 * channels; ++i) sums[i] += thread_sums[t * 2 * channels + i];
}

// Writes block [cells][width] (cells of one output row from `cell`, width channels from o0) into
// NCHW output planes, adding the bias (and adding to the statistics when they are kept).
inline void store_block(const float* block, int64_t cells, int64_t width, int64_t o0, int64_t channels, int64_t plane,
                 int64_t cell, const float* bias, float* output, const Stats& stats) {
#if HORO_TARGET_MASKED_MEMORY
  if (simd::kFastTranspose) {
    // 16 cells x 16 (or 8) channels at a time: transposed in registers, then each channel's 16 cells stored
    // as one or two vectors (masked at the row's end), their statistics summed on the way.
    const D d;
    const int64_t n = lanes();
    HWY_ALIGN float t[16 * 16];
    for (int64_t c0 = 0; c0 < cells; c0 += 16) {
      const int64_t count = std::min<int64_t>(16, cells - c0);
      // Channels 16 at a time, or 8 (AVX2 tiles one vector wide) as two 8 x 8 blocks.
      const int64_t step = width % 16 == 0 ? 16 : 8;
      for (int64_t k0 = 0; k0 < width; k0 += step) {
        if (step == 16) {
          simd::transpose16x16(block + c0 * width + k0, width, t, 16);  // rows past `count` are not stored
        } else {
#if HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
          simd::transpose8x8(block + c0 * width + k0, width, t, 16);
          simd::transpose8x8(block + (c0 + 8) * width + k0, width, t + 8, 16);
#endif
        }
        for (int64_t k = 0; k < step && o0 + k0 + k < channels; ++k) {
          const int64_t o = o0 + k0 + k;
          const V b = hn::Set(d, bias ? bias[o] : 0.0f);
          for (int64_t j = 0; j < 16; j += n) {
            const int64_t valid = std::clamp<int64_t>(count - j, 0, n);
            const auto mask = hn::FirstN(d, static_cast<size_t>(valid));
            const V v = hn::Add(hn::Load(d, t + k * 16 + j), b);
            float* to = output + o * plane + cell + c0 + j;
            if (valid == n) {
              hn::StoreU(v, d, to);
            } else if (valid > 0) {
              simd::store_first(v, d, to, static_cast<size_t>(valid));  // masked stores are slow on AMD's AVX2
            }
            if (stats.sums) {
              const V dev = hn::IfThenElseZero(mask, hn::Sub(v, hn::Set(d, stats.shift[o])));
              float* sum = stats.sums + o * 2 * n;
              hn::Store(hn::Add(hn::Load(d, sum), dev), d, sum);
              hn::Store(hn::MulAdd(dev, dev, hn::Load(d, sum + n)), d, sum + n);
            }
          }
        }
      }
    }
    return;
  }
#endif
  const int64_t n = lanes();
  for (int64_t k = 0; k < width && o0 + k < channels; ++k) {
    const int64_t o = o0 + k;
    const float b = bias ? bias[o] : 0.0f;
    float* dst = output + o * plane + cell;
    for (int64_t i = 0; i < cells; ++i) dst[i] = block[i * width + k] + b;
    if (stats.sums) {
      float sum = 0.0f, squares = 0.0f;
      for (int64_t i = 0; i < cells; ++i) {
        const float d = dst[i] - stats.shift[o];
        sum += d;
        squares += d * d;
      }
      stats.sums[o * 2 * n] += sum;
      stats.sums[o * 2 * n + n] += squares;
    }
  }
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE::padded
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
