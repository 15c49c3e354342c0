// 2-D convolution, NCHW activations and OIHW weights as in PyTorch (no groups).
#pragma once

#include <cstdint>

namespace horo::kernels {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;

  int64_t out_h() const { return (in_h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
};

namespace cpu {
// output = conv(input, weight) + bias; bias may be null.
void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output);
// grad_input = conv_transpose(grad_output, weight); overwrites grad_input.
void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input);
// grad_weight (and grad_bias when not null) from input and grad_output; overwrites both.
void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output);
void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input);
void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias);
}  // namespace cuda

namespace ref {
void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output);
void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input);
void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias);
}  // namespace ref

}  // namespace horo::kernels
