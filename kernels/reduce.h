// Sum over the middle axis of a tensor viewed as [outer, axis, inner]: out[o, i] = sum_a x[o, a, i].
#pragma once

#include <cstdint>

namespace horo::kernels {

struct ReduceShape {
  int64_t outer = 1, axis = 1, inner = 1;
};

namespace cpu { void sum(const ReduceShape& s, const float* x, float* out); }
// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void sum(const ReduceShape& s, const float* x, float* out);
}  // namespace cuda

namespace ref { void sum(const ReduceShape& s, const float* x, float* out); }

}  // namespace horo::kernels
