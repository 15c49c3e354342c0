// Convolutions through cuDNN (kernels/cuda/cudnn_conv.cu, built with HORO_CUDNN), or, in a build
// without it, functions that decline (kernels/cuda/cudnn_conv_unavailable.cu). Each returns false,
// having done nothing, where cuDNN is not used (not built, or switched off with
// kernels::cuda::set_cudnn(false) / HORO_CUDNN=0), and the caller runs the im2col path instead.
#pragma once

#include "kernels/conv2d.h"

namespace horo::kernels::cuda {

bool cudnn_conv_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output);
bool cudnn_conv_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input);
bool cudnn_conv_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                                float* grad_bias);

}  // namespace horo::kernels::cuda
