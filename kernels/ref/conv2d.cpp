// Direct convolution loops: slow and obviously right, the oracle for the optimised kernels.
#include "kernels/conv2d.h"

#include <cstddef>
#include <vector>

namespace horo::kernels::ref {
namespace {

// Calls visit(n, o, c, oh, ow, ki, kj, input_index, output_index, weight_index) for every product
// term of the convolution whose input cell lies inside the image.
template <typename Visit>
void for_each_term(const Conv2dShape& s, const Visit& visit) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < s.out_channels; ++o)
      for (int64_t oh = 0; oh < oh_n; ++oh)
        for (int64_t ow = 0; ow < ow_n; ++ow)
          for (int64_t c = 0; c < s.in_channels; ++c)
            for (int64_t ki = 0; ki < s.kernel_h; ++ki)
              for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
                const int64_t ih = oh * s.stride_h - s.pad_h + ki * s.dilation_h;
                const int64_t iw = ow * s.stride_w - s.pad_w + kj * s.dilation_w;
                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                visit(((n * s.in_channels + c) * s.in_h + ih) * s.in_w + iw,
                      ((n * s.out_channels + o) * oh_n + oh) * ow_n + ow,
                      ((o * s.in_channels + c) * s.kernel_h + ki) * s.kernel_w + kj);
              }
}

int64_t output_size(const Conv2dShape& s) { return s.batch * s.out_channels * s.out_h() * s.out_w(); }

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output) {
  std::vector<double> acc(static_cast<size_t>(output_size(s)), 0.0);
  for_each_term(s, [&](int64_t in, int64_t out, int64_t w) { acc[out] += static_cast<double>(input[in]) * weight[w]; });
  const int64_t spatial = s.out_h() * s.out_w();
  for (int64_t i = 0; i < output_size(s); ++i) {
    output[i] = static_cast<float>(acc[i] + (bias ? bias[(i / spatial) % s.out_channels] : 0.0f));
  }
}

void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input) {
  const int64_t in_size = s.batch * s.in_channels * s.in_h * s.in_w;
  std::vector<double> acc(static_cast<size_t>(in_size), 0.0);
  for_each_term(s, [&](int64_t in, int64_t out, int64_t w) { acc[in] += static_cast<double>(grad_output[out]) * weight[w]; });
  for (int64_t i = 0; i < in_size; ++i) grad_input[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias) {
  const int64_t w_size = s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
  std::vector<double> acc(static_cast<size_t>(w_size), 0.0);
  for_each_term(s, [&](int64_t in, int64_t out, int64_t w) { acc[w] += static_cast<double>(grad_output[out]) * input[in]; });
  for (int64_t i = 0; i < w_size; ++i) grad_weight[i] = static_cast<float>(acc[i]);
  if (grad_bias) {
    const int64_t spatial = s.out_h() * s.out_w();
    std::vector<double> b(static_cast<size_t>(s.out_channels), 0.0);
    for (int64_t i = 0; i < output_size(s); ++i) b[(i / spatial) % s.out_channels] += grad_output[i];
    for (int64_t o = 0; o < s.out_channels; ++o) grad_bias[o] = static_cast<float>(b[o]);
  }
}

}  // namespace horo::kernels::ref
