// Pooling, planes spread over threads. Max pooling's 2x2/stride-2 case (every CNN's) has its own
// vector loops, one output row per step, that read the input and write the output once each.
// A NaN in a window wins its maximum, as in PyTorch, so it is not silently dropped.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/pool2d.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

bool is_two_by_two(const Pool2dShape& s) {
  return s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 && s.pad_h == 0 && s.pad_w == 0;
}

// One output row of 2x2/stride-2 max pooling from the input rows r0 and r1 = r0 + w; the argmax is
// the cell's index within its plane (row0 = index of r0[0]). A vector of outputs at a time: its two
// input vectors per row split into even and odd columns, the four cells of each window compared in
// row-major order. Ties go to the first cell, and a NaN anywhere in a window wins (the first NaN),
// as in the plain loop below and in PyTorch. The last, partial vector is a masked one on AVX2 and
// AVX-512, and goes through a small buffer elsewhere.
#if HWY_TARGET != HWY_SCALAR
constexpr bool kHaveTwoByTwoSimd = true;
namespace hn = hwy::HWY_NAMESPACE;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

void maxpool_row_2x2(const float* r0, int32_t row0, int32_t w, int64_t ow_n, float* out, int32_t* arg) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  const float* r1 = r0 + w;
  const auto even = hn::Add(hn::Iota(di, 0), hn::Iota(di, 0));  // 0, 2, 4, ...
  HWY_ALIGN float buffer[4 * kMaxLanes];
  HWY_ALIGN int32_t index_buffer[kMaxLanes];
  for (int64_t k = 0; k < ow_n; k += n) {
    const int64_t count = std::min(n, ow_n - k);
    hn::Vec<decltype(d)> a_lo, a_hi, b_lo, b_hi;
    if (count == n) {
      a_lo = hn::LoadU(d, r0 + 2 * k), a_hi = hn::LoadU(d, r0 + 2 * k + n);
      b_lo = hn::LoadU(d, r1 + 2 * k), b_hi = hn::LoadU(d, r1 + 2 * k + n);
    } else {
#if HORO_TARGET_MASKED_MEMORY
      const auto lo = hn::FirstN(d, static_cast<size_t>(std::min(n, 2 * count)));
      const auto hi = hn::FirstN(d, static_cast<size_t>(std::max<int64_t>(0, 2 * count - n)));
      a_lo = hn::MaskedLoad(lo, d, r0 + 2 * k), a_hi = hn::MaskedLoad(hi, d, r0 + 2 * k + n);
      b_lo = hn::MaskedLoad(lo, d, r1 + 2 * k), b_hi = hn::MaskedLoad(hi, d, r1 + 2 * k + n);
#else
      std::fill(buffer, buffer + 4 * n, 0.0f);
      std::copy(r0 + 2 * k, r0 + 2 * k + 2 * count, buffer);
      std::copy(r1 + 2 * k, r1 + 2 * k + 2 * count, buffer + 2 * n);
      a_lo = hn::Load(d, buffer), a_hi = hn::Load(d, buffer + n);
      b_lo = hn::Load(d, buffer + 2 * n), b_hi = hn::Load(d, buffer + 3 * n);
#endif
    }
    const auto top_left = hn::Add(even, hn::Set(di, row0 + static_cast<int32_t>(2 * k)));
    auto best = hn::ConcatEven(d, a_hi, a_lo);
    auto index = top_left;
    auto consider = [&](hn::Vec<decltype(d)> value, int32_t offset) {
      const auto take = hn::Or(value > best, hn::AndNot(hn::IsNaN(best), hn::IsNaN(value)));
      best = hn::IfThenElse(take, value, best);
      index = hn::IfThenElse(hn::RebindMask(di, take), hn::Add(top_left, hn::Set(di, offset)), index);
    };
    consider(hn::ConcatOdd(d, a_hi, a_lo), 1);
    consider(hn::ConcatEven(d, b_hi, b_lo), w);
    consider(hn::ConcatOdd(d, b_hi, b_lo), w + 1);
    if (count == n) {
      hn::StoreU(best, d, out + k);
      hn::StoreU(index, di, arg + k);
    } else {
#if HORO_TARGET_MASKED_MEMORY
      simd::store_first(best, d, out + k, static_cast<size_t>(count));
      simd::store_first(index, di, arg + k, static_cast<size_t>(count));
#else
      hn::Store(best, d, buffer);
      hn::Store(index, di, index_buffer);
      std::copy(buffer, buffer + count, out + k);
      std::copy(index_buffer, index_buffer + count, arg + k);
#endif
    }
  }
}

// The gradient of one output row into its two input rows (columns [0, 2*ow_n) of each; the caller
// zeroes an odd last column). Each output's gradient goes to the cell its argmax names; the other
// three cells of its window get zero.
void maxpool_backward_row_2x2(const float* grad, const int32_t* arg, int32_t row0, int32_t w, int64_t ow_n,
                              float* g0) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  float* g1 = g0 + w;
  const auto even = hn::Add(hn::Iota(di, 0), hn::Iota(di, 0));
  HWY_ALIGN float buffer[4 * kMaxLanes];
  for (int64_t k = 0; k < ow_n; k += n) {
    const int64_t count = std::min(n, ow_n - k);
    const bool full = count == n;
    hn::Vec<decltype(d)> g;
    hn::Vec<decltype(di)> arg_k;
    if (full) {
      g = hn::LoadU(d, grad + k), arg_k = hn::LoadU(di, arg + k);
    } else {
#if HORO_TARGET_MASKED_MEMORY
      g = hn::MaskedLoad(hn::FirstN(d, static_cast<size_t>(count)), d, grad + k);
      arg_k = hn::MaskedLoad(hn::FirstN(di, static_cast<size_t>(count)), di, arg + k);
#else
      HWY_ALIGN int32_t arg_buffer[kMaxLanes] = {};
      std::fill(buffer, buffer + n, 0.0f);
      std::copy(grad + k, grad + k + count, buffer);
      std::copy(arg + k, arg + k + count, arg_buffer);
      g = hn::Load(d, buffer), arg_k = hn::Load(di, arg_buffer);
#endif
    }
    const auto where = hn::Sub(arg_k, hn::Add(even, hn::Set(di, row0 + static_cast<int32_t>(2 * k))));
    auto at = [&](int32_t offset) { return hn::IfThenElseZero(hn::RebindMask(d, hn::Eq(where, hn::Set(di, offset))), g); };
    if (full) {
      hn::StoreInterleaved2(at(0), at(1), d, g0 + 2 * k);
      hn::StoreInterleaved2(at(w), at(w + 1), d, g1 + 2 * k);
      continue;
    }
    // The partial last vector: interleaved into the buffer, then its 2 * count cells of each row.
    hn::StoreInterleaved2(at(0), at(1), d, buffer);
    hn::StoreInterleaved2(at(w), at(w + 1), d, buffer + 2 * n);
#if HORO_TARGET_MASKED_MEMORY
    const auto lo = static_cast<size_t>(std::min(n, 2 * count));
    const auto hi = static_cast<size_t>(std::max<int64_t>(0, 2 * count - n));
    for (int row = 0; row < 2; ++row) {
      float* dst = (row == 0 ? g0 : g1) + 2 * k;
      simd::store_first(hn::Load(d, buffer + 2 * n * row), d, dst, lo);
      if (hi > 0) simd::store_first(hn::Load(d, buffer + 2 * n * row + n), d, dst + n, hi);
    }
#else
    std::copy(buffer, buffer + 2 * count, g0 + 2 * k);
    std::copy(buffer + 2 * n, buffer + 2 * n + 2 * count, g1 + 2 * k);
#endif
  }
}
#else
constexpr bool kHaveTwoByTwoSimd = false;
void maxpool_row_2x2(const float*, int32_t, int32_t, int64_t, float*, int32_t*) {}
void maxpool_backward_row_2x2(const float*, const int32_t*, int32_t, int32_t, int64_t, float*) {}
#endif

void maxpool_planes_2x2(const Pool2dShape& s, int64_t planes, const float* in, float* out, int32_t* arg) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = s.in_h * s.in_w;
  const int32_t w = static_cast<int32_t>(s.in_w);
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const int64_t o = (p * oh_n + oh) * ow_n;
      maxpool_row_2x2(in + p * plane + 2 * oh * w, static_cast<int32_t>(2 * oh * w), w, ow_n, out + o, arg + o);
    }
  }
}

void maxpool_backward_planes_2x2(const Pool2dShape& s, int64_t planes, const float* grad_output,
                                 const int32_t* argmax, float* grad_input) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = s.in_h * s.in_w;
  const int32_t w = static_cast<int32_t>(s.in_w);
  for (int64_t p = 0; p < planes; ++p) {
    float* gi = grad_input + p * plane;
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const int64_t o = (p * oh_n + oh) * ow_n;
      float* g0 = gi + 2 * oh * w;
      maxpool_backward_row_2x2(grad_output + o, argmax + o, static_cast<int32_t>(2 * oh * w), w, ow_n, g0);
      if (s.in_w > 2 * ow_n) g0[s.in_w - 1] = g0[w + s.in_w - 1] = 0.0f;  // the odd last column
    }
    std::fill(gi + 2 * oh_n * w, gi + plane, 0.0f);  // an odd last row
  }
}

// Calls visit(out_index, h0, h1, w0, w1) for each output cell of a plane with the rows [h0, h1) and
// columns [w0, w1) of its window that lie inside the image.
template <typename Visit>
void for_each_window(const Pool2dShape& s, const Visit& visit) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
    const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.in_h);
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
      const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.in_w);
      visit(oh * ow_n + ow, h0, h1, w0, w1);
    }
  }
}

void maxpool_plane(const Pool2dShape& s, const float* in, float* out, int32_t* arg) {
  for_each_window(s, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    float v = -std::numeric_limits<float>::infinity();
    int64_t best = h0 * s.in_w + w0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const float x = in[h * s.in_w + w];
        if (x > v || (std::isnan(x) && !std::isnan(v))) { v = x; best = h * s.in_w + w; }
      }
    out[o] = v;
    arg[o] = static_cast<int32_t>(best);
  });
}

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  const bool two_by_two = kHaveTwoByTwoSimd && is_two_by_two(s);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    if (two_by_two) {
      maxpool_planes_2x2(s, end - begin, input + begin * in_plane, output + begin * out_plane, argmax + begin * out_plane);
      return;
    }
    for (int64_t p = begin; p < end; ++p) {
      maxpool_plane(s, input + p * in_plane, output + p * out_plane, argmax + p * out_plane);
    }
  });
}

void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax,
                        float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  const bool two_by_two = kHaveTwoByTwoSimd && is_two_by_two(s);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    if (two_by_two) {
      maxpool_backward_planes_2x2(s, end - begin, grad_output + begin * out_plane, argmax + begin * out_plane,
                                  grad_input + begin * in_plane);
      return;
    }
    for (int64_t p = begin; p < end; ++p) {
      float* gi = grad_input + p * in_plane;
      std::fill(gi, gi + in_plane, 0.0f);
      const float* go = grad_output + p * out_plane;
      const int32_t* arg = argmax + p * out_plane;
      for (int64_t i = 0; i < out_plane; ++i) gi[arg[i]] += go[i];
    }
  });
}

void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* in = input + p * in_plane;
      float* out = output + p * out_plane;
      for_each_window(s, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
        float acc = 0.0f;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) acc += in[h * s.in_w + w];
        out[o] = acc * inv_area;
      });
    }
  });
}

void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* gi = grad_input + p * in_plane;
      std::fill(gi, gi + in_plane, 0.0f);
      const float* go = grad_output + p * out_plane;
      for_each_window(s, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
        const float g = go[o] * inv_area;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) gi[h * s.in_w + w] += g;
      });
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(maxpool2d_forward);
void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) { HORO_CPU_DISPATCH(maxpool2d_forward)(s, input, output, argmax); }

HWY_EXPORT(maxpool2d_backward);
void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax, float* grad_input) { HORO_CPU_DISPATCH(maxpool2d_backward)(s, grad_output, argmax, grad_input); }

HWY_EXPORT(avgpool2d_forward);
void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output) { HORO_CPU_DISPATCH(avgpool2d_forward)(s, input, output); }

HWY_EXPORT(avgpool2d_backward);
void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) { HORO_CPU_DISPATCH(avgpool2d_backward)(s, grad_output, grad_input); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
