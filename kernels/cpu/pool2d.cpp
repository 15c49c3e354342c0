// Pooling, planes spread over threads. Max pooling's 2x2/stride-2 case (every CNN's) has its own loop.
// A NaN in a window wins its maximum, as in PyTorch, so it is not silently dropped.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/parallel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace horo::kernels::cpu {
namespace {

// 2x2 / stride 2 max pooling in two passes over a run of planes, both of which vectorise:
//  1. each pair of input rows -> the larger value of each column and the index of its cell;
//  2. each pair of adjacent columns of that -> the output and its argmax. With an even input width,
//     the pairs of pass 2 tile the whole buffer, so it is one long stride-2 loop across rows and
//     planes (W1's 13-wide rows are too short to vectorise one at a time).
// Ties go to the first cell in row-major order and a NaN anywhere in a window wins, as in PyTorch.
inline void vertical_pass(const float* r0, const float* r1, int32_t row0, int32_t w, int64_t width, float* cm,
                          int32_t* ci) {
  for (int64_t j = 0; j < width; ++j) {
    const float a = r0[j], b = r1[j];
    const bool take_b = (b > a) | ((b != b) & (a == a));  // bitwise: no branches in the loop
    cm[j] = take_b ? b : a;
    ci[j] = row0 + static_cast<int32_t>(j) + (take_b ? w : 0);
  }
}

inline void horizontal_pair(const float* cm, const int32_t* ci, int64_t k, float* out, int32_t* arg) {
  const float left = cm[2 * k], right = cm[2 * k + 1];
  const int32_t left_i = ci[2 * k], right_i = ci[2 * k + 1];
  const bool take_right = ((right > left) | (right != right) | ((right == left) & (right_i < left_i))) & (left == left);
  out[k] = take_right ? right : left;
  arg[k] = take_right ? right_i : left_i;
}

// Pass 2 for `count` outputs; returns how many it did (a multiple of 16), the caller does the rest.
int64_t horizontal_pass_simd(const float* cm, const int32_t* ci, int64_t count, float* out, int32_t* arg) {
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  int64_t k = 0;
  for (; k + 16 <= count; k += 16) {
    const __m512 m0 = _mm512_loadu_ps(cm + 2 * k), m1 = _mm512_loadu_ps(cm + 2 * k + 16);
    const __m512i i0 = _mm512_loadu_si512(ci + 2 * k), i1 = _mm512_loadu_si512(ci + 2 * k + 16);
    const __m512 left = _mm512_permutex2var_ps(m0, even, m1), right = _mm512_permutex2var_ps(m0, odd, m1);
    const __m512i left_i = _mm512_permutex2var_epi32(i0, even, i1), right_i = _mm512_permutex2var_epi32(i0, odd, i1);
    const __mmask16 left_ok = _mm512_cmp_ps_mask(left, left, _CMP_ORD_Q);
    const __mmask16 take_right = (_mm512_cmp_ps_mask(right, left, _CMP_GT_OQ) |
                                  _mm512_cmp_ps_mask(right, right, _CMP_UNORD_Q) |
                                  (_mm512_cmp_ps_mask(right, left, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(right_i, left_i))) &
                                 left_ok;
    _mm512_storeu_ps(out + k, _mm512_mask_blend_ps(take_right, left, right));
    _mm512_storeu_si512(arg + k, _mm512_mask_blend_epi32(take_right, left_i, right_i));
  }
  return k;
#else
  (void)cm, (void)ci, (void)count, (void)out, (void)arg;
  return 0;
#endif
}

thread_local std::vector<float> t_column_max;
thread_local std::vector<int32_t> t_column_arg;

void maxpool_planes_2x2(const Pool2dShape& s, int64_t planes, const float* in, float* out, int32_t* arg) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), plane = s.in_h * s.in_w;
  const int32_t w = static_cast<int32_t>(s.in_w);
  const bool tiled = s.in_w == 2 * ow_n;
  // With a tiled width all rows of all planes go through one buffer; otherwise one row at a time.
  const int64_t rows_per_pass = tiled ? planes * oh_n : 1;
  const size_t buffer = static_cast<size_t>(rows_per_pass * 2 * ow_n);
  if (t_column_max.size() < buffer) {
    t_column_max.resize(buffer);
    t_column_arg.resize(buffer);
  }
  float* cm = t_column_max.data();
  int32_t* ci = t_column_arg.data();
  auto finish = [&](int64_t count, float* o, int32_t* a) {
    for (int64_t k = horizontal_pass_simd(cm, ci, count, o, a); k < count; ++k) horizontal_pair(cm, ci, k, o, a);
  };
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < oh_n; ++oh) {
      const float* r0 = in + p * plane + 2 * oh * w;
      const int64_t row = tiled ? p * oh_n + oh : 0;
      vertical_pass(r0, r0 + w, static_cast<int32_t>(2 * oh * w), w, 2 * ow_n, cm + row * 2 * ow_n, ci + row * 2 * ow_n);
      if (!tiled) finish(ow_n, out + (p * oh_n + oh) * ow_n, arg + (p * oh_n + oh) * ow_n);
    }
  }
  if (tiled) finish(planes * oh_n * ow_n, out, arg);
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
  const bool two_by_two = s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 &&
                          s.pad_h == 0 && s.pad_w == 0;
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
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
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

}  // namespace horo::kernels::cpu
