// Short-run float loops for the CPU kernels: the rows they move are often 5 to 30 floats long
// (W1's 11- and 26-wide feature maps), where a memcpy call or a scalar epilogue costs more than the
// work. Whole vectors, then one masked load and store where the target has them (AVX2, AVX-512).
// A per-target header: included from kernel files compiled once per SIMD target.
#if defined(HORO_KERNELS_CPU_SIMD_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HORO_KERNELS_CPU_SIMD_H_
#undef HORO_KERNELS_CPU_SIMD_H_
#else
#define HORO_KERNELS_CPU_SIMD_H_
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE::simd {
namespace hn = hwy::HWY_NAMESPACE;

// Runs step(d, i) over [b, e): whole vectors, then one lane at a time with a one-lane descriptor, so
// that the tail does the same operations in the same order as the vectors (the same rounding).
template <typename Step>
HWY_INLINE void for_lanes(int64_t b, int64_t e, const Step& step) {
  const hn::ScalableTag<float> d;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = b;
  for (; i + n <= e; i += n) step(d, i);
  const hn::CappedTag<float, 1> d1;
  for (; i < e; ++i) step(d1, i);
}

// Applies op(vector, lane count) over [0, n): full vectors, then the tail as one masked vector (AVX2,
// AVX-512) or lane by lane through op on a one-lane vector type.
template <typename Full, typename One>
HWY_INLINE void for_each_vector(int64_t n, const Full& full, const One& one) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) full(d, i, hn::FirstN(d, static_cast<size_t>(lanes)), false);
  if (i == n) return;
#if HORO_TARGET_MASKED_MEMORY
  full(d, i, hn::FirstN(d, static_cast<size_t>(n - i)), true);
#else
  for (; i < n; ++i) one(i);
#endif
}

// Stores the first `count` lanes of v at p (count up to the lane count). AVX-512's masked stores are
// native everywhere; AVX2's (vmaskmovps) are microcoded on AMD Zen 1-3, some 20 times a plain store:
// they made one tile store 19% of W5's step on a Zen 3. On AVX2: a plain store to the stack and at
// most three fixed-size moves (4, 2 and 1 floats; a copy of variable length became `rep movsq`, whose
// start-up cost made copying 8-float rows 5% of W5's step).
template <class D>
HWY_INLINE void store_first(hn::Vec<D> v, D d, hn::TFromD<D>* p, size_t count) {
#if HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
  static_assert(sizeof(hn::TFromD<D>) == 4, "AVX2 partial stores are written for 32-bit lanes");
  if (count >= hn::Lanes(d)) return hn::StoreU(v, d, p);
  alignas(32) hn::TFromD<D> part[8];
  hn::Store(v, d, part);
  size_t i = 0;
  if (count & 4) {
    std::memcpy(p, part, 4 * sizeof(part[0]));
    i = 4;
  }
  if (count & 2) {
    std::memcpy(p + i, part + i, 2 * sizeof(part[0]));
    i += 2;
  }
  if (count & 1) p[i] = part[i];
#else
  hn::BlendedStore(v, hn::FirstN(d, count), d, p);
#endif
}

template <class D>
HWY_INLINE hn::Vec<D> load(D d, const float* p, hn::Mask<D> m, bool masked) {
  return masked ? hn::MaskedLoad(m, d, p) : hn::LoadU(d, p);
}
template <class D>
HWY_INLINE void store(hn::Vec<D> v, D d, float* p, hn::Mask<D> m, bool masked) {
  if (masked) store_first(v, d, p, hn::CountTrue(d, m)); else hn::StoreU(v, d, p);
}

// dst[i] = src[i], i < n.
HWY_INLINE void copy(const float* src, int64_t n, float* dst) {
  for_each_vector(n, [&](auto d, int64_t i, auto m, bool masked) { store(load(d, src + i, m, masked), d, dst + i, m, masked); },
                  [&](int64_t i) { dst[i] = src[i]; });
}

// rows x width block copy between row strides (floats): dst[r * dst_stride + i] = src[r * src_stride + i].
HWY_INLINE void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t width) {
#if HORO_TARGET_MASKED_MEMORY
  const hn::ScalableTag<float> d;
  if (width < static_cast<int64_t>(hn::Lanes(d))) {  // one masked move per row, the mask made once
    const auto m = hn::FirstN(d, static_cast<size_t>(width));
    for (int64_t r = 0; r < rows; ++r, src += src_stride, dst += dst_stride) {
      store_first(hn::MaskedLoad(m, d, src), d, dst, static_cast<size_t>(width));
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r, src += src_stride, dst += dst_stride) copy(src, width, dst);
}

// dst[i] += src[i], i < n.
HWY_INLINE void add(const float* src, int64_t n, float* dst) {
  for_each_vector(n, [&](auto d, int64_t i, auto m, bool masked) {
    store(hn::Add(load(d, dst + i, m, masked), load(d, src + i, m, masked)), d, dst + i, m, masked);
  }, [&](int64_t i) { dst[i] += src[i]; });
}

// dst[i] = value, i < n.
HWY_INLINE void fill(float value, int64_t n, float* dst) {
  for_each_vector(n, [&](auto d, int64_t i, auto m, bool masked) { store(hn::Set(d, value), d, dst + i, m, masked); },
                  [&](int64_t i) { dst[i] = value; });
}

// The sum of x[0..n) in one vector of partial sums (a different rounding order from a left-to-right
// sum, and from one target to another, as any blocked reduction).
HWY_INLINE float sum(const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  auto acc = hn::Zero(d);
  float tail = 0.0f;
  for_each_vector(n, [&](auto dd, int64_t i, auto m, bool masked) {
    acc = hn::Add(acc, masked ? hn::MaskedLoad(m, dd, x + i) : hn::LoadU(dd, x + i));
  }, [&](int64_t i) { tail += x[i]; });
  return hn::GetLane(hn::SumOfLanes(d, acc)) + tail;
}

#if HORO_TARGET_AVX512
// The first min(count, 16) lanes.
inline __mmask16 tail_mask(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << count) - 1u);
}

#endif  // HORO_TARGET_AVX512

#if HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
// Transposes an 8 x 8 block: dst[c * dst_stride + r] = src[r * src_stride + c] for r, c < 8.
HWY_INLINE void transpose8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {  // pairs of rows interleaved: 2x2 blocks
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {  // 4x4 blocks within each 128-bit half
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {  // the halves of rows 0-3 with those of rows 4-7
    _mm256_storeu_ps(dst + i * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Transposes a 16 x 16 block: dst[c * dst_stride + r] = src[r * src_stride + c] for r, c < 16.
HWY_INLINE void transpose16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
#if HORO_TARGET_AVX512
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 16; i += 2) {  // pairs of rows: 2x2 blocks of singles
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // 4x4 blocks (pairs of doubles)
    for (int j = 0; j < 2; ++j) {
      r[i + j] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
      r[i + j + 2] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
    }
  }
  for (int i = 0; i < 16; i += 8) {  // 128-bit lanes of row groups 0-3 with 4-7
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
    }
  }
  for (int j = 0; j < 8; ++j) {  // and of row groups 0-7 with 8-15
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
  }
  // r[k] now holds column order(k): the shuffles leave the columns permuted.
  static constexpr int kColumn[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
  for (int k = 0; k < 16; ++k) _mm512_storeu_ps(dst + kColumn[k] * dst_stride, r[k]);
#elif HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
  // Four 8 x 8 blocks, each transposed in registers and stored in the mirrored position.
  for (int br = 0; br < 16; br += 8)
    for (int bc = 0; bc < 16; bc += 8) transpose8x8(src + br * src_stride + bc, src_stride, dst + bc * dst_stride + br, dst_stride);
#else
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
#endif
}

// Whether transpose16x16 runs in registers on this target (else it is a plain loop).
constexpr bool kFastTranspose = HORO_TARGET_AVX512 || (HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2);

// Transposes a rows x cols block: dst[c * dst_stride + r] = src[r * src_stride + c], 16 x 16 blocks
// in registers where the target has them, the edges one value at a time.
HWY_INLINE void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
                          int64_t dst_stride) {
  int64_t r0 = 0;
  if (kFastTranspose) {
    for (; r0 + 16 <= rows; r0 += 16) {
      int64_t c0 = 0;
      for (; c0 + 16 <= cols; c0 += 16) transpose16x16(src + r0 * src_stride + c0, src_stride, dst + c0 * dst_stride + r0, dst_stride);
      for (int64_t c = c0; c < cols; ++c)
        for (int64_t r = r0; r < r0 + 16; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
    }
  }
  for (int64_t r = r0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE::simd
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
