#include "kernels/reduce.h"

#include <algorithm>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/reduce.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

// Sums in double per output so that long reductions (a loss over a large batch) keep their digits.
void sum(const ReduceShape& s, const float* x, float* out) {
  if (s.inner == 1) {
    parallel_for(s.outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(s.axis, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const float* line = x + o * s.axis;
        double acc = 0.0;
        for (int64_t a = 0; a < s.axis; ++a) acc += line[a];
        out[o] = static_cast<float>(acc);
      }
    });
    return;
  }
  // Reducing a non-innermost axis: accumulate whole rows of `inner` values, which vectorises.
  parallel_for(s.outer, 1, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      float* dst = out + o * s.inner;
      std::fill(dst, dst + s.inner, 0.0f);
      for (int64_t a = 0; a < s.axis; ++a) {
        const float* row = x + (o * s.axis + a) * s.inner;
        for (int64_t i = 0; i < s.inner; ++i) dst[i] += row[i];
      }
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(sum);
void sum(const ReduceShape& s, const float* x, float* out) { HORO_CPU_DISPATCH(sum)(s, x, out); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
