// The input gradient of a 3x3 stride-2 convolution (a ResNet's downsampling layers) computed
// directly, vectorised over input channels like the other direct kernels (conv_padded.h), instead of
// a GEMM into columns and col2im.
//
// dx[c][iy][ix] = sum over o and taps of w[o][c][ky][kx] * dy[o][oy][ox] with iy = 2 oy + ky - pad,
// ix = 2 ox + kx - pad. So input row iy receives kernel rows ky of the parity of iy + pad (two rows
// when it is even, one when odd), and each dy value of such a row feeds the three consecutive input
// cells 2 ox - pad + {0, 1, 2}: one broadcast, up to three multiply-adds. dy is read from a copy with a
// zero border of one cell, so the rows and cells just outside it need no checks.
#include <algorithm>
#include <vector>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); called from the other kernels of the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_transposed.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/conv_image.h"
#include "kernels/cpu/conv_padded.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

using namespace padded;

constexpr int kCells1 = kWide ? 24 : 10;  // input cells a tile, for OV = 1 and 2 channel vectors
constexpr int kCells2 = kWide ? 12 : 4;

// One kernel row's contribution: dy row `oy` (index in the bordered plane) through kernel row ky.
struct KernelRow {
  int64_t ky = 0, row = 0;
};

// P input cells from ix0 of one input row x OV channel vectors; par = (ix0 + pad) % 2 and the dy
// column m0 = (ix0 + pad) / 2 (bordered index m0 + 1). weights: [o][taps][channels_t].
template <int OV, int P, int Par>
void transposed_tile(const float* dy_padded, int64_t dy_plane, int64_t dy_wp, int64_t out_channels, const float* weights,
                     int64_t channels_t, const KernelRow* rows, int row_count, int64_t m0, float* block) {
  const D d;
  const size_t n = hn::Lanes(d);
  constexpr int J = (P - 1 + Par) / 2 + 2;  // dy cells m0 - 1 ... m0 + J - 2
  V acc[P][OV];
  HWY_UNROLL(32) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::Zero(d);
  }
  for (int64_t o = 0; o < out_channels; ++o) {
    for (int k = 0; k < row_count; ++k) {
      const float* dyr = dy_padded + o * dy_plane + rows[k].row * dy_wp + m0;  // bordered column m0 - 1 + 1
      const float* wk = weights + (o * kTaps + rows[k].ky * 3) * channels_t;
      V w[3][OV];
      HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
        HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) w[kx][ov] = hn::Load(d, wk + kx * channels_t + ov * n);
      }
      // dy cell m0 - 1 + j feeds input cells 2 (j - 1) + kx - Par of the run.
      HWY_UNROLL(16) for (int j = 0; j < J; ++j) {
        const V x = hn::Set(d, dyr[j]);
        HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
          const int p = 2 * (j - 1) + kx - Par;
          if (p >= 0 && p < P) {
            HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::MulAdd(w[kx][ov], x, acc[p][ov]);
          }
        }
      }
    }
  }
  HWY_UNROLL(32) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[p][ov], d, block + p * OV * n + ov * n);
  }
}

// transposed_tile for P (1 to PMax) and the parity chosen at run time.
template <int OV, int PMax>
void transposed_cells(int64_t p, int64_t par, const float* dy_padded, int64_t dy_plane, int64_t dy_wp,
                      int64_t out_channels, const float* weights, int64_t channels_t, const KernelRow* rows,
                      int row_count, int64_t m0, float* block) {
  if constexpr (PMax >= 1) {
    if (p == PMax) {
      if (par == 0) return transposed_tile<OV, PMax, 0>(dy_padded, dy_plane, dy_wp, out_channels, weights, channels_t, rows, row_count, m0, block);
      return transposed_tile<OV, PMax, 1>(dy_padded, dy_plane, dy_wp, out_channels, weights, channels_t, rows, row_count, m0, block);
    }
    transposed_cells<OV, PMax - 1>(p, par, dy_padded, dy_plane, dy_wp, out_channels, weights, channels_t, rows, row_count,
                                   m0, block);
  }
}

// Channel vectors [ov0, ov0 + OV) of one image's input gradient.
template <int OV>
void transposed_image(const Conv2dShape& s, const float* dy_padded, int64_t dy_plane, int64_t dy_wp, const float* weights,
                      int64_t channels_t, int64_t ov0, float* block, float* grad_image) {
  constexpr int kMax = OV == 1 ? kCells1 : kCells2;
  const int64_t n = lanes();
  const int64_t runs = (s.in_w + kMax - 1) / kMax, width = (s.in_w + runs - 1) / runs;
  for (int64_t iy = 0; iy < s.in_h; ++iy) {
    // Kernel rows of this input row's parity, with their dy rows (bordered index).
    const int64_t v = iy + s.pad_h;
    KernelRow rows[2];
    int row_count = 0;
    for (int64_t ky = v % 2; ky < 3; ky += 2) rows[row_count++] = {ky, (v - ky) / 2 + 1};
    for (int64_t ix0 = 0; ix0 < s.in_w; ix0 += width) {
      const int64_t cells = std::min(width, s.in_w - ix0), u = ix0 + s.pad_w;
      transposed_cells<OV, kMax>(cells, u % 2, dy_padded, dy_plane, dy_wp, s.out_channels, weights + ov0 * n, channels_t,
                                 rows, row_count, u / 2, block);
      store_block(block, cells, OV * n, ov0 * n, s.in_channels, s.in_h * s.in_w, iy * s.in_w + ix0, nullptr, grad_image,
                  Stats{});
    }
  }
}

}  // namespace

bool conv2d_backward_input_strided(const Conv2dShape& s, const float* grad_output, const float* weight,
                                   float* grad_input) {
  if (!(s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 2 && s.stride_w == 2 && s.dilation_h == 1 &&
        s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 && s.out_h() > 0 && s.out_w() > 0 && s.in_channels >= 8)) {
    return false;
  }
  const int64_t oh = s.out_h(), ow = s.out_w(), dy_wp = ow + 2, dy_plane = (oh + 2) * dy_wp + 16;
  const int64_t channels_t = padded_channels(s.in_channels), vectors = channels_t / lanes();
  // [out][in][taps] -> [out][taps][in, padded to vectors]
  thread_local std::vector<float> weight_buffer;
  float* weights = thread_buffer(weight_buffer, s.out_channels * kTaps * channels_t);
  std::fill(weights, weights + s.out_channels * kTaps * channels_t, 0.0f);
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int t = 0; t < kTaps; ++t) weights[(o * kTaps + t) * channels_t + c] = weight[(o * s.in_channels + c) * kTaps + t];
  const int64_t dy_size = s.out_channels * oh * ow, dx_size = s.in_channels * s.in_h * s.in_w;
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> padded_buffer, block_buffer;
    float* dy_padded = thread_buffer(padded_buffer, s.out_channels * dy_plane);
    std::fill(dy_padded, dy_padded + s.out_channels * dy_plane, 0.0f);  // the borders, for every image of the call
    float* block = thread_buffer(block_buffer, 32 * 2 * lanes());
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t o = 0; o < s.out_channels; ++o) {
        simd::copy_rows(grad_output + b * dy_size + o * oh * ow, ow, dy_padded + o * dy_plane + dy_wp + 1, dy_wp, oh, ow);
      }
      float* dx = grad_input + b * dx_size;
      int64_t ov = 0;
      for (; ov + 2 <= vectors; ov += 2) transposed_image<2>(s, dy_padded, dy_plane, dy_wp, weights, channels_t, ov, block, dx);
      for (; ov < vectors; ++ov) transposed_image<1>(s, dy_padded, dy_plane, dy_wp, weights, channels_t, ov, block, dx);
    }
  });
  return true;
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

