// Broadcasting elementwise ops: the innermost dimension is a strided loop, outer dimensions are
// walked by index arithmetic and spread over threads.
#include "kernels/binary.h"

#include <algorithm>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/binary.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

template <Binary Op>
inline float apply(float a, float b) {
  if constexpr (Op == Binary::Add) return a + b;
  else if constexpr (Op == Binary::Sub) return a - b;
  else if constexpr (Op == Binary::Mul) return a * b;
  else return a / b;
}

template <Binary Op>
void binary_loop(const BroadcastShape& s, const float* a, const float* b, float* out) {
  const int last = s.ndim - 1;
  const int64_t inner = s.ndim ? s.out_shape[last] : 1;
  const int64_t sa = s.ndim ? s.a_stride[last] : 0, sb = s.ndim ? s.b_stride[last] : 0;
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= s.out_shape[d];
  parallel_for(rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rest = r, offset_a = 0, offset_b = 0;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t idx = rest % s.out_shape[d];
        rest /= s.out_shape[d];
        offset_a += idx * s.a_stride[d];
        offset_b += idx * s.b_stride[d];
      }
      const float* pa = a + offset_a;
      const float* pb = b + offset_b;
      float* po = out + r * inner;
      if (sa == 1 && sb == 1) {
        for (int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i], pb[i]);
      } else if (sa == 1 && sb == 0) {
        const float vb = *pb;
        for (int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i], vb);
      } else if (sa == 0 && sb == 1) {
        const float va = *pa;
        for (int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(va, pb[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) po[i] = apply<Op>(pa[i * sa], pb[i * sb]);
      }
    }
  });
}

}  // namespace

void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  switch (op) {
    case Binary::Add: return binary_loop<Binary::Add>(s, a, b, out);
    case Binary::Sub: return binary_loop<Binary::Sub>(s, a, b, out);
    case Binary::Mul: return binary_loop<Binary::Mul>(s, a, b, out);
    case Binary::Div: return binary_loop<Binary::Div>(s, a, b, out);
  }
}

void affine(int64_t n, float alpha, float beta, const float* x, float* y) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = alpha * x[i] + beta;
  });
}

void accumulate(int64_t n, const float* x, float* y) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] += x[i];
  });
}

void add_relu(int64_t n, const float* a, const float* b, float* y) {
  parallel_for(n, 1 << 15, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float v = a[i] + b[i];
      y[i] = v < 0.0f ? 0.0f : v;
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(binary);
void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out) { HORO_CPU_DISPATCH(binary)(op, s, a, b, out); }

HWY_EXPORT(affine);
void affine(int64_t n, float alpha, float beta, const float* x, float* y) { HORO_CPU_DISPATCH(affine)(n, alpha, beta, x, y); }

HWY_EXPORT(accumulate);
void accumulate(int64_t n, const float* x, float* y) { HORO_CPU_DISPATCH(accumulate)(n, x, y); }

HWY_EXPORT(add_relu);
void add_relu(int64_t n, const float* a, const float* b, float* y) { HORO_CPU_DISPATCH(add_relu)(n, a, b, y); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
