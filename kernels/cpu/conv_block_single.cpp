// The fused Conv2d-ReLU-MaxPool2d block for a single input channel (a network's first layer on grey
// images: W1's conv1, 1 -> 32 channels, 28x28), 3x3 stride 1 unpadded, pooled 2x2 stride 2.
//
// Vectorised over a pooled row: L pooled cells at a time, each the maximum of four convolution cells
// (2x2 window), each of those 9 multiply-adds. Those cells read the input at even and odd columns,
// so the image is first split by column parity ([row][even columns], [row][odd columns]); the four
// columns under a window start at even[k], odd[k], even[k + 1], odd[k + 1], plain unaligned loads.
// The 4x4 input patch of a vector of windows feeds 36 multiply-adds whose 9 weights stay in
// registers for the whole plane (on AVX2, with two vectors' 8 accumulators, one of 16 spills), and the convolution's output is never stored: the four cells are
// pooled (ties to the first in row-major order, a NaN wins, as maxpool2d_forward), ReLU applied and
// the pooled row stored with its argmax, all in NCHW. Backward (the weight and bias gradients; a first
// layer needs no input gradient) sends each pooled cell's masked gradient to its argmax cell by four
// compares and takes the 36 products against the same patch.
//
// This replaces, on W1's conv1, im2col + GEMM with K = 9 per image and a separate pooling pass (that
// block ran at 25-30 GFLOP/s on 2 AVX2 cores). Fixed-width targets only (not SVE, whose
// vectors cannot be held in arrays; not the plain C++ one): elsewhere the caller's paths run.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); called from the other kernels of the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_block_single.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/conv_image.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HWY_TARGET != HWY_SCALAR && !HWY_HAVE_SCALABLE
namespace {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<D>;
using V = hn::Vec<D>;
using VI = hn::Vec<DI>;
constexpr int64_t kLanes = HWY_LANES(float);
constexpr int kTaps = 9;

thread_local std::vector<float> t_parity;  // one image split by column parity

bool fits(const Conv2dShape& c, const Pool2dShape& p) {
  return c.in_channels == 1 && c.kernel_h == 3 && c.kernel_w == 3 && c.stride_h == 1 && c.stride_w == 1 &&
         c.pad_h == 0 && c.pad_w == 0 && c.dilation_h == 1 && c.dilation_w == 1 && p.kernel_h == 2 &&
         p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0 &&
         p.in_h == c.out_h() && p.in_w == c.out_w() && p.out_h() >= 1 && p.out_w() >= 1;
}

// The image's rows split by column parity: even[r * stride + k] = x[r][2k], odd[...] = x[r][2k + 1],
// zero past the image. A row holds every whole vector of pooled cells plus one (the patch's third
// and fourth columns start one cell on).
struct Parity {
  const float* even;
  const float* odd;
  int64_t stride;
};

Parity split_columns(const Conv2dShape& c, int64_t pooled_w, const float* image) {
  const int64_t stride = (pooled_w + kLanes - 1) / kLanes * kLanes + kLanes;
  float* even = thread_buffer(t_parity, 2 * c.in_h * stride);
  float* odd = even + c.in_h * stride;
  for (int64_t r = 0; r < c.in_h; ++r) {
    const float* row = image + r * c.in_w;
    float* e = even + r * stride;
    float* o = odd + r * stride;
    int64_t k = 0;
    for (; 2 * k + 1 < c.in_w; ++k) {
      e[k] = row[2 * k];
      o[k] = row[2 * k + 1];
    }
    if (2 * k < c.in_w) {  // an odd width: the last column has no odd partner
      e[k] = row[2 * k];
      o[k] = 0.0f;
      ++k;
    }
    std::fill(e + k, e + stride, 0.0f);
    std::fill(o + k, o + stride, 0.0f);
  }
  return {even, odd, stride};
}

// The 4x4 input patch under L windows of pooled row ph, from pooled column k: column j of the patch
// (0..3) is even, odd, even + 1, odd + 1.
struct Patch {
  const float* row[4][2];  // [patch row][parity]
  HWY_INLINE V at(int i, int j, int64_t k) const { return hn::LoadU(D(), row[i][j & 1] + k + (j >> 1)); }
};

Patch patch_rows(const Parity& p, int64_t ph) {
  Patch patch;
  for (int i = 0; i < 4; ++i) {
    patch.row[i][0] = p.even + (2 * ph + i) * p.stride;
    patch.row[i][1] = p.odd + (2 * ph + i) * p.stride;
  }
  return patch;
}

// The first `count` values at p (count <= L), zero beyond: a masked load where native, else through a
// buffer (reading past a tensor's end is not allowed).
template <class DT>
HWY_INLINE hn::Vec<DT> load_first(DT d, const hn::TFromD<DT>* p, int64_t count) {
  if (count >= kLanes) return hn::LoadU(d, p);
#if HORO_TARGET_MASKED_MEMORY
  return hn::MaskedLoad(hn::FirstN(d, static_cast<size_t>(count)), d, p);
#else
  HWY_ALIGN hn::TFromD<DT> buffer[kLanes] = {};
  std::copy(p, p + count, buffer);
  return hn::Load(d, buffer);
#endif
}

// The four convolution cells of N vectors of windows ([tile][dy][dx]), bias included: cell (dy, dx)
// takes tap (ky, kx) from patch (dy + ky, dx + kx). Two vectors a tile give 8 independent chains of
// multiply-adds, enough to cover the FMA latency (one vector's 4 chains ran at half the rate).
template <int N>
HWY_INLINE void window_cells(const Patch (&patch)[N], const int64_t (&k)[N], const V (&w)[kTaps], V b, V (&acc)[N][2][2]) {
  for (int t = 0; t < N; ++t) acc[t][0][0] = acc[t][0][1] = acc[t][1][0] = acc[t][1][1] = b;
  // Fully unrolled (GCC left these loops rolled, with their bounds tests, at a third of the speed).
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 2
      for (int t = 0; t < N; ++t) {
        const V x = patch[t].at(i, j, k[t]);
#pragma GCC unroll 2
        for (int dy = 0; dy < 2; ++dy) {
#pragma GCC unroll 2
          for (int dx = 0; dx < 2; ++dx) {
            const int ky = i - dy, kx = j - dx;
            if (ky >= 0 && ky < 3 && kx >= 0 && kx < 3) acc[t][dy][dx] = hn::MulAdd(x, w[ky * 3 + kx], acc[t][dy][dx]);
          }
        }
      }
    }
  }
}

}  // namespace

bool conv_relu_maxpool_forward_single_channel(const Conv2dShape& c, const Pool2dShape& p, const float* input,
                                              const float* weight, const float* bias, float* output, int32_t* argmax) {
  if (!fits(c, p)) return false;
  const int64_t ph_n = p.out_h(), pw_n = p.out_w(), pooled = ph_n * pw_n, conv_w = c.out_w();
  const int64_t image_size = c.in_h * c.in_w;
  const int64_t row_vectors = (pw_n + kLanes - 1) / kLanes, windows = ph_n * row_vectors;
  const int32_t down = static_cast<int32_t>(conv_w);
  parallel_for(c.batch, 1, [&](int64_t begin, int64_t end) {
    const D d;
    const DI di;
    const V zero = hn::Zero(d);
    const VI even_cells = hn::Add(hn::Iota(di, 0), hn::Iota(di, 0));  // 0, 2, 4, ...: a window's first column
    const VI right = hn::Set(di, 1), below = hn::Set(di, down), diagonal = hn::Set(di, down + 1);
    // Pools a vector's four cells (ties to the first in row-major order; a NaN wins), applies the
    // ReLU and stores the pooled values and their argmax.
    auto pool_store = [&](const V (&cell)[2][2], int64_t ph, int64_t k, float* out, int32_t* arg) {
      const VI first = hn::Add(even_cells, hn::Set(di, static_cast<int32_t>(2 * ph * conv_w + 2 * k)));
      V best = cell[0][0];
      VI index = first;
      // Without a NaN among the cells (their sum is a NaN if any is; a false alarm from inf - inf only
      // takes the slower path), a plain comparison picks the first maximum.
      // takes(value): the lanes where value replaces the best so far.
      auto pool = [&](const auto& takes) {
        const VI offsets[3] = {right, below, diagonal};
        const V values[3] = {cell[0][1], cell[1][0], cell[1][1]};
        for (int i = 0; i < 3; ++i) {
          const auto take = takes(values[i]);
          best = hn::IfThenElse(take, values[i], best);
          index = hn::IfThenElse(hn::RebindMask(di, take), hn::Add(first, offsets[i]), index);
        }
      };
      const V sum = hn::Add(hn::Add(cell[0][0], cell[0][1]), hn::Add(cell[1][0], cell[1][1]));
      if (HWY_LIKELY(hn::AllFalse(d, hn::IsNaN(sum)))) {
        pool([&](V value) { return hn::Gt(value, best); });
      } else {
        pool([&](V value) { return hn::Or(hn::Gt(value, best), hn::AndNot(hn::IsNaN(best), hn::IsNaN(value))); });
      }
      best = hn::IfThenZeroElse(hn::Lt(best, zero), best);  // ReLU; a NaN stays a NaN
      const auto count = static_cast<size_t>(std::min(kLanes, pw_n - k));
      simd::store_first(best, d, out + ph * pw_n + k, count);
      simd::store_first(index, di, arg + ph * pw_n + k, count);
    };
    for (int64_t n = begin; n < end; ++n) {
      const Parity parity = split_columns(c, pw_n, input + n * image_size);
      for (int64_t o = 0; o < c.out_channels; ++o) {
        V w[kTaps];
        for (int t = 0; t < kTaps; ++t) w[t] = hn::Set(d, weight[o * kTaps + t]);
        const V b = hn::Set(d, bias ? bias[o] : 0.0f);
        float* out = output + (n * c.out_channels + o) * pooled;
        int32_t* arg = argmax + (n * c.out_channels + o) * pooled;
        // The plane's vectors of windows, row by row, two at a time (counted, not divided: an integer
        // division per tile cost as much as its multiply-adds).
        int64_t ph0 = 0, v0 = 0, left = windows;
        auto advance = [&](int64_t& ph, int64_t& v) {
          if (++v == row_vectors) v = 0, ++ph;
        };
        for (; left >= 2; left -= 2) {
          int64_t ph1 = ph0, v1 = v0;
          advance(ph1, v1);
          const int64_t k[2] = {v0 * kLanes, v1 * kLanes};
          const Patch patch[2] = {patch_rows(parity, ph0), patch_rows(parity, ph1)};
          V cells[2][2][2];
          window_cells<2>(patch, k, w, b, cells);
          pool_store(cells[0], ph0, k[0], out, arg);
          pool_store(cells[1], ph1, k[1], out, arg);
          ph0 = ph1, v0 = v1;
          advance(ph0, v0);
        }
        for (; left >= 1; --left) {
          const int64_t k[1] = {v0 * kLanes};
          const Patch patch[1] = {patch_rows(parity, ph0)};
          V cells[1][2][2];
          window_cells<1>(patch, k, w, b, cells);
          pool_store(cells[0], ph0, k[0], out, arg);
          advance(ph0, v0);
        }
      }
    }
  });
  return true;
}

bool conv_relu_maxpool_backward_weight_single_channel(const Conv2dShape& c, const Pool2dShape& p, const float* input,
                                                      const float* output, const int32_t* argmax,
                                                      const float* grad_output, float* grad_weight, float* grad_bias) {
  if (!fits(c, p)) return false;
  const int64_t ph_n = p.out_h(), pw_n = p.out_w(), pooled = ph_n * pw_n, conv_w = c.out_w();
  const int64_t image_size = c.in_h * c.in_w;
  const int32_t cells[2][2] = {{0, 1}, {static_cast<int32_t>(conv_w), static_cast<int32_t>(conv_w) + 1}};
  for_each_image_accumulating(c, grad_weight, grad_bias, [&](int64_t n, float* acc_weight, float* acc_bias) {
    const D d;
    const DI di;
    const V zero = hn::Zero(d);
    const VI even_cells = hn::Add(hn::Iota(di, 0), hn::Iota(di, 0));
    const Parity parity = split_columns(c, pw_n, input + n * image_size);
    for (int64_t o = 0; o < c.out_channels; ++o) {
      const int64_t plane = (n * c.out_channels + o) * pooled;
      V acc[kTaps];
      for (int t = 0; t < kTaps; ++t) acc[t] = zero;
      V bias_acc = zero;
      for (int64_t ph = 0; ph < ph_n; ++ph) {
        const Patch patch = patch_rows(parity, ph);
        for (int64_t k = 0; k < pw_n; k += kLanes) {
          const int64_t at = plane + ph * pw_n + k, count = std::min(kLanes, pw_n - k);
          // The pooled gradient through the ReLU (whose output was positive), zero past the row.
          const V y = load_first(d, output + at, count), g = load_first(d, grad_output + at, count);
          const V masked = hn::IfThenElseZero(hn::Gt(y, zero), g);
          bias_acc = hn::Add(bias_acc, masked);
          const VI arg = load_first(di, argmax + at, count);
          const VI first = hn::Add(even_cells, hn::Set(di, static_cast<int32_t>(2 * ph * conv_w + 2 * k)));
#pragma GCC unroll 2
          for (int dy = 0; dy < 2; ++dy) {
#pragma GCC unroll 2
            for (int dx = 0; dx < 2; ++dx) {
              const auto chosen = hn::Eq(arg, hn::Add(first, hn::Set(di, cells[dy][dx])));
              const V cell_grad = hn::IfThenElseZero(hn::RebindMask(d, chosen), masked);
#pragma GCC unroll 3
              for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; ++kx) acc[ky * 3 + kx] = hn::MulAdd(cell_grad, patch.at(dy + ky, dx + kx, k), acc[ky * 3 + kx]);
            }
          }
        }
      }
      for (int t = 0; t < kTaps; ++t) acc_weight[o * kTaps + t] += hn::GetLane(hn::SumOfLanes(d, acc[t]));
      if (acc_bias) acc_bias[o] += hn::GetLane(hn::SumOfLanes(d, bias_acc));
    }
  });
  return true;
}
#else
bool conv_relu_maxpool_forward_single_channel(const Conv2dShape&, const Pool2dShape&, const float*, const float*,
                                              const float*, float*, int32_t*) {
  return false;
}
bool conv_relu_maxpool_backward_weight_single_channel(const Conv2dShape&, const Pool2dShape&, const float*,
                                                      const float*, const int32_t*, const float*, float*, float*) {
  return false;
}
#endif

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
