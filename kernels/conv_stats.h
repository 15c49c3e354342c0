// A convolution that also returns the per-channel statistics of its output, for the BatchNorm that
// follows it in training: the sums are taken while each output tile is still in registers, so the
// BatchNorm needs no pass of its own over the activations to find its batch's mean and variance.
// CPU only (the direct 3x3 stride-1 kernels); elsewhere the convolution and the statistics run apart.
#pragma once

#include <cstdint>

#include "kernels/conv2d.h"

namespace horo::kernels::cpu {

// output = conv(input, weight) + bias, and mean[c], var[c] (biased) of output channel c over the batch
// and the plane. `shift` (per channel, e.g. the running mean) is subtracted before squaring so the
// variance keeps its digits; the sums run in float within an image and in double across images.
// Returns false, doing nothing, for a shape the direct kernels do not handle.
bool conv2d_forward_stats(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                          const float* shift, float* output, float* mean, float* var);

}  // namespace horo::kernels::cpu
