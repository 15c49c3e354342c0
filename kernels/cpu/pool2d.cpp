// Pooling, planes spread over threads. Max pooling's 2x2/stride-2 case (every CNN's) has its own loop.
// A NaN in a window wins its maximum, as in PyTorch, so it is not silently dropped.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/parallel.h"

namespace horo::kernels::cpu {
namespace {

void maxpool_plane_2x2(const Pool2dShape& s, const float* in, float* out, int32_t* arg) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const float* r0 = in + 2 * oh * s.in_w;
    const float* r1 = r0 + s.in_w;
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t c = 2 * ow;
      int32_t best = static_cast<int32_t>(2 * oh * s.in_w + c);
      float v = r0[c];
      if (r0[c + 1] > v || std::isnan(r0[c + 1])) { v = r0[c + 1]; best = static_cast<int32_t>(2 * oh * s.in_w + c + 1); }
      if (r1[c] > v || std::isnan(r1[c])) { v = r1[c]; best = static_cast<int32_t>((2 * oh + 1) * s.in_w + c); }
      if (r1[c + 1] > v || std::isnan(r1[c + 1])) { v = r1[c + 1]; best = static_cast<int32_t>((2 * oh + 1) * s.in_w + c + 1); }
      out[oh * ow_n + ow] = v;
      arg[oh * ow_n + ow] = best;
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
