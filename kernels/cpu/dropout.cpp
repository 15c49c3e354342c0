#include "kernels/dropout.h"

#include <cmath>

#include "kernels/parallel.h"
#include "kernels/philox.h"


// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/dropout.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

// Elements [i, end) one Philox block (four numbers) at a time; the stream index of element i is offset + i.
void dropout_scalar(uint64_t seed, uint64_t offset, float keep, float scale, int64_t i, int64_t end, const float* x,
                    float* mask, float* y) {
  while (i < end) {
    const uint64_t index = offset + static_cast<uint64_t>(i);
    uint32_t words[4];
    Philox4x32::block(seed, index >> 2, words);
    for (uint64_t lane = index & 3; lane < 4 && i < end; ++lane, ++i) {
      const float m = Philox4x32::to_uniform(words[lane]) < keep ? scale : 0.0f;
      mask[i] = m;
      y[i] = x[i] * m;
    }
  }
}

#if HORO_TARGET_AVX512
// Philox4x32::rounds for sixteen counters at once (lane b holds block first + b); word j of each block
// ends in c[j]. The 32x32->64 products are taken on the even and odd lanes separately.
void philox_16_blocks(uint64_t seed, uint64_t first, __m512i c[4]) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i low = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(first)), lanes);
  // The high word carries where the low word wrapped.
  const __mmask16 wrapped = _mm512_cmplt_epu32_mask(low, lanes);
  c[0] = low;
  c[1] = _mm512_mask_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(first >> 32)), wrapped,
                               _mm512_set1_epi32(static_cast<int32_t>(first >> 32)), _mm512_set1_epi32(1));
  c[2] = c[3] = _mm512_setzero_si512();
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const __m512i m0 = _mm512_set1_epi32(static_cast<int32_t>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int32_t>(0xCD9E8D57u));
  auto multiply = [](__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
    const __m512i even = _mm512_mul_epu32(a, m);                          // lanes 0, 2, ...: 64-bit products
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);   // lanes 1, 3, ...
    lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  };
  for (int round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    multiply(c[0], m0, hi0, lo0);
    multiply(c[2], m1, hi1, lo1);
    c[0] = _mm512_xor_si512(_mm512_xor_si512(hi1, c[1]), _mm512_set1_epi32(static_cast<int32_t>(k0)));
    c[1] = lo1;
    c[2] = _mm512_xor_si512(_mm512_xor_si512(hi0, c[3]), _mm512_set1_epi32(static_cast<int32_t>(k1)));
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// 64 elements whose stream indices start at a multiple of 64: sixteen blocks, the keep decision of
// word j of block b is bit 4b + j of one 64-bit mask.
void dropout_64(uint64_t seed, uint64_t first_block, uint32_t threshold, float scale, const float* x, float* mask,
                float* y) {
  __m512i words[4];
  philox_16_blocks(seed, first_block, words);
  const __m512i limit = _mm512_set1_epi32(static_cast<int32_t>(threshold));
  uint64_t keep = 0;
  for (int j = 0; j < 4; ++j) {
    const __mmask16 bits = _mm512_cmplt_epu32_mask(_mm512_srli_epi32(words[j], 8), limit);
    keep |= _pdep_u64(bits, 0x1111111111111111ull << j);
  }
  const __m512 s = _mm512_set1_ps(scale);
  for (int q = 0; q < 4; ++q) {
    const __mmask16 m = static_cast<__mmask16>(keep >> (16 * q));
    _mm512_storeu_ps(mask + 16 * q, _mm512_maskz_mov_ps(m, s));
    _mm512_storeu_ps(y + 16 * q, _mm512_maskz_mul_ps(m, _mm512_loadu_ps(x + 16 * q), s));
  }
}
#endif

}  // namespace

void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) {
  const float keep = 1.0f - p;
  const float scale = keep > 0.0f ? 1.0f / keep : 0.0f;
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
#if HORO_TARGET_AVX512
    // uniform < keep  <=>  (word >> 8) < keep * 2^24  <=>  (word >> 8) < ceil(keep * 2^24), all exact.
    const uint32_t threshold = static_cast<uint32_t>(std::ceil(static_cast<double>(keep) * 16777216.0));
    // Scalar up to a stream index that is a multiple of 64, then 64 at a time, then the tail.
    const int64_t misalign = static_cast<int64_t>((offset + static_cast<uint64_t>(b)) & 63);
    const int64_t head_end = std::min<int64_t>(e, b + (misalign ? 64 - misalign : 0));
    dropout_scalar(seed, offset, keep, scale, b, head_end, x, mask, y);
    int64_t i = head_end;
    for (; i + 64 <= e; i += 64) {
      dropout_64(seed, (offset + static_cast<uint64_t>(i)) >> 2, threshold, scale, x + i, mask + i, y + i);
    }
    dropout_scalar(seed, offset, keep, scale, i, e, x, mask, y);
#else
    dropout_scalar(seed, offset, keep, scale, b, e, x, mask, y);
#endif
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(dropout_forward);
void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) { HORO_CPU_DISPATCH(dropout_forward)(seed, offset, p, n, x, mask, y); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
