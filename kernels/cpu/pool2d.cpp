// Pooling, planes spread over threads. Max pooling's 2x2/stride-2 case (every CNN's) has its own loop.
// A NaN in a window wins its maximum, as in PyTorch, so it is not silently dropped.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/parallel.h"

namespace horo::kernels::cpu {
namespace {

// Branch-free selects (the window's values are data, so branches would mispredict half the time);
// a NaN anywhere in the window becomes the output.
void maxpool_plane_2x2(const Pool2dShape& s, const float* in, float* out, int32_t* arg) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w(), w = s.in_w;
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const float* r0 = in + 2 * oh * w;
    const float* r1 = r0 + w;
    const int32_t base = static_cast<int32_t>(2 * oh * w);
    float* o = out + oh * ow_n;
    int32_t* a = arg + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t c = 2 * ow;
      const float v0 = r0[c], v1 = r0[c + 1], v2 = r1[c], v3 = r1[c + 1];
      const bool top_right = v1 > v0;
      const float top = top_right ? v1 : v0;
      const int32_t top_i = base + static_cast<int32_t>(c) + (top_right ? 1 : 0);
      const bool bottom_right = v3 > v2;
      const float bottom = bottom_right ? v3 : v2;
      const int32_t bottom_i = base + static_cast<int32_t>(w + c) + (bottom_right ? 1 : 0);
      const bool lower = bottom > top;
      const bool any_nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3);
      o[ow] = any_nan ? std::numeric_limits<float>::quiet_NaN() : (lower ? bottom : top);
      a[ow] = lower ? bottom_i : top_i;
    }
  }
}

void maxpool_plane(const Pool2dShape& s, const float* in, float* out, int32_t* arg) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
    const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.in_h);
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
      const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.in_w);
      float v = -std::numeric_limits<float>::infinity();
      int64_t best = h0 * s.in_w + w0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w)
          if (in[h * s.in_w + w] > v || std::isnan(in[h * s.in_w + w])) { v = in[h * s.in_w + w]; best = h * s.in_w + w; }
      out[oh * ow_n + ow] = v;
      arg[oh * ow_n + ow] = static_cast<int32_t>(best);
    }
  }
}

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  const bool two_by_two = s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 &&
                          s.pad_h == 0 && s.pad_w == 0;
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      if (two_by_two) maxpool_plane_2x2(s, input + p * in_plane, output + p * out_plane, argmax + p * out_plane);
      else maxpool_plane(s, input + p * in_plane, output + p * out_plane, argmax + p * out_plane);
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
  const int64_t in_plane = s.in_h * s.in_w, oh_n = s.out_h(), ow_n = s.out_w();
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* in = input + p * in_plane;
      float* out = output + p * oh_n * ow_n;
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
        const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.in_h);
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
          const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.in_w);
          float acc = 0.0f;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) acc += in[h * s.in_w + w];
          out[oh * ow_n + ow] = acc * inv_area;
        }
      }
    }
  });
}

void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, oh_n = s.out_h(), ow_n = s.out_w();
  const float inv_area = 1.0f / static_cast<float>(s.kernel_h * s.kernel_w);
  parallel_for(s.planes, 4, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* gi = grad_input + p * in_plane;
      std::fill(gi, gi + in_plane, 0.0f);
      const float* go = grad_output + p * oh_n * ow_n;
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
        const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.in_h);
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
          const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.in_w);
          const float g = go[oh * ow_n + ow] * inv_area;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) gi[h * s.in_w + w] += g;
        }
      }
    }
  });
}

}  // namespace horo::kernels::cpu
