#include "kernels/dropout.h"

#include "kernels/parallel.h"
#include "kernels/philox.h"

namespace horo::kernels::cpu {

void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) {
  const float keep = 1.0f - p;
  const float scale = keep > 0.0f ? 1.0f / keep : 0.0f;
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    int64_t i = b;
    // Whole Philox blocks give four numbers each; the stream index is offset + i.
    while (i < e) {
      const uint64_t index = offset + static_cast<uint64_t>(i);
      uint32_t words[4];
      Philox4x32::block(seed, index >> 2, words);
      for (uint64_t lane = index & 3; lane < 4 && i < e; ++lane, ++i) {
        const float m = Philox4x32::to_uniform(words[lane]) < keep ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
      }
    }
  });
}

}  // namespace horo::kernels::cpu
