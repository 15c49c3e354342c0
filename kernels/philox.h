// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// generator, so the random number at position i of a stream is a pure function of (seed, i). Dropout
// masks, initialisation and shuffles built on it are the same on every device, thread count and rank.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define HORO_HOST_DEVICE __host__ __device__
#else
#define HORO_HOST_DEVICE
#endif

namespace horo::kernels {

struct Philox4x32 {
  // Ten Philox rounds over a full 128-bit counter and 64-bit key (the published algorithm, checked
  // against Random123's known-answer vectors in the tests).
  HORO_HOST_DEVICE static void rounds(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
      const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
      const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
      const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
      c0 = hi1 ^ c1 ^ k0;
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  }

  // Four 32-bit random words for block `block_index` of the stream for `seed`.
  HORO_HOST_DEVICE static void block(uint64_t seed, uint64_t block_index, uint32_t out[4]) {
    const uint32_t counter[4] = {static_cast<uint32_t>(block_index), static_cast<uint32_t>(block_index >> 32), 0, 0};
    const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
    rounds(counter, key, out);
  }

  // The 32-bit word at position index of the stream for seed.
  HORO_HOST_DEVICE static uint32_t word(uint64_t seed, uint64_t index) {
    uint32_t out[4];
    block(seed, index >> 2, out);
    return out[index & 3];
  }

  // Uniform float in [0, 1) from a word, using its top 24 bits (exactly representable).
  HORO_HOST_DEVICE static float to_uniform(uint32_t word) {
    return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
  }

  HORO_HOST_DEVICE static float uniform(uint64_t seed, uint64_t index) { return to_uniform(word(seed, index)); }
};

}  // namespace horo::kernels
