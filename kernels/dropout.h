// Dropout: element i keeps its value, scaled by 1/(1-p), when Philox uniform (seed, offset + i) < 1-p.
// The mask is a pure function of (seed, offset, i), so every device and thread count draws the same.
#pragma once

#include <cstdint>

namespace horo::kernels {

namespace cpu {
// Writes the scale per element (0 or 1/(1-p)) to mask and x * mask to y.
void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y);
}  // namespace cuda

namespace ref {
void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y);
}  // namespace ref

}  // namespace horo::kernels
