// Short-run float loops for the CPU kernels: the rows they move are often 5 to 30 floats long
// (W1's 11- and 26-wide feature maps), where a memcpy call or a scalar epilogue costs more than the
// work. With AVX-512 each 16 floats is one (masked) load and store; otherwise plain loops.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace horo::kernels::cpu::simd {

#if defined(__AVX512F__)
// The first min(count, 16) lanes.
inline __mmask16 tail_mask(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << count) - 1u);
}
#endif

// dst[i] = src[i], i < n.
inline void copy(const float* src, int64_t n, float* dst) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
#else
  std::copy(src, src + n, dst);
#endif
}

// rows x width block copy between row strides (floats): dst[r * dst_stride + i] = src[r * src_stride + i].
inline void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t width) {
#if defined(__AVX512F__)
  if (width <= 16) {  // one masked move per row, the mask made once
    const __mmask16 m = tail_mask(width);
    for (int64_t r = 0; r < rows; ++r, src += src_stride, dst += dst_stride) {
      _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r, src += src_stride, dst += dst_stride) copy(src, width, dst);
}

// dst[i] += src[i], i < n.
inline void add(const float* src, int64_t n, float* dst) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i), _mm512_maskz_loadu_ps(m, src + i)));
  }
#else
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
#endif
}

// dst[i] = value, i < n.
inline void fill(float value, int64_t n, float* dst) {
#if defined(__AVX512F__)
  const __m512 v = _mm512_set1_ps(value);
  for (int64_t i = 0; i < n; i += 16) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), v);
#else
  std::fill(dst, dst + n, value);
#endif
}

// The sum of x[0..n) in sixteen interleaved partial sums (vectorised; a different rounding order
// from a left-to-right sum, the same as any blocked reduction).
inline float sum(const float* x, int64_t n) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  // Lanes summed in order (_mm512_reduce_add_ps would trip GCC 12's false -Wmaybe-uninitialized,
  // bug 105593, in every file that includes this header).
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
#else
  float lanes[16] = {};
  for (int64_t i = 0; i < n; ++i) lanes[i & 15] += x[i];
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
#endif
}

// Transposes a 16 x 16 block: dst[c * dst_stride + r] = src[r * src_stride + c] for r, c < 16.
inline void transpose16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
#if defined(__AVX512F__)
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
#else
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
#endif
}

}  // namespace horo::kernels::cpu::simd
