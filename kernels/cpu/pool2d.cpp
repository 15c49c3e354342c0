// Pooling, planes spread over threads. Max pooling's 2x2/stride-2 case (every CNN's) has its own
// AVX-512 loops, one output row per step, that read the input and write the output once each.
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

#if HORO_TARGET_AVX512
constexpr bool kHaveTwoByTwoSimd = true;

// One output row of 2x2/stride-2 max pooling from the input rows r0 and r1 = r0 + w; the argmax is
// the cell's index within its plane (row0 = index of r0[0]). Ties go to the first cell in row-major
// order, and a NaN anywhere in a window wins, as in PyTorch.
void maxpool_row_2x2(const float* r0, int32_t row0, int32_t w, int64_t ow_n, float* out, int32_t* arg) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_slli_epi32(iota, 1), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i down = _mm512_set1_epi32(w);
  const float* r1 = r0 + w;
  for (int64_t k = 0; k < ow_n; k += 16) {
    const int64_t count = std::min<int64_t>(16, ow_n - k);
    const __mmask16 lo = simd::tail_mask(2 * count), hi = simd::tail_mask(std::max<int64_t>(0, 2 * count - 16));
    // Vertical step: the larger of each column's two cells, and that cell's index.
    auto column = [&](__mmask16 mask, int64_t offset, __m512& best, __m512i& index) {
      const __m512 a = _mm512_maskz_loadu_ps(mask, r0 + 2 * k + offset);
      const __m512 b = _mm512_maskz_loadu_ps(mask, r1 + 2 * k + offset);
      const __mmask16 take_b = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) |
                               (_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q));
      best = _mm512_mask_blend_ps(take_b, a, b);
      const __m512i top = _mm512_add_epi32(iota, _mm512_set1_epi32(row0 + static_cast<int32_t>(2 * k + offset)));
      index = _mm512_mask_add_epi32(top, take_b, top, down);
    };
    __m512 m0, m1;
    __m512i i0, i1;
    column(lo, 0, m0, i0);
    column(hi, 16, m1, i1);
    // Horizontal step: each pair of adjacent columns.
    const __m512 left = _mm512_permutex2var_ps(m0, even, m1), right = _mm512_permutex2var_ps(m0, odd, m1);
    const __m512i left_i = _mm512_permutex2var_epi32(i0, even, i1), right_i = _mm512_permutex2var_epi32(i0, odd, i1);
    const __mmask16 take_right = (_mm512_cmp_ps_mask(right, left, _CMP_GT_OQ) |
                                  _mm512_cmp_ps_mask(right, right, _CMP_UNORD_Q) |
                                  (_mm512_cmp_ps_mask(right, left, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(right_i, left_i))) &
                                 _mm512_cmp_ps_mask(left, left, _CMP_ORD_Q);
    const __mmask16 store = simd::tail_mask(count);
    _mm512_mask_storeu_ps(out + k, store, _mm512_mask_blend_ps(take_right, left, right));
    _mm512_mask_storeu_epi32(arg + k, store, _mm512_mask_blend_epi32(take_right, left_i, right_i));
  }
}

// The gradient of one output row into its two input rows (columns [0, 2*ow_n) of each; the caller
// zeroes an odd last column). Each output's gradient goes to the cell its argmax names.
void maxpool_backward_row_2x2(const float* grad, const int32_t* arg, int32_t row0, int32_t w, int64_t ow_n,
                              float* g0) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i interleave_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i interleave_hi = _mm512_add_epi32(interleave_lo, _mm512_set1_epi32(8));
  const __m512i one = _mm512_set1_epi32(1), down = _mm512_set1_epi32(w), down_one = _mm512_set1_epi32(w + 1);
  float* g1 = g0 + w;
  for (int64_t k = 0; k < ow_n; k += 16) {
    const int64_t count = std::min<int64_t>(16, ow_n - k);
    const __mmask16 in = simd::tail_mask(count);
    const __mmask16 lo = simd::tail_mask(2 * count), hi = simd::tail_mask(std::max<int64_t>(0, 2 * count - 16));
    const __m512 g = _mm512_maskz_loadu_ps(in, grad + k);
    const __m512i top_left = _mm512_add_epi32(_mm512_slli_epi32(iota, 1), _mm512_set1_epi32(row0 + static_cast<int32_t>(2 * k)));
    const __m512i where = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(in, arg + k), top_left);
    const __m512 tl = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(where, _mm512_setzero_si512()), g);
    const __m512 tr = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(where, one), g);
    const __m512 bl = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(where, down), g);
    const __m512 br = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(where, down_one), g);
    _mm512_mask_storeu_ps(g0 + 2 * k, lo, _mm512_permutex2var_ps(tl, interleave_lo, tr));
    _mm512_mask_storeu_ps(g0 + 2 * k + 16, hi, _mm512_permutex2var_ps(tl, interleave_hi, tr));
    _mm512_mask_storeu_ps(g1 + 2 * k, lo, _mm512_permutex2var_ps(bl, interleave_lo, br));
    _mm512_mask_storeu_ps(g1 + 2 * k + 16, hi, _mm512_permutex2var_ps(bl, interleave_hi, br));
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
