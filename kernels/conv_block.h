// Conv2d + bias + ReLU + max pooling as one step, the block most CNNs are built from. Done one
// image at a time, the convolution's output never leaves the cache, ReLU runs on the pooled
// output (max and ReLU commute: relu(max(a)) = max(relu(a))), and backward needs only the pooled
// output and the argmax, not the convolution's output. Values and gradients equal those of the
// three ops in sequence, ties and NaN included. CPU only; nn falls back to the separate ops elsewhere.
#pragma once

#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/pool2d.h"

namespace horo::kernels::cpu {

// conv: the convolution over the batch; pool: the pooling over its output (planes = batch *
// out_channels). output and argmax are the pooled tensor's [batch, out_channels, ph, pw].
void conv_relu_maxpool_forward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                               const float* weight, const float* bias, float* output, int32_t* argmax);

// From the forward's input, output and argmax and the gradient of its output: grad_input,
// grad_weight and grad_bias, each overwritten and each skipped when null.
void conv_relu_maxpool_backward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                                const float* weight, const float* output, const int32_t* argmax,
                                const float* grad_output, float* grad_input, float* grad_weight, float* grad_bias);

}  // namespace horo::kernels::cpu
