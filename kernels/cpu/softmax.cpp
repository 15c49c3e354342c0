#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/softmax.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

// Softmax of one strided line of `axis` values (stride `inner`).
void softmax_line(int64_t axis, int64_t stride, bool log, const float* x, float* y) {
  float max_value = x[0];
  for (int64_t a = 1; a < axis; ++a) max_value = std::max(max_value, x[a * stride]);
  float sum = 0.0f;
  for (int64_t a = 0; a < axis; ++a) {
    const float e = std::exp(x[a * stride] - max_value);
    sum += e;
    y[a * stride] = e;
  }
  if (log) {
    const float log_sum = std::log(sum) + max_value;
    for (int64_t a = 0; a < axis; ++a) y[a * stride] = x[a * stride] - log_sum;
  } else {
    const float inv = 1.0f / sum;
    for (int64_t a = 0; a < axis; ++a) y[a * stride] *= inv;
  }
}

void softmax_line_backward(int64_t axis, int64_t stride, bool log, const float* y, const float* dy, float* dx) {
  float dot = 0.0f;
  if (log) {
    for (int64_t a = 0; a < axis; ++a) dot += dy[a * stride];
    for (int64_t a = 0; a < axis; ++a) dx[a * stride] = dy[a * stride] - std::exp(y[a * stride]) * dot;
  } else {
    for (int64_t a = 0; a < axis; ++a) dot += dy[a * stride] * y[a * stride];
    for (int64_t a = 0; a < axis; ++a) dx[a * stride] = y[a * stride] * (dy[a * stride] - dot);
  }
}

}  // namespace

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y) {
  parallel_for(s.outer * s.inner, std::max<int64_t>(1, 4096 / s.axis), [&](int64_t b, int64_t e) {
    for (int64_t line = b; line < e; ++line) {
      const int64_t base = (line / s.inner) * s.axis * s.inner + line % s.inner;
      softmax_line(s.axis, s.inner, log, x + base, y + base);
    }
  });
}

void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx) {
  parallel_for(s.outer * s.inner, std::max<int64_t>(1, 4096 / s.axis), [&](int64_t b, int64_t e) {
    for (int64_t line = b; line < e; ++line) {
      const int64_t base = (line / s.inner) * s.axis * s.inner + line % s.inner;
      softmax_line_backward(s.axis, s.inner, log, y + base, dy + base, dx + base);
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(softmax_forward);
void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y) { HORO_CPU_DISPATCH(softmax_forward)(s, log, x, y); }

HWY_EXPORT(softmax_backward);
void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx) { HORO_CPU_DISPATCH(softmax_backward)(s, log, y, dy, dx); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
