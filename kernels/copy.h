// Strided block copies on one device: `rows` blocks of `row_bytes` bytes, the blocks `src_stride`
// and `dst_stride` bytes apart. Concatenation and its backward (slicing along a dimension of a
// contiguous tensor) are exactly this.
#pragma once

#include <cstdint>

namespace horo::kernels {

namespace cpu {
void copy_rows(const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t row_bytes, int64_t rows);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void copy_rows(const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t row_bytes, int64_t rows);
}  // namespace cuda

}  // namespace horo::kernels
