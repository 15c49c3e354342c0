// Adaptive average pooling over NCHW planes (torch.nn.AdaptiveAvgPool2d): output cell (i, j) averages
// input rows [floor(i * in_h / out_h), ceil((i + 1) * in_h / out_h)) and the same for columns, so any
// input size maps onto the requested output size; 1x1 is global average pooling.
#pragma once

#include <cstdint>

namespace horo::kernels {

struct AdaptivePool2dShape {
  int64_t planes = 1;  // batch * channels
  int64_t in_h = 1, in_w = 1, out_h = 1, out_w = 1;
};

// The window [begin, end) of output index i along an axis of `in` cells split into `out` windows.
inline constexpr int64_t adaptive_begin(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline constexpr int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

namespace cpu {
void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output);
// Overwrites grad_input.
void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output);
void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace cuda

namespace ref {
void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output);
void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input);
}  // namespace ref

}  // namespace horo::kernels
