// Max and average 2-D pooling over NCHW planes (PyTorch semantics: floor output size, average
// pooling counts padded cells, max pooling ignores them).
#pragma once

#include <cstdint>

namespace horo::kernels {

struct Pool2dShape {
  int64_t planes = 1;  // batch * channels
  int64_t in_h = 1, in_w = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;

  int64_t out_h() const { return (in_h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

namespace cpu {
// argmax receives, per output cell, the index of the chosen cell within its input plane.
void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax);
void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax,
                        float* grad_input);  // overwrites grad_input
void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output);
void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax);
void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax, float* grad_input);
void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output);
void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace cuda

namespace ref {
void maxpool2d_forward(const Pool2dShape& s, const float* input, float* output, int32_t* argmax);
void maxpool2d_backward(const Pool2dShape& s, const float* grad_output, const int32_t* argmax,
                        float* grad_input);
void avgpool2d_forward(const Pool2dShape& s, const float* input, float* output);
void avgpool2d_backward(const Pool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace ref

}  // namespace horo::kernels
