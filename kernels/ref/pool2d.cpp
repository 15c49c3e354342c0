// Pooling by definition: every output cell visits its whole window, padded cells included.
#include "kernels/pool2d.h"

#include <limits>

namespace horo::kernels::ref {
namespace {

// Calls visit(plane, out_index, in_index_or_-1) for every window cell of every output cell;
// in_index is -1 for a padded cell.
template <typename Visit>
void for_each_window_cell(const Pool2dShape& s, const Visit& visit) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < oh_n; ++oh)
      for (int64_t ow = 0; ow < ow_n; ++ow)
        for (int64_t ki = 0; ki < s.kernel_h; ++ki)
          for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
            const int64_t h = oh * s.stride_h - s.pad_h + ki, w = ow * s.stride_w - s.pad_w + kj;
            const bool inside = h >= 0 && h < s.in_h && w >= 0 && w < s.in_w;
            visit(p, (p * oh_n + oh) * ow_n + ow, inside ? h * s.in_w + w : -1);
          }
}

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax) {
  const int64_t outputs = s.planes * s.out_h() * s.out_w();
  for (int64_t i = 0; i < outputs; ++i) { output[i] = -std::numeric_limits<float>::infinity(); argmax[i] = -1; }
  for_each_window_cell(s, [&](int64_t p, int64_t out, int64_t in) {
    if (in < 0) return;
    const float v = input[p * s.in_h * s.in_w + in];
    if (argmax[out] < 0 || v > output[out]) { output[out] = v; argmax[out] = static_cast<int32_t>(in); }
  });
}

void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax,
                        float* grad_input) {
  const int64_t plane = s.in_h * s.in_w, out_plane = s.out_h() * s.out_w();
  for (int64_t i = 0; i < s.planes * plane; ++i) grad_input[i] = 0.0f;
  for (int64_t i = 0; i < s.planes * out_plane; ++i) grad_input[(i / out_plane) * plane + argmax[i]] += grad_output[i];
}

void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output) {
  const int64_t outputs = s.planes * s.out_h() * s.out_w();
  for (int64_t i = 0; i < outputs; ++i) output[i] = 0.0f;
  const double area = static_cast<double>(s.kernel_h * s.kernel_w);
  for_each_window_cell(s, [&](int64_t p, int64_t out, int64_t in) {
    if (in >= 0) output[out] += static_cast<float>(input[p * s.in_h * s.in_w + in] / area);
  });
}

void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input) {
  const int64_t plane = s.in_h * s.in_w;
  for (int64_t i = 0; i < s.planes * plane; ++i) grad_input[i] = 0.0f;
  const double area = static_cast<double>(s.kernel_h * s.kernel_w);
  for_each_window_cell(s, [&](int64_t p, int64_t out, int64_t in) {
    if (in >= 0) grad_input[p * plane + in] += static_cast<float>(grad_output[out] / area);
  });
}

}  // namespace horo::kernels::ref
